#include "launch/cli.h"

#include <iostream>

#include "core/error.h"

namespace oodt {

bool parse_args(const std::string& command, const std::string& usage, const Args& args,
                po::options_description& desc, po::variables_map& vm,
                const po::positional_options_description* positional) {
  desc.add_options()("help,h", "show this help");
  // Every bare word must mean something: without positional arguments of its own, a command
  // collects them into a hidden option and refuses them by name.
  po::options_description hidden;
  hidden.add_options()("unexpected-argument", po::value<std::vector<std::string>>(), "");
  po::options_description parsing;
  parsing.add(desc).add(hidden);
  po::positional_options_description rest;
  rest.add("unexpected-argument", -1);
  try {
    po::command_line_parser parser(args);
    parser.options(parsing);
    parser.positional(positional ? *positional : rest);
    po::store(parser.run(), vm);
    if (vm.count("help")) {
      std::cout << "usage: oodtrain " << usage << "\n\n" << desc << "\n";
      return false;
    }
    if (vm.count("unexpected-argument")) {
      const std::string word = vm["unexpected-argument"].as<std::vector<std::string>>().front();
      std::string hint = concat("see `oodtrain ", command, " --help`");
      const auto ends_with = [&](const std::string& end) {
        return word.size() > end.size() && word.compare(word.size() - end.size(), end.size(), end) == 0;
      };
      if (word.find('=') != std::string::npos) hint = concat("an override is given as --set ", word);
      else if (ends_with(".yaml") || ends_with(".yml")) hint = concat("a config file is given as -c ", word);
      throw ConfigError("", concat("oodtrain ", command, ": unexpected argument '", word, "' (", hint, ")"));
    }
    po::notify(vm);
  } catch (const po::error& e) {
    throw ConfigError("", concat("oodtrain ", command, ": ", e.what(), " (see `oodtrain ", command, " --help`)"));
  }
  return true;
}

}  // namespace oodt
