#include "launch/cli.h"

#include <algorithm>
#include <iostream>
#include <limits>
#include <utility>
#include <vector>

#include "core/error.h"

namespace oodt {
namespace {

// The positional arguments' names in position order, once each, and whether the name takes
// every word from there on (a trailing `-1` entry).
std::vector<std::pair<std::string, bool>> positional_names(const po::positional_options_description* positional) {
  std::vector<std::pair<std::string, bool>> words;
  if (positional) {
    const unsigned total = positional->max_total_count();
    for (unsigned i = 0; i < total; ++i) {
      const std::string& name = positional->name_for_position(i);
      if (!words.empty() && words.back().first == name) {
        if (total == std::numeric_limits<unsigned>::max()) {
          words.back().second = true;  // the unbounded last name: no need to look further
          break;
        }
        continue;
      }
      words.emplace_back(name, false);
    }
  }
  return words;
}

// The help of a command: positional arguments (also declared as options, so Boost can store
// them) get a section of their own, as bare words; the rest are listed as options.
void print_help(std::ostream& os, const std::string& command, const std::string& usage, const po::options_description& desc,
                const po::positional_options_description* positional) {
  const std::vector<std::pair<std::string, bool>> words = positional_names(positional);
  // Every command's caption is "<command> options" (Boost 1.74 cannot read a caption back).
  po::options_description options(concat(command, " options"));
  std::vector<std::pair<std::string, std::string>> listed;
  for (const auto& opt : desc.options()) {
    const auto word = std::find_if(words.begin(), words.end(), [&](const auto& w) { return w.first == opt->long_name(); });
    if (word == words.end()) options.add(opt);
    else listed.emplace_back(word->first + (word->second ? " ..." : ""), opt->description());
  }
  os << "usage: oodtrain " << usage << "\n";
  if (!listed.empty()) {
    size_t width = 0;
    for (const auto& [name, what] : listed) width = std::max(width, name.size());
    os << "\npositional arguments:\n";
    for (const auto& [name, what] : listed) os << "  " << name << std::string(width - name.size() + 2, ' ') << what << "\n";
  }
  os << "\n" << options << "\n";
}

}  // namespace

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
      print_help(std::cout, command, usage, desc, positional);
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
  } catch (const po::required_option& e) {
    // A missing positional argument is a missing word, not a missing --option.
    std::string name = e.get_option_name();
    name.erase(0, name.find_first_not_of('-'));
    for (const auto& [word, many] : positional_names(positional))
      if (word == name)
        throw ConfigError("", concat("oodtrain ", command, ": the argument '", word, "' is missing (see `oodtrain ",
                                     command, " --help`)"));
    throw ConfigError("", concat("oodtrain ", command, ": ", e.what(), " (see `oodtrain ", command, " --help`)"));
  } catch (const po::error& e) {
    throw ConfigError("", concat("oodtrain ", command, ": ", e.what(), " (see `oodtrain ", command, " --help`)"));
  }
  return true;
}

}  // namespace oodt
