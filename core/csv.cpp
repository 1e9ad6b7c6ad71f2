#include "core/csv.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace oodt {

std::string csv_field(const std::string& text) {
  if (text.find_first_of(",\"\r\n") == std::string::npos) return text;
  std::string out = "\"";
  for (const char c : text) {
    if (c == '"') out += '"';
    out += c;
  }
  out += '"';
  return out;
}

std::string csv_row(const std::vector<std::string>& fields) {
  std::string out;
  for (size_t i = 0; i < fields.size(); ++i) {
    if (i > 0) out += ',';
    out += csv_field(fields[i]);
  }
  out += "\r\n";
  return out;
}

std::string csv_number(double v) {
  if (!std::isfinite(v)) return "";
  // The fewest significant digits that read back exactly: 0.05, not 0.050000000000000003.
  char buf[32];
  for (int digits = 1; digits <= 17; ++digits) {
    std::snprintf(buf, sizeof buf, "%.*g", digits, v);
    if (std::strtod(buf, nullptr) == v) break;
  }
  return buf;
}

bool csv_read_row(std::istream& in, std::vector<std::string>& fields) {
  fields.clear();
  int c = in.get();
  if (c == EOF) return false;
  std::string field;
  bool quoted = false;
  for (;; c = in.get()) {
    if (quoted) {
      if (c == EOF) break;  // an unterminated quote: the rest of the input is the field
      if (c == '"') {
        if (in.peek() == '"') {
          in.get();
          field += '"';
        } else {
          quoted = false;
        }
      } else {
        field += static_cast<char>(c);
      }
      continue;
    }
    if (c == EOF || c == '\n') break;
    if (c == '\r') {
      if (in.peek() == '\n') in.get();
      break;
    }
    if (c == ',') {
      fields.push_back(std::move(field));
      field.clear();
    } else if (c == '"') {
      quoted = true;
    } else {
      field += static_cast<char>(c);
    }
  }
  fields.push_back(std::move(field));
  return true;
}

}  // namespace oodt
