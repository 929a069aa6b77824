// `pgwarden import-pgbouncer`: reads PgBouncer's pgbouncer.ini (and userlist.txt) and writes pgwarden's TOML.
//
// The INI reading follows PgBouncer's documented format (pgbouncer.ini(5), "Description" and "Include
// directive"; the [databases] values are libpq-like "key=value" strings). Every key ends up either in the
// TOML or in a note (FILE:LINE: key: why), never dropped silently. What PgBouncer itself would refuse to load
// (a syntax error, a number that is not one) is an error (FILE:LINE:COL) and no TOML is written.
#include "pgw/config/pgbouncer_import.hpp"

#include <algorithm>
#include <array>
#include <cstdint>
#include <limits>
#include <map>
#include <set>
#include <span>
#include <sstream>
#include <utility>

#include <toml++/toml.h>

#include "pgw/config/auth_file.hpp"

namespace pgw::config {

std::string ImportNote::to_string() const {
  std::string out = file;
  if (line > 0) out += ":" + std::to_string(line);
  return out + ": " + key + ": " + message;
}

namespace {

// ---------------------------------------------------------------------------------------------------------------
// Text helpers

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && is_space(s.front()))
    s.remove_prefix(1);
  while (!s.empty() && is_space(s.back()))
    s.remove_suffix(1);
  return s;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

// PgBouncer's lists ("a, b,c"): trimmed items, empty ones dropped.
std::vector<std::string> split_list(std::string_view s, std::string_view separators = ",") {
  std::vector<std::string> out;
  while (!s.empty()) {
    auto end = s.find_first_of(separators);
    auto item = trim(s.substr(0, end));
    if (!item.empty()) out.emplace_back(item);
    if (end == std::string_view::npos) break;
    s.remove_prefix(end + 1);
  }
  return out;
}

bool valid_utf8(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    auto c = static_cast<unsigned char>(s[i]);
    std::size_t n = 0;
    std::uint32_t cp = 0;
    if (c < 0x80) {
      ++i;
      continue;
    }
    if ((c & 0xE0) == 0xC0) {
      n = 1;
      cp = c & 0x1Fu;
    } else if ((c & 0xF0) == 0xE0) {
      n = 2;
      cp = c & 0x0Fu;
    } else if ((c & 0xF8) == 0xF0) {
      n = 3;
      cp = c & 0x07u;
    } else {
      return false;
    }
    if (i + n >= s.size()) return false;
    for (std::size_t k = 1; k <= n; ++k) {
      auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3Fu);
    }
    // Overlong forms, surrogates and values past U+10FFFF are not UTF-8 (RFC 3629).
    if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10FFFF ||
        (cp >= 0xD800 && cp <= 0xDFFF)) {
      return false;
    }
    i += n + 1;
  }
  return true;
}

// A TOML string literal, escaped by toml++'s own writer.
std::string toml_string(std::string_view s) {
  std::ostringstream out;
  const toml::value<std::string> v{std::string(s)};
  out << toml::toml_formatter{v, toml::format_flags::none};  // basic "..." strings, never literal '...'
  return out.str();
}

std::string toml_array(const std::vector<std::string>& items) {
  std::string out = "[";
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (i > 0) out += ", ";
    out += toml_string(items[i]);
  }
  return out + "]";
}

// Milliseconds as pgwarden writes durations: "500ms", "15s", "10m", "1h".
std::string duration_text(std::uint64_t ms) {
  if (ms == 0) return "0s";
  if (ms % 1000 != 0) return std::to_string(ms) + "ms";
  std::uint64_t s = ms / 1000;
  if (s % 3600 == 0) return std::to_string(s / 3600) + "h";
  if (s % 60 == 0) return std::to_string(s / 60) + "m";
  return std::to_string(s) + "s";
}

std::string size_text(std::uint64_t bytes) {
  if (bytes != 0 && bytes % (std::uint64_t{1} << 20) == 0)
    return toml_string(std::to_string(bytes >> 20) + "MB");
  if (bytes != 0 && bytes % 1024 == 0) return toml_string(std::to_string(bytes >> 10) + "kB");
  return std::to_string(bytes);
}

std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j)
    prev[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j)
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

// ---------------------------------------------------------------------------------------------------------------
// Reading the INI file

struct Place {
  std::string file;
  std::uint32_t line = 0;
  std::uint32_t column = 0;
  std::size_t order = 0;  // reading order across %include'd files: notes and errors come out in it
};

struct IniEntry {
  std::string section;
  std::size_t section_index = 0;  // which header opened the section (an index into IniReader::sections)
  std::string key;
  std::string value;
  Place key_at;
  Place value_at;
};

struct IniSection {
  std::string name;
  Place at;
};

// PgBouncer's INI dialect: comment lines start with ';' or '#' (not recognised later in a line); a value runs
// to the end of its line, trailing blanks removed; a key is made of letters, digits and _ . - * or is quoted;
// `%include FILE` reads another file in place (nested at most 10 deep). No line length limit.
class IniReader {
 public:
  IniReader(const PgbouncerImportOptions& options, std::vector<std::pair<std::size_t, Diagnostic>>& errors)
      : options_(options), errors_(errors) {}

  void read(std::string_view text, const std::string& file, int depth) {
    if (text.size() > pgbouncer_ini_max_size) {
      error(file, 1, 1, "the file is larger than " + std::to_string(pgbouncer_ini_max_size >> 20) + " MB");
      return;
    }
    std::uint32_t line_no = 0;
    for (;;) {
      ++line_no;
      auto nl = text.find('\n');
      std::string_view line = text.substr(0, nl);
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      read_line(line, file, line_no, depth);
      if (nl == std::string_view::npos) break;
      text.remove_prefix(nl + 1);
    }
  }

  std::vector<IniEntry> entries;
  std::vector<IniSection> sections;
  std::vector<std::string> included;  // files read through %include, in reading order

 private:
  void error(const std::string& file, std::uint32_t line, std::size_t column, std::string message) {
    errors_.emplace_back(
        order_, Diagnostic{Position{file, line, static_cast<std::uint32_t>(column)}, std::move(message)});
  }

  static bool key_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.' || c == '-' || c == '*';
  }

  void read_line(std::string_view line, const std::string& file, std::uint32_t line_no, int depth) {
    ++order_;
    auto at = [&](std::size_t i) { return Place{file, line_no, static_cast<std::uint32_t>(i + 1), order_}; };
    if (auto nul = line.find('\0'); nul != std::string_view::npos) {
      error(file, line_no, nul + 1, "NUL byte in the file");
      return;
    }
    std::size_t i = 0;
    while (i < line.size() && is_space(line[i]))
      ++i;
    if (i == line.size()) return;
    std::string_view rest = line.substr(i);
    if (rest.starts_with("%include") && rest.size() > 8 && (rest[8] == ' ' || rest[8] == '\t')) {
      std::size_t name_at = i + 8;
      while (name_at < line.size() && is_space(line[name_at]))
        ++name_at;
      include(line.substr(name_at), file, line_no, name_at == line.size() ? i + 1 : name_at + 1, depth);
      return;
    }
    if (rest.front() == '#' || rest.front() == ';') return;
    if (rest.front() == '[') {
      auto close = rest.find(']');
      if (close == std::string_view::npos) {
        error(file, line_no, i + 1, "section header without its closing ']'");
        return;
      }
      auto after = trim(rest.substr(close + 1));
      if (!after.empty() && after.front() != '#' && after.front() != ';') {
        error(file, line_no, i + close + 2, "unexpected text after the section header");
        return;
      }
      section_ = std::string(rest.substr(1, close - 1));
      sections.push_back({section_, at(i)});
      return;
    }
    std::size_t p = i;
    std::string key;
    if (line[p] == '\'' || line[p] == '"') {
      // 'key' (PgBouncer), or "name" with "" for a quote (database names, SQL identifier quoting).
      const char q = line[p];
      std::size_t k = p + 1;
      bool closed = false;
      while (k < line.size()) {
        if (line[k] == q) {
          if (q == '"' && k + 1 < line.size() && line[k + 1] == '"') {
            key += '"';
            k += 2;
            continue;
          }
          closed = true;
          break;
        }
        key += line[k++];
      }
      if (!closed) {
        error(file, line_no, p + 1, "quoted key without its closing quote");
        return;
      }
      if (key.empty()) {
        error(file, line_no, p + 1, "empty key");
        return;
      }
      p = k + 1;
    } else {
      while (p < line.size() && key_char(line[p]))
        ++p;
      key = std::string(line.substr(i, p - i));
      if (key.empty()) {
        error(file, line_no, p + 1,
              "expected a key, a [section], a %include or a comment; quote a key with other characters");
        return;
      }
    }
    while (p < line.size() && (line[p] == ' ' || line[p] == '\t'))
      ++p;
    if (p == line.size() || line[p] != '=') {
      error(file, line_no, p + 1, "expected '=' after the key \"" + key + "\"");
      return;
    }
    ++p;
    while (p < line.size() && (line[p] == ' ' || line[p] == '\t'))
      ++p;
    if (sections.empty()) {
      error(file, line_no, i + 1, "\"" + key + "\" comes before any [section]");
      return;
    }
    entries.push_back(
        {section_, sections.size() - 1, std::move(key), std::string(trim(line.substr(p))), at(i), at(p)});
  }

  void include(std::string_view arg, const std::string& file, std::uint32_t line_no, std::size_t column,
               int depth) {
    std::string name(trim(arg));
    if (name.empty()) {
      error(file, line_no, column, "%include needs a file name");
      return;
    }
    if (depth >= pgbouncer_max_include_depth) {
      error(file, line_no, column,
            "%include nested more than " + std::to_string(pgbouncer_max_include_depth) +
                " deep (does a file include itself?)");
      return;
    }
    if (!options_.read_include) {
      error(file, line_no, column, "cannot read the included file " + name);
      return;
    }
    std::string why;
    std::optional<std::string> text = options_.read_include(name, why);
    if (!text) {
      error(file, line_no, column, "cannot read the included file " + name + ": " + why);
      return;
    }
    if (std::find(included.begin(), included.end(), name) == included.end()) included.push_back(name);
    read(*text, name, depth + 1);
  }

  const PgbouncerImportOptions& options_;
  std::vector<std::pair<std::size_t, Diagnostic>>& errors_;
  std::string section_;
  std::size_t order_ = 0;
};

// One "key=value" of a [databases], [users] or [peers] entry: values are single-quoted when they hold spaces
// ('' for a quote), and never empty.
struct Param {
  std::string key;
  std::string value;
  Place at;  // the key's position
};

// ---------------------------------------------------------------------------------------------------------------
// The conversion

// What a [pgbouncer] key becomes.
enum class Kind : std::uint8_t {
  integer,  // a whole number into `target`, within [min, max] (pgwarden's range)
  seconds,  // PgBouncer's seconds into a pgwarden duration
  text,     // a string
  path,     // a file path, written as given
  special,  // converted by its own code (it interacts with other keys)
  unsupported,
};

struct GlobalKey {
  std::string_view name;
  Kind kind;
  std::string_view target;  // "pool.default_size"; for unsupported keys, empty
  std::string_view why;     // unsupported: why; seconds: when 0 cannot be converted, why ("" = 0 converts)
  std::int64_t min = 0;
  std::int64_t max = 0;
};

// pgwarden's ranges, as config.cpp's key table has them (the import checks its own output, so a drift shows).
constexpr std::int64_t big = 1'000'000;
constexpr std::int64_t conns = 10'000'000;
constexpr std::int64_t max_peer_id = 16383;  // proxy.peer_id and [[peer]] id: 14 bits of the cancel key

constexpr std::string_view tcp_why =
    "pgwarden keeps TCP keepalive on for every socket, with the system's TCP settings (sysctl "
    "net.ipv4.tcp_*); "
    "not configurable";
constexpr std::string_view dns_why =
    "pgwarden resolves a host name again for every new server connection with the system resolver, without a "
    "cache of its own";
constexpr std::string_view syslog_why =
    "pgwarden's log goes to stderr (a service manager keeps it); the audit log can go to syslog "
    "(audit.sinks)";
constexpr std::string_view log_toggle_why =
    "not configurable: every connect, disconnect, refusal and failed login is an audit record, and the log "
    "level (log.level) decides the rest";
constexpr std::string_view unix_socket_why = "pgwarden listens and connects over TCP only, no Unix sockets";

// Every [pgbouncer] key of PgBouncer 1.18, and those later versions added.
constexpr std::array global_keys{
    // Generic settings
    GlobalKey{"logfile", Kind::unsupported, "",
              "pgwarden logs to stderr: let the service manager (journald) keep it, or redirect it"},
    GlobalKey{"pidfile", Kind::unsupported, "",
              "not applicable: pgwarden runs in the foreground and a service manager tracks its process"},
    GlobalKey{"listen_addr", Kind::special, "proxy.listen", ""},
    GlobalKey{"listen_port", Kind::special, "proxy.listen", ""},
    GlobalKey{"unix_socket_dir", Kind::unsupported, "", unix_socket_why},
    GlobalKey{"unix_socket_mode", Kind::unsupported, "", unix_socket_why},
    GlobalKey{"unix_socket_group", Kind::unsupported, "", unix_socket_why},
    GlobalKey{
        "user", Kind::unsupported, "",
        "not applicable: pgwarden does not switch users; start it as the user it runs as (systemd User=)"},
    GlobalKey{"pool_mode", Kind::special, "pool.mode", ""},
    GlobalKey{"max_client_conn", Kind::integer, "proxy.max_client_conn", "", 1, conns},
    GlobalKey{"default_pool_size", Kind::integer, "pool.default_size", "", 1, big},
    GlobalKey{"min_pool_size", Kind::integer, "pool.min_size", "", 0, big},
    GlobalKey{"reserve_pool_size", Kind::integer, "pool.reserve_size", "", 0, big},
    GlobalKey{"reserve_pool_timeout", Kind::special, "pool.reserve_timeout", ""},
    GlobalKey{"max_db_connections", Kind::integer, "pool.max_db_connections", "", 0, big},
    GlobalKey{"max_db_client_connections", Kind::integer, "proxy.max_db_client_connections", "", 0, conns},
    GlobalKey{"max_user_connections", Kind::integer, "pool.max_user_connections", "", 0, big},
    GlobalKey{"max_user_client_connections", Kind::integer, "proxy.max_user_client_connections", "", 0,
              conns},
    GlobalKey{"server_round_robin", Kind::unsupported, "",
              "pgwarden picks idle server connections in its own order; not configurable"},
    GlobalKey{"track_extra_parameters", Kind::special, "pool.track_extra_parameters", ""},
    GlobalKey{"ignore_startup_parameters", Kind::unsupported, "",
              "not needed: pgwarden accepts every startup parameter, applies it on the server connection and "
              "resets it for the next client"},
    GlobalKey{"peer_id", Kind::integer, "proxy.peer_id", "", 0, max_peer_id},
    GlobalKey{"disable_pqexec", Kind::unsupported, "",
              "pgwarden always accepts the simple query protocol (it audits every statement in it)"},
    GlobalKey{"application_name_add_host", Kind::unsupported, "",
              "pgwarden does not change application_name; its audit records carry the client address"},
    GlobalKey{"conffile", Kind::unsupported, "", "not applicable: pgwarden takes its file with --config"},
    GlobalKey{"service_name", Kind::unsupported, "", "not applicable: a Windows service name"},
    GlobalKey{"job_name", Kind::unsupported, "", "not applicable: a Windows service name"},
    GlobalKey{"stats_period", Kind::unsupported, "",
              "pgwarden computes no periodic averages; not configurable"},
    GlobalKey{"max_prepared_statements", Kind::integer, "pool.max_prepared_statements", "", 0, big},
    GlobalKey{"scram_iterations", Kind::unsupported, "",
              "pgwarden derives SCRAM secrets from plain passwords with 4096 iterations; not configurable"},
    // Authentication settings
    GlobalKey{"auth_type", Kind::special, "auth.type", ""},
    GlobalKey{"auth_hba_file", Kind::special, "auth.hba_file", ""},
    GlobalKey{"auth_ident_file", Kind::unsupported, "",
              "pgwarden maps certificate names to users with [auth.cert_map] instead: write it by hand"},
    GlobalKey{"auth_file", Kind::special, "auth.file", ""},
    GlobalKey{"auth_user", Kind::special, "auth.query_user", ""},
    GlobalKey{"auth_query", Kind::special, "auth.query", ""},
    GlobalKey{"auth_dbname", Kind::unsupported, "",
              "pgwarden runs auth.query in the database the client asked for, as PgBouncer does without it"},
    GlobalKey{"auth_ldap_options", Kind::unsupported, "", "pgwarden has no LDAP authentication"},
    // Log settings
    GlobalKey{"syslog", Kind::unsupported, "", syslog_why},
    GlobalKey{"syslog_ident", Kind::unsupported, "", syslog_why},
    GlobalKey{"syslog_facility", Kind::unsupported, "", syslog_why},
    GlobalKey{"log_connections", Kind::unsupported, "", log_toggle_why},
    GlobalKey{"log_disconnections", Kind::unsupported, "", log_toggle_why},
    GlobalKey{"log_pooler_errors", Kind::unsupported, "", log_toggle_why},
    GlobalKey{"log_stats", Kind::unsupported, "", "pgwarden writes no periodic statistics to its log"},
    GlobalKey{"verbose", Kind::special, "log.level", ""},
    // Console access control
    GlobalKey{"admin_users", Kind::special, "proxy.admin_users", ""},
    GlobalKey{"stats_users", Kind::unsupported, "",
              "pgwarden has no read-only console role: give the users that need SHOW a place in admin_users"},
    // Connection sanity checks, timeouts
    GlobalKey{"server_reset_query", Kind::text, "pool.server_reset_query", ""},
    GlobalKey{"server_reset_query_always", Kind::unsupported, "",
              "pgwarden runs server_reset_query in session mode only; transaction mode needs no reset"},
    GlobalKey{"server_check_delay", Kind::seconds, "pool.server_check_delay", ""},
    GlobalKey{"server_check_query", Kind::unsupported, "",
              "pgwarden checks a connection idle for server_check_delay without a query (is it closed, has "
              "the server sent anything); not configurable"},
    GlobalKey{"server_fast_close", Kind::unsupported, "",
              "pgwarden closes a session-mode server connection when its client leaves; not configurable"},
    GlobalKey{"server_lifetime", Kind::seconds, "pool.server_lifetime",
              "0 makes PgBouncer use a server connection only once, while pgwarden's 0 means never close it: "
              "not converted (pgwarden's default 1h applies)"},
    GlobalKey{"server_idle_timeout", Kind::seconds, "pool.server_idle_timeout", ""},
    GlobalKey{"server_connect_timeout", Kind::seconds, "pool.server_connect_timeout",
              "0 turns the timeout off in PgBouncer; pgwarden always bounds a connect: not converted "
              "(pgwarden's default 15s applies)"},
    GlobalKey{"server_login_retry", Kind::unsupported, "",
              "pgwarden tries again for the next waiting client; waiting clients end at query_wait_timeout"},
    GlobalKey{
        "client_login_timeout", Kind::seconds, "proxy.client_login_timeout",
        "0 turns the timeout off in PgBouncer; pgwarden always bounds a login: not converted (pgwarden's "
        "default 60s applies)"},
    GlobalKey{"autodb_idle_timeout", Kind::unsupported, "", "pgwarden has no automatic (\"*\") databases"},
    GlobalKey{"pool_idle_timeout", Kind::unsupported, "",
              "pgwarden keeps a pool as long as its database is configured"},
    GlobalKey{"dns_max_ttl", Kind::unsupported, "", dns_why},
    GlobalKey{"dns_nxdomain_ttl", Kind::unsupported, "", dns_why},
    GlobalKey{"dns_zone_check_period", Kind::unsupported, "", dns_why},
    GlobalKey{"resolv_conf", Kind::unsupported, "", dns_why},
    GlobalKey{"query_wait_notify", Kind::unsupported, "", "pgwarden sends no notice while a client waits"},
    GlobalKey{"login_notify_message", Kind::unsupported, "", "pgwarden sends no notice after a login"},
    // TLS settings
    GlobalKey{"client_tls_sslmode", Kind::special, "client_tls.mode", ""},
    GlobalKey{"client_tls_key_file", Kind::path, "client_tls.key", ""},
    GlobalKey{"client_tls_cert_file", Kind::path, "client_tls.cert", ""},
    GlobalKey{"client_tls_ca_file", Kind::path, "client_tls.ca", ""},
    GlobalKey{"client_tls_protocols", Kind::special, "client_tls.min_version", ""},
    GlobalKey{"client_tls_ciphers", Kind::special, "client_tls.ciphers", ""},
    GlobalKey{"client_tls13_ciphers", Kind::text, "client_tls.ciphersuites", ""},
    GlobalKey{"client_tls_ecdhcurve", Kind::unsupported, "",
              "pgwarden uses OpenSSL's default key exchange groups; not configurable"},
    GlobalKey{"client_tls_dheparams", Kind::unsupported, "",
              "pgwarden uses OpenSSL's default key exchange groups; not configurable"},
    GlobalKey{"server_tls_sslmode", Kind::special, "server_tls.mode", ""},
    GlobalKey{"server_tls_ca_file", Kind::path, "server_tls.ca", ""},
    GlobalKey{"server_tls_key_file", Kind::special, "server_tls.key", ""},
    GlobalKey{"server_tls_cert_file", Kind::special, "server_tls.cert", ""},
    GlobalKey{"server_tls_protocols", Kind::special, "server_tls.min_version", ""},
    GlobalKey{"server_tls_ciphers", Kind::special, "server_tls.ciphers", ""},
    GlobalKey{"server_tls13_ciphers", Kind::text, "server_tls.ciphersuites", ""},
    // Dangerous timeouts
    GlobalKey{"query_timeout", Kind::unsupported, "",
              "set statement_timeout in PostgreSQL instead (ALTER ROLE or ALTER DATABASE ... SET)"},
    GlobalKey{"query_wait_timeout", Kind::seconds, "pool.query_wait_timeout", ""},
    GlobalKey{"cancel_wait_timeout", Kind::unsupported, "", "pgwarden forwards a cancel request at once"},
    GlobalKey{"client_idle_timeout", Kind::seconds, "pool.client_idle_timeout", ""},
    GlobalKey{"idle_transaction_timeout", Kind::seconds, "pool.idle_transaction_timeout", ""},
    GlobalKey{"transaction_timeout", Kind::unsupported, "",
              "set transaction_timeout (PostgreSQL 17) or idle_in_transaction_session_timeout in PostgreSQL"},
    GlobalKey{"suspend_timeout", Kind::unsupported, "",
              "pgwarden's SUSPEND waits for open transactions with no timeout of its own, and its rolling "
              "restart (proxy.handover_socket) needs no SUSPEND"},
    // Low-level network settings
    GlobalKey{"pkt_buf", Kind::unsupported, "", "pgwarden sizes its buffers itself; not configurable"},
    GlobalKey{"max_packet_size", Kind::special, "proxy.max_packet_size", ""},
    GlobalKey{"listen_backlog", Kind::unsupported, "",
              "pgwarden uses the system's largest backlog (somaxconn)"},
    GlobalKey{"sbuf_loopcnt", Kind::unsupported, "",
              "pgwarden's I/O threads (proxy.workers) keep one busy connection from stalling others"},
    GlobalKey{"so_reuseport", Kind::unsupported, "",
              "not needed: one pgwarden uses every core (proxy.workers threads)"},
    GlobalKey{"tcp_defer_accept", Kind::unsupported, "", tcp_why},
    GlobalKey{"tcp_socket_buffer", Kind::unsupported, "", tcp_why},
    GlobalKey{"tcp_keepalive", Kind::unsupported, "", tcp_why},
    GlobalKey{"tcp_keepcnt", Kind::unsupported, "", tcp_why},
    GlobalKey{"tcp_keepidle", Kind::unsupported, "", tcp_why},
    GlobalKey{"tcp_keepintvl", Kind::unsupported, "", tcp_why},
    GlobalKey{"tcp_user_timeout", Kind::unsupported, "", tcp_why},
};

const GlobalKey* find_global(std::string_view name) {
  for (const auto& k : global_keys) {
    if (k.name == name) return &k;
  }
  return nullptr;
}

constexpr std::array<std::string_view, 6> ssl_modes{"disable", "allow",     "prefer",
                                                    "require", "verify-ca", "verify-full"};
constexpr std::array<std::string_view, 3> pool_modes{"session", "transaction", "statement"};

// PgBouncer 1.18's default auth_query, used when auth_user is set without one.
constexpr std::string_view pgbouncer_auth_query = "SELECT usename, passwd FROM pg_shadow WHERE usename=$1";

// One key of the TOML being written.
struct TomlLine {
  std::string key;
  std::string value;               // a TOML literal
  std::string source;              // trailing comment: where it came from
  std::vector<std::string> above;  // comment lines written above the key
};

struct TomlTable {
  std::vector<TomlLine> lines;

  TomlLine* find(std::string_view key) {
    for (auto& l : lines) {
      if (l.key == key) return &l;
    }
    return nullptr;
  }
  const TomlLine* find(std::string_view key) const {
    for (const auto& l : lines) {
      if (l.key == key) return &l;
    }
    return nullptr;
  }
  void set(TomlLine line) {
    if (TomlLine* l = find(line.key)) {
      *l = std::move(line);
    } else {
      lines.push_back(std::move(line));
    }
  }
  void erase(std::string_view key) {
    std::erase_if(lines, [&](const TomlLine& l) { return l.key == key; });
  }
};

constexpr std::array<std::string_view, 6> table_order{"proxy", "client_tls", "server_tls",
                                                      "auth",  "pool",       "log"};
// [[database]] keys in the order they are written; pool keys use PgBouncer's spellings where pgwarden has
// them.
constexpr std::array<std::string_view, 13> database_order{"name",
                                                          "host",
                                                          "port",
                                                          "dbname",
                                                          "user",
                                                          "password",
                                                          "pool_mode",
                                                          "pool_size",
                                                          "min_size",
                                                          "reserve_size",
                                                          "max_db_connections",
                                                          "server_lifetime",
                                                          "query_wait_timeout"};

class Converter {
 public:
  Converter(const PgbouncerImportOptions& options, std::vector<std::pair<std::size_t, Diagnostic>>& errors,
            std::vector<std::pair<std::size_t, ImportNote>>& notes)
      : options_(options), errors_(errors), notes_(notes) {
    std::size_t index = 0;
    for (const auto& k : key_reference()) {
      std::string name = std::string(k.section) + "." + std::string(k.name);
      key_rank_[name] = index++;
      if (k.supported) supported_.insert(std::move(name));
    }
  }

  void run(const IniReader& ini) {
    collect(ini);
    bool has_main = false;
    for (const auto& s : ini.sections) {
      if (s.name == "pgbouncer") has_main = true;
    }
    if (!has_main) {
      note_file("[pgbouncer]",
                "the file has no [pgbouncer] section (PgBouncer would not start): PgBouncer's "
                "defaults are written");
    }
    for (const IniEntry* e : ordered(global_)) {
      global_key(*e);
    }
    listen();
    pool_mode();
    reserve_timeout();
    client_tls();
    server_tls();
    auth();
    simple_specials();
    for (const IniEntry* e : ordered(databases_)) {
      database(*e);
    }
    for (const IniEntry* e : ordered(users_)) {
      user(*e);
    }
    for (const IniEntry* e : ordered(peers_)) {
      peer(*e);
    }
    peering_off();
    unknown_sections(ini);
    cap_min_sizes();
  }

  std::string render(const IniReader& ini) const {
    std::ostringstream out;
    out << "# pgwarden configuration converted from " << options_.ini_name
        << " by `pgwarden import-pgbouncer`";
    if (!ini.included.empty()) {
      out << "\n# (and from the files it includes:";
      for (std::size_t i = 0; i < ini.included.size(); ++i)
        out << (i == 0 ? " " : ", ") << ini.included[i];
      out << ")";
    }
    out << ".\n"
           "# Check it with: pgwarden --config THIS_FILE --check\n"
           "# Paths are written as PgBouncer had them; pgwarden reads a relative path from the directory of "
           "this\n"
           "# file (PgBouncer read it from its working directory). Comments mark what changed meaning; the\n"
           "# PgBouncer keys pgwarden does not take over were listed on stderr with their line numbers.\n";
    for (std::string_view name : table_order) {
      auto it = tables_.find(std::string(name));
      if (it == tables_.end() || it->second.lines.empty()) continue;
      std::vector<TomlLine> lines = it->second.lines;
      std::stable_sort(lines.begin(), lines.end(), [&](const TomlLine& a, const TomlLine& b) {
        return rank(std::string(name) + "." + a.key) < rank(std::string(name) + "." + b.key);
      });
      out << "\n[" << name << "]\n";
      write_lines(out, lines);
    }
    for (const auto& db : database_tables_) {
      std::vector<TomlLine> lines = db.lines;
      std::stable_sort(lines.begin(), lines.end(), [](const TomlLine& a, const TomlLine& b) {
        auto pos = [](std::string_view k) {
          return std::find(database_order.begin(), database_order.end(), k) - database_order.begin();
        };
        return pos(a.key) < pos(b.key);
      });
      out << "\n[[database]]\n";
      write_lines(out, lines);
    }
    for (const auto& [id, p] : peer_tables_) {
      out << "\n[[peer]]\n";
      write_lines(out, p.second.lines);  // id, host, port
    }
    out << "\n# New in pgwarden: a hash-chained audit log of every modifying statement ([audit], on by "
           "default,\n"
           "# written to audit.jsonl next to this file). `pgwarden --config-reference` lists every key.\n";
    return out.str();
  }

 private:
  // ---- bookkeeping ----

  void error(const Place& at, std::string message) {
    errors_.emplace_back(at.order, Diagnostic{Position{at.file, at.line, at.column}, std::move(message)});
  }
  void note(const Place& at, std::string key, std::string message) {
    notes_.emplace_back(at.order, ImportNote{at.file, at.line, std::move(key), std::move(message)});
  }
  // About a key that is not set: after every note with a line.
  void note_file(std::string key, std::string message) {
    notes_.emplace_back(std::numeric_limits<std::size_t>::max(),
                        ImportNote{options_.ini_name, 0, std::move(key), std::move(message)});
  }

  std::size_t rank(const std::string& key) const {
    auto it = key_rank_.find(key);
    return it == key_rank_.end() ? key_rank_.size() : it->second;
  }

  bool supports(std::string_view target) const { return supported_.contains(std::string(target)); }

  std::string where(const Place& at) const {
    return at.file == options_.ini_name ? "line " + std::to_string(at.line)
                                        : at.file + " line " + std::to_string(at.line);
  }
  std::string source(const IniEntry& e) const { return e.key + " (" + where(e.key_at) + ")"; }

  // A comment as "# " lines of at most 110 columns, broken at spaces (a longer word stays whole).
  static void write_comment(std::ostringstream& out, std::string_view text) {
    constexpr std::size_t width = 110 - 2;
    while (text.size() > width) {
      auto cut = text.rfind(' ', width);
      if (cut == std::string_view::npos || cut == 0) cut = text.find(' ', width);
      if (cut == std::string_view::npos) break;
      out << "# " << text.substr(0, cut) << "\n";
      text.remove_prefix(cut + 1);
    }
    out << "# " << text << "\n";
  }

  static void write_lines(std::ostringstream& out, const std::vector<TomlLine>& lines) {
    constexpr std::size_t max_pad = 44;
    std::size_t width = 0;
    for (const auto& l : lines) {
      std::size_t w = l.key.size() + 3 + l.value.size();
      if (!l.source.empty() && w <= max_pad) width = std::max(width, w);
    }
    for (const auto& l : lines) {
      for (const auto& c : l.above)
        write_comment(out, c);
      std::string text = l.key + " = " + l.value;
      if (!l.source.empty()) {
        text += text.size() < width ? std::string(width - text.size(), ' ') : std::string();
        text += "  # " + l.source;
      }
      out << text << "\n";
    }
  }

  // Writes `key` of table `target` ("pool.default_size"), unless this build of pgwarden does not support it.
  bool set(std::string_view target, std::string value, const IniEntry* from,
           std::vector<std::string> above = {}, std::string source_text = {}) {
    auto dot = target.find('.');
    std::string table(target.substr(0, dot));
    std::string key(target.substr(dot + 1));
    if (!supports(target)) {
      if (from != nullptr) {
        note(from->key_at, from->key,
             "pgwarden's " + std::string(target) + " is not supported yet by this build: not converted");
      } else {
        note_file(std::string(target), "not supported yet by this build: not converted");
      }
      return false;
    }
    if (source_text.empty() && from != nullptr) source_text = source(*from);
    tables_[table].set({std::move(key), std::move(value), std::move(source_text), std::move(above)});
    return true;
  }

  bool has(std::string_view target) const {
    auto dot = target.find('.');
    auto it = tables_.find(std::string(target.substr(0, dot)));
    if (it == tables_.end()) return false;
    return it->second.find(target.substr(dot + 1)) != nullptr;
  }

  const IniEntry* get(std::string_view name) const {
    auto it = global_.find(std::string(name));
    return it == global_.end() ? nullptr : it->second;
  }

  // The last entry of each name wins, as in PgBouncer; the earlier ones are noted.
  void last_wins(std::map<std::string, const IniEntry*>& into, const IniEntry& e, std::string_view label) {
    auto [it, inserted] = into.try_emplace(e.key, &e);
    if (!inserted) {
      note(it->second->key_at, std::string(label) + e.key,
           "set again at " + where(e.key_at) + ": PgBouncer uses the last value, and so does the import");
      it->second = &e;
    }
  }

  void collect(const IniReader& ini) {
    for (const auto& e : ini.entries) {
      if (e.section == "pgbouncer") {
        last_wins(global_, e, "");
      } else if (e.section == "databases") {
        last_wins(databases_, e, "[databases] ");
      } else if (e.section == "users") {
        last_wins(users_, e, "[users] ");
      } else if (e.section == "peers") {
        last_wins(peers_, e, "[peers] ");
      }
    }
  }

  static std::vector<const IniEntry*> ordered(const std::map<std::string, const IniEntry*>& m) {
    std::vector<const IniEntry*> out;
    out.reserve(m.size());
    for (const auto& [k, e] : m)
      out.push_back(e);
    std::sort(out.begin(), out.end(),
              [](const IniEntry* a, const IniEntry* b) { return a->key_at.order < b->key_at.order; });
    return out;
  }

  // ---- values ----

  std::optional<std::string> text(std::string_view value, const Place& at, const std::string& label) {
    if (!valid_utf8(value)) {
      error(at, label + ": the value is not valid UTF-8, which a TOML file cannot hold");
      return std::nullopt;
    }
    return toml_string(value);
  }

  // A whole number as PgBouncer reads it (decimal; a leading 0 would make it octal there, so it is refused).
  std::optional<std::int64_t> integer(std::string_view value, const Place& at, const std::string& label) {
    std::string_view digits = value;
    bool negative = false;
    if (!digits.empty() && (digits.front() == '-' || digits.front() == '+')) {
      negative = digits.front() == '-';
      digits.remove_prefix(1);
    }
    bool ok = !digits.empty() && digits.size() <= 10 &&
              std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; });
    if (ok && digits.size() > 1 && digits.front() == '0') {
      error(at, label + ": invalid value \"" + std::string(value) +
                    "\": PgBouncer reads a number with a leading 0 as octal; write it without the 0");
      return std::nullopt;
    }
    std::int64_t n = 0;
    if (ok) {
      for (char c : digits)
        n = n * 10 + (c - '0');
      ok = n <= std::numeric_limits<std::int32_t>::max();
    }
    if (!ok) {
      error(at, label + ": invalid value \"" + std::string(value) + "\": expected a whole number");
      return std::nullopt;
    }
    return negative ? -n : n;
  }

  // PgBouncer's seconds ("15", "0.5", "3600.0") as milliseconds; a fraction of a millisecond is rounded up.
  std::optional<std::uint64_t> seconds(std::string_view value, const Place& at, const std::string& label) {
    auto dot = value.find('.');
    std::string_view whole = value.substr(0, dot);
    std::string_view fraction = dot == std::string_view::npos ? std::string_view{} : value.substr(dot + 1);
    auto digits = [](std::string_view s) {
      return std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
    };
    if ((whole.empty() && fraction.empty()) || !digits(whole) || !digits(fraction) || whole.size() > 9) {
      error(at, label + ": invalid value \"" + std::string(value) +
                    "\": expected seconds, such as 15 or 0.5 (PgBouncer takes no unit)");
      return std::nullopt;
    }
    std::uint64_t ms = 0;
    for (char c : whole)
      ms = ms * 10 + static_cast<std::uint64_t>(c - '0');
    ms *= 1000;
    std::uint64_t scale = 100;
    for (std::size_t i = 0; i < fraction.size(); ++i) {
      auto d = static_cast<std::uint64_t>(fraction[i] - '0');
      if (i < 3) {
        ms += d * scale;
        scale /= 10;
      } else if (d != 0) {
        ++ms;  // below a millisecond: round up, so that a small timeout does not become "off"
        break;
      }
    }
    return ms;
  }

  std::optional<std::string> lookup(std::string_view value, std::span<const std::string_view> allowed,
                                    const Place& at, const std::string& label) {
    std::string v = lower(value);
    std::string list;
    for (auto a : allowed) {
      if (v == a) return v;
      list += list.empty() ? "" : ", ";
      list += a;
    }
    error(at, label + ": invalid value \"" + std::string(value) + "\": expected one of " + list);
    return std::nullopt;
  }

  // ---- [pgbouncer] ----

  void global_key(const IniEntry& e) {
    const GlobalKey* k = find_global(e.key);
    if (k == nullptr) {
      std::string hint;
      std::size_t best = 3;
      for (const auto& g : global_keys) {
        if (auto d = edit_distance(e.key, g.name); d < best) {
          best = d;
          hint = " (did you mean '" + std::string(g.name) + "'?)";
        }
      }
      note(e.key_at, e.key, "not a PgBouncer setting" + hint + ": not converted");
      return;
    }
    switch (k->kind) {
      case Kind::unsupported:
        note(e.key_at, e.key, std::string(k->why));
        return;
      case Kind::special:
        return;  // converted after every key is known
      case Kind::integer: {
        auto n = integer(e.value, e.value_at, e.key);
        if (!n) return;
        if (*n < k->min || *n > k->max) {
          note(e.key_at, e.key,
               std::to_string(*n) + " is outside pgwarden's range for " + std::string(k->target) + " [" +
                   std::to_string(k->min) + ", " + std::to_string(k->max) + "]: not converted");
          return;
        }
        set(k->target, std::to_string(*n), &e);
        return;
      }
      case Kind::seconds: {
        auto ms = seconds(e.value, e.value_at, e.key);
        if (!ms) return;
        if (*ms == 0 && !k->why.empty()) {
          note(e.key_at, e.key, std::string(k->why));
          return;
        }
        set(k->target, toml_string(duration_text(*ms)), &e);
        return;
      }
      case Kind::text:
      case Kind::path: {
        auto v = text(e.value, e.value_at, e.key);
        if (v) set(k->target, *v, &e);
        return;
      }
    }
  }

  void listen() {
    const IniEntry* addr = get("listen_addr");
    const IniEntry* port_e = get("listen_port");
    std::int64_t port = 6432;
    if (port_e != nullptr) {
      auto p = integer(port_e->value, port_e->value_at, "listen_port");
      if (!p) return;
      if (*p < 1 || *p > 65535) {
        error(port_e->value_at, "listen_port: " + std::to_string(*p) + " is not a TCP port (1-65535)");
        return;
      }
      port = *p;
    }
    std::vector<std::string> hosts = addr != nullptr ? split_list(addr->value) : std::vector<std::string>{};
    std::vector<std::string> out;
    auto add = [&](const std::string& host) {
      std::string a = host.find(':') != std::string::npos ? "[" + host + "]:" + std::to_string(port)
                                                          : host + ":" + std::to_string(port);
      if (std::find(out.begin(), out.end(), a) == out.end()) out.push_back(std::move(a));
    };
    for (const auto& h : hosts) {
      if (!valid_utf8(h)) {
        error(addr->value_at, "listen_addr: the value is not valid UTF-8, which a TOML file cannot hold");
        return;
      }
      if (h == "*") {
        add("0.0.0.0");
        add("::");
      } else {
        add(h.starts_with('[') && h.ends_with(']') ? h.substr(1, h.size() - 2) : h);
      }
    }
    std::string from;
    if (addr != nullptr) from = source(*addr);
    if (port_e != nullptr) from += (from.empty() ? "" : ", ") + source(*port_e);
    std::vector<std::string> above;
    if (out.empty()) {
      add("127.0.0.1");
      std::string why = "PgBouncer listened on its Unix socket only; pgwarden has no Unix socket: \"" +
                        out[0] + "\" (loopback) is written";
      above.push_back("TODO: " + options_.ini_name + " names no listen_addr: " + why);
      if (addr != nullptr) {
        note(addr->key_at, "listen_addr", "empty: " + why);
      } else {
        note_file("listen_addr", "not set: " + why);
      }
    }
    set("proxy.listen", toml_array(out), nullptr, std::move(above), from);
  }

  void pool_mode() {
    if (const IniEntry* e = get("pool_mode")) {
      if (auto m = lookup(e->value, pool_modes, e->value_at, "pool_mode"))
        set("pool.mode", toml_string(*m), e);
      return;
    }
    set("pool.mode", toml_string("session"), nullptr,
        {"pool_mode is not set: PgBouncer's default, session (pgwarden's default is \"transaction\")"});
  }

  void reserve_timeout() {
    const IniEntry* e = get("reserve_pool_timeout");
    if (e == nullptr) return;
    auto ms = seconds(e->value, e->value_at, e->key);
    if (!ms) return;
    if (*ms > 0) {
      set("pool.reserve_timeout", toml_string(duration_text(*ms)), e);
      return;
    }
    reserve_disabled_ = true;
    note(e->key_at, e->key,
         "0 turns PgBouncer's reserve pool off; pgwarden has no off value for reserve_timeout: reserve_size "
         "= 0 "
         "is written instead, for every database");
    set("pool.reserve_size", "0", e);
  }

  // Placeholders for files a TLS mode needs and pgbouncer.ini does not name: `--check` reports them until
  // they exist.
  void placeholder(std::string_view target, std::string_view file, std::string_view pgbouncer_key,
                   std::string_view what) {
    set(target, toml_string(file), nullptr,
        {"TODO: " + options_.ini_name + " names no " + std::string(pgbouncer_key) + ": " +
         std::string(what)});
  }

  void client_tls() {
    const IniEntry* e = get("client_tls_sslmode");
    std::string mode = "disable";
    if (e != nullptr) {
      auto m = lookup(e->value, ssl_modes, e->value_at, "client_tls_sslmode");
      if (!m) return;
      mode = *m;
      std::vector<std::string> above;
      if (mode == "verify-full") {
        mode = "verify-ca";
        above.emplace_back(
            "PgBouncer's verify-full checks a client certificate as verify-ca does; pgwarden's verify-full "
            "also "
            "requires its CN to equal the user name");
      }
      set("client_tls.mode", toml_string(mode), e, std::move(above));
    } else {
      set("client_tls.mode", toml_string(mode), nullptr,
          {"client_tls_sslmode is not set: PgBouncer's default, no TLS for clients (pgwarden's default is "
           "\"require\")"});
      note_file(
          "client_tls_sslmode",
          "not set: PgBouncer's default \"disable\" is written, so clients connect without TLS (pgwarden's "
          "default is \"require\")");
    }
    if (mode != "disable") {
      std::vector<std::string> missing;
      if (!has("client_tls.cert")) {
        placeholder("client_tls.cert", "server.crt", "client_tls_cert_file",
                    "the certificate chain (PEM) pgwarden shows clients");
        missing.emplace_back("client_tls_cert_file (placeholder server.crt)");
      }
      if (!has("client_tls.key")) {
        placeholder("client_tls.key", "server.key", "client_tls_key_file",
                    "the private key (PEM) of the certificate");
        missing.emplace_back("client_tls_key_file (placeholder server.key)");
      }
      if (!missing.empty() && e != nullptr) {
        std::string list = missing[0] + (missing.size() > 1 ? " and " + missing[1] : "");
        note(e->key_at, "client_tls_sslmode",
             "\"" + lower(e->value) + "\" needs a certificate and its key, but " + options_.ini_name +
                 " names no " + list + ": pgwarden --check reports the missing files until they exist");
      }
    }
    const IniEntry* type = get("auth_type");
    bool cert_auth = type != nullptr && lower(type->value) == "cert";
    if ((mode == "verify-ca" || cert_auth) && !has("client_tls.ca")) {
      placeholder("client_tls.ca", "client-ca.crt", "client_tls_ca_file",
                  "the CA that signs client certificates");
      const IniEntry* at = cert_auth ? type : e;
      note(at->key_at, at->key,
           "\"" + lower(at->value) + "\" checks client certificates, but " + options_.ini_name +
               " names no client_tls_ca_file: placeholder client-ca.crt is written; pgwarden --check reports "
               "it "
               "until it exists");
    }
    protocols("client_tls_protocols", "client_tls.min_version");
    ciphers("client_tls_ciphers", "client_tls.ciphers");
  }

  void server_tls() {
    const IniEntry* e = get("server_tls_sslmode");
    std::string mode = "prefer";
    if (e != nullptr) {
      auto m = lookup(e->value, ssl_modes, e->value_at, "server_tls_sslmode");
      if (!m) return;
      mode = *m;
      std::vector<std::string> above;
      if ((mode == "allow" || mode == "prefer" || mode == "require") && has("server_tls.ca")) {
        above.push_back("with server_tls.ca set, pgwarden verifies PostgreSQL's certificate chain in \"" +
                        mode + "\" too (as libpq does); PgBouncer did not");
      }
      set("server_tls.mode", toml_string(mode), e, std::move(above));
    } else {
      set("server_tls.mode", toml_string(mode), nullptr,
          {"server_tls_sslmode is not set: PgBouncer's default was disable before 1.20 and prefer since; "
           "prefer works wherever either did (pgwarden's default is \"verify-full\")"});
    }
    if ((mode == "verify-ca" || mode == "verify-full") && !has("server_tls.ca") && e != nullptr) {
      placeholder("server_tls.ca", "root.crt", "server_tls_ca_file",
                  "the CA that signs PostgreSQL's certificate");
      note(e->key_at, "server_tls_sslmode",
           "\"" + mode + "\" verifies PostgreSQL's certificate, but " + options_.ini_name +
               " names no server_tls_ca_file (PgBouncer fell back to a default CA file): placeholder "
               "root.crt is "
               "written; pgwarden --check reports it until it exists");
    }
    const IniEntry* cert = get("server_tls_cert_file");
    const IniEntry* key = get("server_tls_key_file");
    if ((cert == nullptr) != (key == nullptr)) {
      const IniEntry* lone = cert != nullptr ? cert : key;
      note(lone->key_at, lone->key,
           "server_tls_cert_file and server_tls_key_file go together (a client certificate and its key), and "
           "only one is set: not converted");
    } else if (cert != nullptr) {
      for (const IniEntry* f : {cert, key}) {
        if (auto v = text(f->value, f->value_at, f->key))
          set(f == cert ? "server_tls.cert" : "server_tls.key", *v, f);
      }
    }
    protocols("server_tls_protocols", "server_tls.min_version");
    ciphers("server_tls_ciphers", "server_tls.ciphers");
  }

  void protocols(std::string_view name, std::string_view target) {
    const IniEntry* e = get(name);
    if (e == nullptr) return;
    std::set<int> versions;  // 10 = TLS 1.0 ... 13 = TLS 1.3
    for (const auto& item : split_list(e->value, ", :")) {
      std::string v = lower(item);
      if (v == "all" || v == "legacy") {
        versions.insert({10, 11, 12, 13});
      } else if (v == "secure" || v == "default") {
        versions.insert({12, 13});
      } else if (v == "tlsv1" || v == "tlsv1.0") {
        versions.insert(10);
      } else if (v == "tlsv1.1") {
        versions.insert(11);
      } else if (v == "tlsv1.2") {
        versions.insert(12);
      } else if (v == "tlsv1.3") {
        versions.insert(13);
      } else {
        error(e->value_at, std::string(name) + ": unknown TLS protocol \"" + item +
                               "\": expected tlsv1.0, tlsv1.1, tlsv1.2, tlsv1.3, all, secure or legacy");
        return;
      }
    }
    if (versions.empty()) {
      error(e->value_at, std::string(name) + ": names no TLS protocol");
      return;
    }
    int lowest = *versions.begin();
    std::string min = lowest == 13 ? "TLSv1.3" : "TLSv1.2";
    if (lowest < 12) {
      note(e->key_at, e->key, "pgwarden refuses TLS 1.0 and 1.1: min_version = \"TLSv1.2\" is written");
    } else if (!versions.contains(13)) {
      note(e->key_at, e->key,
           "pgwarden cannot turn TLS 1.3 off (it only sets the lowest version): TLS 1.3 stays allowed");
    }
    set(target, toml_string(min), e);
  }

  void ciphers(std::string_view name, std::string_view target) {
    const IniEntry* e = get(name);
    if (e == nullptr) return;
    std::string v = lower(e->value);
    if (v == "default" || v == "secure" || v == "fast" || v == "normal") {
      note(e->key_at, e->key,
           "\"" + v +
               "\" is PgBouncer's name for OpenSSL's default list: pgwarden's default \"HIGH:!aNULL:!MD5\" "
               "is kept");
      return;
    }
    if (v == "all") {
      note(e->key_at, e->key,
           "\"all\" would allow ciphers without authentication or with broken algorithms: pgwarden's default "
           "\"HIGH:!aNULL:!MD5\" is kept");
      return;
    }
    if (auto t = text(e->value, e->value_at, e->key)) set(target, *t, e);
  }

  void auth() {
    const IniEntry* type_e = get("auth_type");
    std::string type = "md5";
    std::string written;  // the auth.type written, "" for pgwarden's default (scram-sha-256)
    if (type_e != nullptr) {
      constexpr std::array<std::string_view, 9> types{"any", "trust", "plain", "md5",          "cert",
                                                      "hba", "pam",   "ldap",  "scram-sha-256"};
      auto t = lookup(type_e->value, types, type_e->value_at, "auth_type");
      if (!t) return;
      type = *t;
    }
    if (type == "md5" || type == "scram-sha-256" || type == "cert") {
      written = type;
      if (type_e != nullptr) {
        set("auth.type", toml_string(type), type_e);
      } else {
        set("auth.type", toml_string(type), nullptr,
            {"auth_type is not set: PgBouncer's default, md5 (pgwarden's default is \"scram-sha-256\"); a "
             "user "
             "whose secret is SCRAM gets SCRAM, as in PgBouncer"});
      }
    } else if (type == "plain") {
      written = "password";
      set("auth.type", toml_string("password"), type_e,
          {"PgBouncer's plain: pgwarden takes a cleartext password only over TLS"});
    } else if (type == "trust") {
      written = "trust";
      set("auth.type", toml_string("trust"), type_e,
          {"PgBouncer's trust still needed the user name in auth_file; pgwarden's trust lets any user name "
           "in"});
      note(type_e->key_at, "auth_type",
           "pgwarden's trust lets in any user name, where PgBouncer's needed it in auth_file: consider "
           "scram-sha-256, or cert");
    } else if (type == "hba") {
      // hba lines each name their method; auth.type stays pgwarden's default for anything they do not cover.
      if (const IniEntry* hba = get("auth_hba_file")) {
        if (auto v = text(hba->value, hba->value_at, hba->key)) {
          set("auth.hba_file", *v, hba,
              {"auth_type = hba: each connection's method comes from the hba file's first matching line; "
               "pgwarden takes host, hostssl and hostnossl lines (--check reports the others)"});
        }
      } else {
        note(type_e->key_at, "auth_type", "hba without auth_hba_file: there are no rules to convert");
      }
    } else if (type == "any") {
      note(type_e->key_at, "auth_type",
           "pgwarden has no \"any\" (log in without a password under a name the database forces): use trust "
           "with [[database]] user = \"...\" if that is really wanted; not converted");
    } else {  // pam, ldap
      note(type_e->key_at, "auth_type", "pgwarden has no " + type + " authentication: not converted");
    }
    if (type != "hba") {
      if (const IniEntry* hba = get("auth_hba_file")) {
        note(hba->key_at, hba->key, "PgBouncer reads it only with auth_type = hba: not converted");
      }
    }
    // Secrets: the auth file named on the command line, else pgbouncer.ini's.
    const IniEntry* file_e = get("auth_file");
    if (options_.userlist_name) {
      std::vector<std::string> above;
      if (file_e != nullptr) {
        above.push_back("the auth file named on the command line; " + options_.ini_name + " names " +
                        file_e->value + " (" + where(file_e->key_at) + ")");
      }
      if (auto v = text(*options_.userlist_name, Place{options_.ini_name, 1, 1, 0}, "userlist")) {
        set("auth.file", *v, nullptr, std::move(above), "from the command line");
      }
    } else if (file_e != nullptr) {
      if (auto v = text(file_e->value, file_e->value_at, file_e->key)) set("auth.file", *v, file_e);
    }
    const IniEntry* user_e = get("auth_user");
    const IniEntry* query_e = get("auth_query");
    if (user_e != nullptr) {
      auto u = text(user_e->value, user_e->value_at, user_e->key);
      if (u) set("auth.query_user", *u, user_e);
      if (query_e != nullptr) {
        if (auto q = text(query_e->value, query_e->value_at, query_e->key)) set("auth.query", *q, query_e);
      } else {
        set("auth.query", toml_string(pgbouncer_auth_query), nullptr,
            {"auth_user is set without auth_query: PgBouncer 1.18's default query"});
      }
    } else if (query_e != nullptr) {
      note(query_e->key_at, query_e->key, "PgBouncer runs auth_query only for an auth_user: not converted");
    }
    bool needs_secrets = written != "cert" && written != "trust";
    if (needs_secrets && !has("auth.file") && !has("auth.query")) {
      placeholder("auth.file", "userlist.txt", "auth_file",
                  "the users' secrets, in PgBouncer's format (\"user\" \"SCRAM-SHA-256$...\")");
      note_file("auth_file", "not set: auth_type " + type +
                                 " needs the users' secrets; placeholder userlist.txt is written "
                                 "(pgwarden --check reports it until it exists)");
    }
  }

  void simple_specials() {
    if (const IniEntry* e = get("verbose")) {
      if (auto n = integer(e->value, e->value_at, e->key)) {
        std::string level = *n <= 0 ? "info" : *n == 1 ? "debug" : "trace";
        set("log.level", toml_string(level), e);
      }
    }
    if (const IniEntry* e = get("admin_users")) {
      auto users = split_list(e->value);
      bool ok = std::all_of(users.begin(), users.end(), [](const std::string& u) { return valid_utf8(u); });
      if (!ok) {
        error(e->value_at, "admin_users: the value is not valid UTF-8, which a TOML file cannot hold");
      } else if (!users.empty()) {
        set("proxy.admin_users", toml_array(users), e);
      }
    }
    if (const IniEntry* e = get("track_extra_parameters")) {
      // pgwarden keeps these for every client already.
      static constexpr std::array<std::string_view, 6> always{
          "client_encoding", "datestyle", "intervalstyle", "timezone", "standard_conforming_strings",
          "application_name"};
      std::vector<std::string> extra;
      for (auto& p : split_list(e->value)) {
        if (std::find(always.begin(), always.end(), lower(p)) == always.end() && valid_utf8(p))
          extra.push_back(std::move(p));
      }
      if (!extra.empty()) {
        set("pool.track_extra_parameters", toml_array(extra), e);
      } else {
        note(e->key_at, e->key,
             "pgwarden keeps these parameters for every client already: nothing to convert");
      }
    }
    if (const IniEntry* e = get("max_packet_size")) max_packet_size(*e);
    if (!has("proxy.max_client_conn") && get("max_client_conn") == nullptr) {
      set("proxy.max_client_conn", "100", nullptr,
          {"max_client_conn is not set: PgBouncer's default, 100 (pgwarden's default is 1000)"});
    }
  }

  // pgwarden's bound is on the messages it holds whole; PgBouncer's default (2^31 - 1) is above PostgreSQL's
  // own.
  void max_packet_size(const IniEntry& e) {
    auto n = integer(e.value, e.value_at, e.key);
    if (!n) return;
    constexpr std::int64_t lowest = 1024, highest = 0x3fffffff;
    std::int64_t v = std::clamp(*n, lowest, highest);
    if (v != *n) {
      note(e.key_at, e.key,
           std::to_string(*n) +
               " is outside pgwarden's range [1024, 1073741823] (PostgreSQL's own limit is 1 GB): " +
               std::to_string(v) + " is written");
    }
    set("proxy.max_packet_size", size_text(static_cast<std::uint64_t>(v)), &e,
        {"pgwarden streams rows and COPY data whatever their size; this bounds the messages it holds whole "
         "(Query, Parse, Bind)"});
  }

  // ---- [databases], [users] ----

  std::optional<std::vector<Param>> params(const IniEntry& e, const std::string& label) {
    std::vector<Param> out;
    std::string_view v = e.value;
    std::size_t i = 0;
    auto at = [&](std::size_t k) {
      Place p = e.value_at;
      p.column += static_cast<std::uint32_t>(k);
      return p;
    };
    auto blank = [](char c) { return c == ' ' || c == '\t'; };
    while (i < v.size()) {
      while (i < v.size() && blank(v[i]))
        ++i;
      if (i == v.size()) break;
      std::size_t key_start = i;
      while (i < v.size() && v[i] != '=' && !blank(v[i]))
        ++i;
      std::string key(v.substr(key_start, i - key_start));
      while (i < v.size() && blank(v[i]))
        ++i;
      if (i == v.size() || v[i] != '=' || key.empty()) {
        error(at(key.empty() ? i : key_start), label + ": expected key=value");
        return std::nullopt;
      }
      ++i;
      while (i < v.size() && blank(v[i]))
        ++i;
      std::string value;
      std::size_t value_start = i;
      if (i < v.size() && v[i] == '\'') {
        ++i;
        bool closed = false;
        while (i < v.size()) {
          if (v[i] == '\'') {
            if (i + 1 < v.size() && v[i + 1] == '\'') {
              value += '\'';
              i += 2;
              continue;
            }
            closed = true;
            ++i;
            break;
          }
          value += v[i++];
        }
        if (!closed) {
          error(at(value_start), label + ": quoted value of " + key.append(" without its closing quote"));
          return std::nullopt;
        }
      } else {
        while (i < v.size() && !blank(v[i]))
          value += v[i++];
      }
      if (value.empty()) {
        error(at(value_start), label + ": " + key.append(" has an empty value"));
        return std::nullopt;
      }
      out.push_back({std::move(key), std::move(value), at(key_start)});
    }
    return out;
  }

  // Within one entry the last value of a parameter wins, as in PgBouncer: those, in the entry's order.
  std::vector<const Param*> last_of_each(const std::vector<Param>& ps, const std::string& label) {
    std::map<std::string, const Param*> last;
    for (const auto& p : ps) {
      auto [it, inserted] = last.try_emplace(p.key, &p);
      if (!inserted) {
        note(it->second->at, label + " " + p.key, "set twice in the entry: the last value is used");
        it->second = &p;
      }
    }
    std::vector<const Param*> out;
    out.reserve(last.size());
    for (const auto& [k, p] : last)
      out.push_back(p);
    std::sort(out.begin(), out.end(),
              [](const Param* a, const Param* b) { return a->at.column < b->at.column; });
    return out;
  }

  // A [databases] parameter: the TOML key it becomes, or why it cannot.
  void database(const IniEntry& e) {
    const std::string label = "[databases] " + e.key;
    auto ps = params(e, label);
    if (!ps) return;
    if (e.key == "*") {
      note(e.key_at, label,
           "pgwarden has no fallback database: write one [[database]] for each database clients may use");
      return;
    }
    if (e.key == "pgbouncer" || e.key == "pgwarden") {
      note(e.key_at, label, "the name is reserved for the admin console: not converted");
      return;
    }
    auto name = text(e.key, e.key_at, label);
    if (!name) return;
    TomlTable t;
    t.set({"name", *name, "[databases] " + where(e.key_at), {}});
    bool failed = false;
    const std::vector<const Param*> in_order = last_of_each(*ps, label);
    const IniEntry* global_user = get("auth_user");
    const IniEntry* global_query = get("auth_query");
    for (const Param* p : in_order) {
      std::string plabel = label + " " + p->key;
      auto str = [&](std::string_view key) {
        if (auto v = text(p->value, p->at, plabel)) {
          t.set({std::string(key), *v, {}, {}});
        } else {
          failed = true;
        }
      };
      auto number = [&](std::string_view key, std::int64_t min, std::int64_t max) {
        auto n = integer(p->value, p->at, plabel);
        if (!n) {
          failed = true;
        } else if (*n < min || *n > max) {
          note(p->at, plabel,
               std::to_string(*n) + " is outside pgwarden's range [" + std::to_string(min) + ", " +
                   std::to_string(max) + "]: not converted");
        } else {
          t.set({std::string(key), std::to_string(*n), {}, {}});
        }
      };
      const std::string& k = p->key;
      if (k == "host") {
        host(e, *p, t);
      } else if (k == "port") {
        auto n = integer(p->value, p->at, plabel);
        if (!n || *n < 1 || *n > 65535) {
          if (n) error(p->at, plabel + ": " + p->value + " is not a TCP port (1-65535)");
          failed = true;
        } else {
          t.set({"port", std::to_string(*n), {}, {}});
        }
      } else if (k == "dbname" || k == "user" || k == "password") {
        str(k);
      } else if (k == "pool_mode") {
        if (auto m = lookup(p->value, pool_modes, p->at, plabel)) {
          t.set({"pool_mode", toml_string(*m), {}, {}});
        } else {
          failed = true;
        }
      } else if (k == "pool_size") {
        number("pool_size", 1, big);
      } else if (k == "min_pool_size") {
        number("min_size", 0, big);
      } else if (k == "reserve_pool" || k == "reserve_pool_size") {
        if (reserve_disabled_) {
          note(p->at, plabel, "reserve_pool_timeout = 0 turns the reserve off: not converted");
        } else {
          number("reserve_size", 0, big);
        }
      } else if (k == "max_db_connections") {
        number("max_db_connections", 0, big);
      } else if (k == "server_lifetime" || k == "query_wait_timeout") {
        if (p->value == "-1" && k == "query_wait_timeout") {
          note(p->at, plabel, "-1 means not set: the global value applies");
          continue;
        }
        auto ms = seconds(p->value, p->at, plabel);
        if (!ms) {
          failed = true;
        } else if (*ms == 0 && k == "server_lifetime") {
          note(p->at, plabel, "0 means not set here: the global server_lifetime applies");
        } else {
          t.set({k, toml_string(duration_text(*ms)), {}, {}});
        }
      } else if (k == "max_db_client_connections") {
        note(p->at, plabel,
             "pgwarden has one client limit for every database (proxy.max_db_client_connections): not "
             "converted");
      } else if (k == "auth_user" || k == "auth_query") {
        const IniEntry* global = k == "auth_user" ? global_user : global_query;
        if (global == nullptr || global->value != p->value) {
          note(p->at, plabel,
               "pgwarden has one auth.query and auth.query_user for every database: not converted");
        }
      } else if (k == "auth_dbname") {
        note(p->at, plabel, "pgwarden runs auth.query in the database the client asked for: not converted");
      } else if (k == "client_encoding" || k == "datestyle" || k == "timezone" || k == "application_name") {
        note(p->at, plabel,
             "pgwarden sets no server parameters per database: use ALTER DATABASE ... SET " + k + " instead");
      } else if (k == "connect_query") {
        note(p->at, plabel, "pgwarden runs no query on a new server connection: not converted");
      } else if (k == "load_balance_hosts" || k == "target_session_attrs") {
        note(
            p->at, plabel,
            "pgwarden connects to one host per database (a name is resolved again for every connection): not "
            "converted");
      } else {
        note(p->at, plabel, "not a [databases] parameter PgBouncer knows: not converted");
      }
    }
    if (t.find("host") == nullptr) {
      t.set({"host",
             toml_string("127.0.0.1"),
             {},
             {"TODO: PgBouncer connected over the Unix socket (no host=); pgwarden connects over TCP"}});
      note(e.key_at, label,
           "no host: PgBouncer connected over its Unix socket, pgwarden connects over TCP only: host = "
           "\"127.0.0.1\" is written");
    }
    if (!failed) database_tables_.push_back(std::move(t));
  }

  void host(const IniEntry& e, const Param& p, TomlTable& t) {
    const std::string label = "[databases] " + e.key + " host";
    if (p.value.starts_with('/') || p.value.starts_with('@')) {
      t.set({"host",
             toml_string("127.0.0.1"),
             {},
             {"TODO: PgBouncer connected over the Unix socket " + p.value + "; pgwarden connects over TCP"}});
      note(p.at, label,
           "a Unix socket: pgwarden connects over TCP only: host = \"127.0.0.1\" is written with the same "
           "port");
      return;
    }
    auto hosts = split_list(p.value);
    if (hosts.empty()) return;
    if (hosts.size() > 1) {
      note(p.at, label,
           "pgwarden connects to one host per database (PgBouncer took turns): the first, " + hosts[0] +
               ", is written");
    }
    if (auto v = text(hosts[0], p.at, label)) t.set({"host", *v, {}, {}});
  }

  void user(const IniEntry& e) {
    const std::string label = "[users] " + e.key;
    auto ps = params(e, label);
    if (!ps) return;
    if (ps->empty()) {
      note(e.key_at, label, "no settings: nothing to convert");
      return;
    }
    for (const auto& p : *ps) {
      std::string why;
      if (p.key == "pool_mode") {
        why = "pgwarden sets the pool mode per database ([[database]] pool_mode), not per user";
      } else if (p.key == "max_user_connections") {
        why = "pgwarden has one limit for every user (pool.max_user_connections)";
      } else if (p.key == "max_user_client_connections") {
        why = "pgwarden has one limit for every user (proxy.max_user_client_connections)";
      } else if (p.key == "pool_size" || p.key == "reserve_pool_size") {
        why = "pgwarden sizes pools per database ([[database]] pool_size, reserve_size), not per user";
      } else if (p.key == "query_timeout" || p.key == "transaction_timeout" ||
                 p.key == "idle_transaction_timeout") {
        why =
            "set it for the role in PostgreSQL instead (ALTER ROLE ... SET statement_timeout, "
            "idle_in_transaction_session_timeout)";
      } else if (p.key == "client_idle_timeout" || p.key == "query_wait_timeout") {
        why = "pgwarden has one value for every user (pool." + p.key + ")";
      } else {
        why = "not a [users] setting PgBouncer knows";
      }
      note(p.at, label + " " + p.key, why + ": not converted");
    }
  }

  // ---- [peers] ----

  // "ID = host=... port=... pool_size=...": a [[peer]] with that id. PgBouncer reads the id as a decimal
  // number.
  void peer(const IniEntry& e) {
    const std::string label = "[peers] " + e.key;
    std::string_view digits = e.key;
    if (digits.empty() ||
        !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      note(e.key_at, label,
           "not a peer id (a number, the peer's peer_id, 1-" + std::to_string(max_peer_id) +
               "): not converted");
      return;
    }
    while (digits.size() > 1 && digits.front() == '0')
      digits.remove_prefix(1);
    std::int64_t id = 0;
    if (digits.size() <= 5) {
      for (char c : digits)
        id = id * 10 + (c - '0');
    }
    if (id < 1 || id > max_peer_id) {
      note(e.key_at, label,
           e.key + " is outside pgwarden's range for peer ids [1, " + std::to_string(max_peer_id) +
               "]: not converted");
      return;
    }
    auto ps = params(e, label);
    if (!ps) return;
    std::optional<TomlLine> host_line;
    std::int64_t port = 6432;
    bool failed = false;
    for (const Param* p : last_of_each(*ps, label)) {
      const std::string plabel = label + " " + p->key;
      const std::string& k = p->key;
      if (k == "host") {
        if (p->value.starts_with('/') || p->value.starts_with('@')) {
          host_line = TomlLine{"host",
                               toml_string("127.0.0.1"),
                               {},
                               {"TODO: PgBouncer reached this peer over the Unix socket " + p->value +
                                "; pgwarden connects over TCP"}};
          note(
              p->at, plabel,
              "a Unix socket: pgwarden connects over TCP only: host = \"127.0.0.1\" is written with the same "
              "port");
          continue;
        }
        auto hosts = split_list(p->value);
        if (hosts.empty()) continue;
        if (hosts.size() > 1) {
          note(
              p->at, plabel,
              "pgwarden sends a peer's cancel requests to one host: the first, " + hosts[0] + ", is written");
        }
        if (auto v = text(hosts[0], p->at, plabel)) {
          host_line = TomlLine{"host", *v, {}, {}};
        } else {
          failed = true;
        }
      } else if (k == "port") {
        auto n = integer(p->value, p->at, plabel);
        if (!n || *n < 1 || *n > 65535) {
          if (n) error(p->at, plabel + ": " + p->value + " is not a TCP port (1-65535)");
          failed = true;
        } else {
          port = *n;
        }
      } else if (k == "pool_size") {
        note(
            p->at, plabel,
            "pgwarden forwards only cancel requests to a peer, each on a connection of its own, and keeps no "
            "pool for it: not converted");
      } else {
        note(p->at, plabel, "not a [peers] parameter PgBouncer knows (host, port, pool_size): not converted");
      }
    }
    if (!host_line) {
      host_line = TomlLine{
          "host",
          toml_string("127.0.0.1"),
          {},
          {"TODO: PgBouncer reached this peer over its Unix socket (no host=); pgwarden connects over TCP"}};
      note(
          e.key_at, label,
          "no host: PgBouncer reached the peer over its Unix socket, pgwarden connects over TCP only: host = "
          "\"127.0.0.1\" is written");
    }
    if (failed) return;
    TomlTable t;
    t.set({"id", std::to_string(id), "[peers] " + where(e.key_at), {}});
    t.set(std::move(*host_line));
    t.set({"port", std::to_string(port), {}, {}});
    // Two spellings of one id ("1", "01"): the last entry wins, as in PgBouncer.
    auto [it, inserted] = peer_tables_.try_emplace(id, &e, TomlTable{});
    if (!inserted) {
      note(it->second.first->key_at, "[peers] " + it->second.first->key,
           "peer " + std::to_string(id) + " again at " + where(e.key_at) +
               ": PgBouncer uses the last entry, and so does the import");
      it->second.first = &e;
    }
    it->second.second = std::move(t);
  }

  // [[peer]] tables without this instance's own id: no cancel request is forwarded, in PgBouncer as in
  // pgwarden.
  void peering_off() {
    if (peer_tables_.empty()) return;
    const std::string why =
        " peering off, in PgBouncer as in pgwarden: the [[peer]] tables are written, but no cancel request "
        "is "
        "forwarded until proxy.peer_id gives this instance its id";
    const IniEntry* e = get("peer_id");
    if (e == nullptr) {
      note_file("peer_id", "not set, which turns" + why);
    } else if (auto it = tables_.find("proxy"); it != tables_.end()) {
      // An out-of-range peer_id is listed already (not converted); 0 is written as it is.
      if (const TomlLine* l = it->second.find("peer_id"); l != nullptr && l->value == "0")
        note(e->key_at, "peer_id", "0 turns" + why);
    }
  }

  void unknown_sections(const IniReader& ini) {
    static constexpr std::array<std::string_view, 4> known{"pgbouncer", "databases", "users", "peers"};
    for (std::size_t i = 0; i < ini.sections.size(); ++i) {
      const auto& s = ini.sections[i];
      if (std::find(known.begin(), known.end(), s.name) != known.end()) continue;
      auto keys = std::count_if(ini.entries.begin(), ini.entries.end(),
                                [&](const IniEntry& e) { return e.section_index == i; });
      std::string hint;
      if (std::string t(trim(s.name));
          t != s.name && std::find(known.begin(), known.end(), t) != known.end()) {
        hint = " (PgBouncer takes no blanks inside the brackets)";
      }
      note(s.at, "[" + s.name + "]",
           "not a PgBouncer section" + hint + ": its " + std::to_string(keys) +
               (keys == 1 ? " key is" : " keys are") + " not converted");
    }
  }

  // PgBouncer caps min_pool_size at the pool size; pgwarden refuses a min_size above default_size.
  void cap_min_sizes() {
    auto value = [](TomlTable& t, std::string_view key) -> std::optional<std::int64_t> {
      if (TomlLine* l = t.find(key)) return std::stoll(l->value);
      return std::nullopt;
    };
    TomlTable& pool = tables_["pool"];
    std::int64_t global_size = value(pool, "default_size").value_or(20);
    std::int64_t global_min = value(pool, "min_size").value_or(0);
    if (global_min > global_size) {
      TomlLine* l = pool.find("min_size");
      l->above.push_back("min_pool_size was " + std::to_string(global_min) +
                         ": PgBouncer caps it at the pool size, pgwarden needs it at most default_size");
      l->value = std::to_string(global_size);
      global_min = global_size;
    }
    for (auto& db : database_tables_) {
      std::int64_t size = value(db, "pool_size").value_or(global_size);
      std::int64_t min = value(db, "min_size").value_or(global_min);
      if (min > size) {
        db.set({"min_size",
                std::to_string(size),
                {},
                {"min_pool_size " + std::to_string(min) +
                 " is above this database's pool size: PgBouncer caps "
                 "it, pgwarden needs it at most pool_size"}});
      }
    }
    if (pool.lines.empty()) tables_.erase("pool");
  }

  const PgbouncerImportOptions& options_;
  std::vector<std::pair<std::size_t, Diagnostic>>& errors_;
  std::vector<std::pair<std::size_t, ImportNote>>& notes_;
  std::set<std::string, std::less<>> supported_;
  std::map<std::string, std::size_t, std::less<>> key_rank_;
  std::map<std::string, const IniEntry*> global_, databases_, users_, peers_;
  std::map<std::string, TomlTable> tables_;
  std::vector<TomlTable> database_tables_;
  std::map<std::int64_t, std::pair<const IniEntry*, TomlTable>> peer_tables_;  // by id: written in id order
  bool reserve_disabled_ = false;
};

}  // namespace

PgbouncerImportResult import_pgbouncer(std::string_view ini_text, const PgbouncerImportOptions& options) {
  std::vector<std::pair<std::size_t, Diagnostic>> errors;
  std::vector<std::pair<std::size_t, ImportNote>> notes;
  IniReader ini(options, errors);
  ini.read(ini_text, options.ini_name, 0);
  Converter converter(options, errors, notes);
  converter.run(ini);  // also with syntax errors: every problem is reported in one go
  if (options.userlist_name) {
    // The auth file must load in pgwarden as it is; its errors come after the ini's.
    for (auto& d : parse_auth_file(options.userlist_text, *options.userlist_name).diagnostics)
      errors.emplace_back(std::numeric_limits<std::size_t>::max(), std::move(d));
  }
  PgbouncerImportResult r;
  auto by_order = [](const auto& a, const auto& b) { return a.first < b.first; };
  std::stable_sort(errors.begin(), errors.end(), by_order);
  std::stable_sort(notes.begin(), notes.end(), by_order);
  for (auto& [order, d] : errors)
    r.errors.push_back(std::move(d));
  if (!r.errors.empty()) return r;
  for (auto& [order, n] : notes)
    r.notes.push_back(std::move(n));
  r.toml = converter.render(ini);
  // The import must never write what pgwarden would refuse: check it as --check would (without the files).
  LoadResult check = parse(r.toml, "converted.toml");
  for (const auto& d : check.diagnostics) {
    r.notes.push_back(
        {options.ini_name, 0, "converted TOML",
         "line " + std::to_string(d.where.line) + ": " + d.message + " (fix it before starting)"});
  }
  return r;
}

}  // namespace pgw::config
