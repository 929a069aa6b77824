// The statement column of tests/data/audit_statements.tsv: \n, \t and \r escaped, \\ for a backslash.
#pragma once

#include <string>

namespace pgw::testing {

inline std::string unescape(const std::string& s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 1 < s.size()) {
      const char e = s[++i];
      out += e == 'n' ? '\n' : e == 't' ? '\t' : e == 'r' ? '\r' : e;
    } else {
      out += s[i];
    }
  }
  return out;
}

}  // namespace pgw::testing
