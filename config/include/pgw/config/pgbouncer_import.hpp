// `pgwarden import-pgbouncer`: a PgBouncer pgbouncer.ini (and userlist.txt) converted to pgwarden's TOML.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "pgw/config/config.hpp"

namespace pgw::config {

// Largest pgbouncer.ini (or %include'd file) the import reads: a config with ten thousand databases is well
// under it.
inline constexpr std::size_t pgbouncer_ini_max_size = std::size_t{16} << 20;
// PgBouncer's own limit on %include nesting.
inline constexpr int pgbouncer_max_include_depth = 10;

// Reads the file a `%include` line names (`path` exactly as written there). Returns its text, or nullopt with
// `error` saying why ("No such file or directory").
using IncludeReader = std::function<std::optional<std::string>(const std::string& path, std::string& error)>;

struct PgbouncerImportOptions {
  std::string ini_name;  // the pgbouncer.ini path as given: named in the header and in every message
  // The auth file given on the command line: auth.file is written with this path exactly as given, and the
  // text is checked with pgwarden's auth file parser.
  std::optional<std::string> userlist_name;
  std::string userlist_text;
  IncludeReader read_include;  // empty: a %include line is an error
};

// Something pgwarden does not take over as PgBouncer had it: a key it does not support, or one whose
// conversion changed something. Never an error: the conversion still succeeds.
struct ImportNote {
  std::string file;
  std::uint32_t line = 0;  // 0: about the file as a whole (a key that is not set)
  std::string key;
  std::string message;
  std::string to_string() const;  // "FILE:LINE: key: message", or "FILE: key: message"
};

struct PgbouncerImportResult {
  std::string toml;                // the converted configuration; empty when there are errors
  std::vector<ImportNote> notes;   // in file order
  std::vector<Diagnostic> errors;  // FILE:LINE:COL: what PgBouncer itself could not load
  bool ok() const noexcept { return errors.empty(); }
};

// Converts the text of a pgbouncer.ini. Pure: the only files it touches are the %include'd ones, through
// options.read_include.
PgbouncerImportResult import_pgbouncer(std::string_view ini_text, const PgbouncerImportOptions& options);

}  // namespace pgw::config
