// Statement boundaries and leading keywords from pg_query_scan's tokens.
#include "pgw/audit/sql.hpp"

#include <pg_query.h>
#include <pg_query/pg_query.pb-c.h>

#include <string>

namespace pgw::audit {

namespace {

bool contains_word_ci(std::string_view text, std::string_view lower_word) {
  if (text.size() < lower_word.size()) return false;
  for (std::size_t i = 0; i + lower_word.size() <= text.size(); ++i) {
    std::size_t j = 0;
    while (j < lower_word.size() && (text[i + j] | 0x20) == lower_word[j])
      ++j;
    if (j == lower_word.size()) return true;
  }
  return false;
}

// PostgreSQL's scanner and grammar take tens to a hundred and more times a text's size in memory while they
// run: longer texts are not given to them here (see the header for what the callers do instead).
constexpr std::size_t max_scanned_bytes = std::size_t{256} << 10;

}  // namespace

bool has_statement_starting_with(std::string_view sql, Leading keyword) {
  if (sql.size() > max_scanned_bytes) return false;
  bool maybe = keyword == Leading::listen ? contains_word_ci(sql, "listen")
                                          : contains_word_ci(sql, "begin") || contains_word_ci(sql, "start");
  if (!maybe) return false;
  std::string text(sql);  // the scanner wants a NUL-terminated string
  PgQueryScanResult scan = pg_query_scan(text.c_str());
  bool found = false;
  if (scan.error == nullptr) {
    PgQuery__ScanResult* result = pg_query__scan_result__unpack(
        nullptr, scan.pbuf.len, reinterpret_cast<const uint8_t*>(scan.pbuf.data));
    if (result != nullptr) {
      bool at_start = true;
      for (std::size_t i = 0; i < result->n_tokens && !found; ++i) {
        PgQuery__Token t = result->tokens[i]->token;
        if (t == PG_QUERY__TOKEN__SQL_COMMENT || t == PG_QUERY__TOKEN__C_COMMENT) continue;
        if (t == PG_QUERY__TOKEN__ASCII_59) {  // ';'
          at_start = true;
          continue;
        }
        if (at_start) {
          found = keyword == Leading::listen ? t == PG_QUERY__TOKEN__LISTEN
                                             : (t == PG_QUERY__TOKEN__BEGIN_P || t == PG_QUERY__TOKEN__START);
          at_start = false;
        }
      }
      pg_query__scan_result__free_unpacked(result, nullptr);
    }
  } else {
    // Text PostgreSQL cannot even scan: the server will refuse it; nothing to find.
    found = false;
  }
  pg_query_free_scan_result(scan);
  return found;
}

bool parses(std::string_view sql) {
  if (sql.size() > max_scanned_bytes) return false;
  std::string text(sql);
  PgQueryParseResult r = pg_query_parse(text.c_str());
  bool ok = r.error == nullptr;
  pg_query_free_parse_result(r);
  return ok;
}

}  // namespace pgw::audit
