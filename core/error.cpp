#include "core/error.h"

#include <cstring>

namespace oodt {

ConfigError::ConfigError(const std::string& key, const std::string& message)
    : Error(key.empty() ? message : key + ": " + message), key_(key) {}

namespace detail {
void throw_check(const char* file, int line, const char* cond, const std::string& msg) {
  const char* base = std::strrchr(file, '/');
  std::string where = concat(base ? base + 1 : file, ":", line);
  throw Error(msg.empty() ? concat("check failed: ", cond, " (", where, ")")
                          : concat(msg, " (", where, ")"));
}
}  // namespace detail

}  // namespace oodt
