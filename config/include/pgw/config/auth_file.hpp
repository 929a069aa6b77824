// PgBouncer's auth_file (userlist.txt) format: one "user" "secret" pair per line, with FILE:LINE:COL errors.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "pgw/config/config.hpp"

namespace pgw::config {

struct AuthFileEntry {
  std::string user;
  std::string secret;  // plain password, "md5..." or "SCRAM-SHA-256$..." (classified by the caller)
  Position where;      // the secret's position
};

struct AuthFileResult {
  std::vector<AuthFileEntry> entries;
  std::vector<Diagnostic> diagnostics;
};

// Lines: blank, or a comment starting with ';' or '#', or two double-quoted fields ("" escapes a quote) with
// anything after the second field ignored, as PgBouncer does. A user listed twice is an error.
AuthFileResult parse_auth_file(std::string_view text, const std::filesystem::path& file_name);
AuthFileResult load_auth_file(const std::filesystem::path& file);

}  // namespace pgw::config
