#pragma once
// CSV as RFC 4180 has it: fields separated by commas, records ended by CRLF; a field that
// holds a comma, a double quote, CR or LF is enclosed in double quotes, with each quote inside
// doubled. Every other field is written as is (spaces belong to the field). Numbers go through
// csv_number: the shortest text that reads back to the same double, and an empty field for NaN
// and Inf (CSV has no agreed spelling for them; pandas and R read an empty field as missing).
#include <istream>
#include <string>
#include <vector>

namespace oodt {

// One field, quoted when it must be.
std::string csv_field(const std::string& text);
// One record: the fields quoted as needed, joined with commas, ended with "\r\n".
std::string csv_row(const std::vector<std::string>& fields);
// A number as a field: "" when not finite, else the shortest round-tripping decimal form.
std::string csv_number(double v);

// Reads one record (quoted fields may span lines; "\r\n", "\n" or the end of the input ends
// it). False at the end of the input, when nothing is left to read.
bool csv_read_row(std::istream& in, std::vector<std::string>& fields);

}  // namespace oodt
