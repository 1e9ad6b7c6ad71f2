#pragma once
// Boost.Program_options glue shared by the subcommands.
#include <boost/program_options.hpp>

#include <string>

#include "launch/commands.h"

namespace oodt {

namespace po = boost::program_options;

// Parses `args` against `desc` (plus `positional`), turning Boost's errors into ConfigErrors
// that name the command. Returns false after printing help when --help was given.
bool parse_args(const std::string& command, const std::string& usage, const Args& args,
                po::options_description& desc, po::variables_map& vm,
                const po::positional_options_description* positional = nullptr);

}  // namespace oodt
