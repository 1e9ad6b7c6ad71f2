#include "launch/cli.h"

#include <iostream>

#include "core/error.h"

namespace oodt {

bool parse_args(const std::string& command, const std::string& usage, const Args& args,
                po::options_description& desc, po::variables_map& vm,
                const po::positional_options_description* positional) {
  desc.add_options()("help,h", "show this help");
  try {
    po::command_line_parser parser(args);
    parser.options(desc);
    if (positional) parser.positional(*positional);
    po::store(parser.run(), vm);
    if (vm.count("help")) {
      std::cout << "usage: oodtrain " << usage << "\n\n" << desc << "\n";
      return false;
    }
    po::notify(vm);
  } catch (const po::error& e) {
    throw ConfigError("", concat("oodtrain ", command, ": ", e.what(), " (see `oodtrain ", command, " --help`)"));
  }
  return true;
}

}  // namespace oodt
