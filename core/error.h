#pragma once
// One error style for the whole project.
//
// - OODT_CHECK(cond, msg...) throws oodt::Error carrying file:line and the message.
// - oodt::ConfigError names the YAML key path (and the file when known).
// - `main` catches, prints once with the rank, and either agrees on failure with its peers
//   (set-up errors: every rank fails the same way) or aborts the MPI job (run-time errors),
//   so no peer ever waits forever. Nothing in the library calls abort() or exit().
#include <sstream>
#include <stdexcept>
#include <string>

namespace oodt {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

// A problem in the user's configuration or command line: reported without a source location,
// exit code 2.
class ConfigError : public Error {
 public:
  ConfigError(const std::string& key, const std::string& message);
  const std::string& key() const { return key_; }

 private:
  std::string key_;
};

// Input data (HDF5 files, checkpoints) that is missing or malformed.
class DataError : public Error {
 public:
  using Error::Error;
};

namespace detail {
inline void append(std::ostringstream&) {}
template <typename T, typename... Rest>
void append(std::ostringstream& os, const T& first, const Rest&... rest) {
  os << first;
  append(os, rest...);
}
template <typename... Args>
std::string concat(const Args&... args) {
  std::ostringstream os;
  append(os, args...);
  return os.str();
}
[[noreturn]] void throw_check(const char* file, int line, const char* cond, const std::string& msg);
}  // namespace detail

// Concatenates its arguments with operator<<.
template <typename... Args>
std::string concat(const Args&... args) {
  return detail::concat(args...);
}

}  // namespace oodt

#define OODT_CHECK(cond, ...)                                                              \
  do {                                                                                     \
    if (!(cond)) ::oodt::detail::throw_check(__FILE__, __LINE__, #cond, ::oodt::concat(__VA_ARGS__)); \
  } while (0)
