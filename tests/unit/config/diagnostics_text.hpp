// Test helper: a parse result's diagnostics as "FILE:LINE:COL: message" lines.
#pragma once

#include <string>
#include <vector>

namespace pgw::config::testing {

using Errors = std::vector<std::string>;

template <class Result>
Errors errors_of(const Result& r) {
  Errors out;
  for (const auto& d : r.diagnostics)
    out.push_back(d.to_string());
  return out;
}

}  // namespace pgw::config::testing
