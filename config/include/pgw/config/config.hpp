// pgwarden's configuration: plain structs with documented defaults, filled from TOML by one key table.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace pgw::config {

using Duration = std::chrono::milliseconds;

// libpq sslmode names (PostgreSQL docs 34.19.1); also used for the client leg (SPEC "Config conventions").
enum class TlsMode : std::uint8_t { disable, allow, prefer, require, verify_ca, verify_full };
enum class AuthMethod : std::uint8_t { scram_sha_256, md5, password, cert, trust };
enum class PoolMode : std::uint8_t { session, transaction, statement };
enum class LogLevel : std::uint8_t { trace, debug, info, warn, error };
enum class LogFormat : std::uint8_t { text, json };
// [audit] (SPEC "Audit record"): which statements, how parameters and literals appear, where records go.
enum class AuditStatements : std::uint8_t { none, ddl, mod, all };  // PostgreSQL log_statement levels
enum class AuditParameters : std::uint8_t { redact, log };
enum class AuditLiterals : std::uint8_t { keep, redact };
enum class AuditFsync : std::uint8_t { every, batch, off };
enum class AuditOnFailure : std::uint8_t { block, drop };
enum class AuditSink : std::uint8_t { file, syslog, standard_output };  // "stdout" is a macro in <cstdio>

std::string_view to_string(TlsMode m) noexcept;
std::string_view to_string(AuthMethod m) noexcept;
std::string_view to_string(PoolMode m) noexcept;
std::string_view to_string(AuditStatements m) noexcept;
std::string_view to_string(AuditFsync m) noexcept;
std::string_view to_string(AuditOnFailure m) noexcept;
std::string_view to_string(AuditSink m) noexcept;

// Where a value was written, for FILE:LINE:COL messages.
struct Position {
  std::string file;
  std::uint32_t line = 1;
  std::uint32_t column = 1;
};

struct Diagnostic {
  Position where;
  std::string message;
  std::string to_string() const;  // "FILE:LINE:COL: message"
};

struct ListenAddress {
  std::string host;  // an IP literal or a host name; "[::1]" is written without brackets here
  std::uint16_t port = 0;
  std::string to_string() const;
};

struct AccessRule;  // pgw/config/access.hpp

struct ProxySettings {
  std::vector<ListenAddress> listen{{"127.0.0.1", 6432}};
  unsigned workers = 0;  // 0 = one per core
  unsigned max_client_conn = 1000;
  Duration shutdown_timeout = std::chrono::seconds(30);
  std::vector<std::string> admin_users;
  std::string metrics_listen;              // "" = off
  std::filesystem::path metrics_tls_cert;  // "" = plain HTTP
  std::filesystem::path metrics_tls_key;
  std::filesystem::path handover_socket;  // rolling restart; "" = off
  unsigned peer_id = 0;                   // this instance in [[peer]]; 0 = no peering
  std::vector<std::string> proxy_protocol_from;
  std::uint32_t max_packet_size = 256u << 20;  // largest message pgwarden holds whole (not streamed)
  Duration client_login_timeout = std::chrono::seconds(60);
  // Until the startup packet is in (TLS handshake included): slowloris connections end here.
  Duration client_handshake_timeout = std::chrono::seconds(10);
  unsigned max_db_client_connections = 0;    // per database; 0 = unlimited
  unsigned max_user_client_connections = 0;  // per user; 0 = unlimited
  unsigned max_client_conn_per_address = 0;  // 0 = max_client_conn
  unsigned client_connect_rate = 5000;  // new connections per second per address (burst as much); 0 = off
  bool revoke_on_reload = true;         // a reload closes clients the new [[access]] rules refuse
};

struct ClientTlsSettings {
  TlsMode mode = TlsMode::require;
  std::filesystem::path cert;
  std::filesystem::path key;
  std::filesystem::path ca;
  std::string min_version = "TLSv1.2";
  std::string ciphers = "HIGH:!aNULL:!MD5";
  std::string ciphersuites;
};

struct ServerTlsSettings {
  TlsMode mode = TlsMode::verify_full;
  std::filesystem::path ca;
  std::filesystem::path cert;
  std::filesystem::path key;
  std::string min_version = "TLSv1.2";
  std::string ciphers = "HIGH:!aNULL:!MD5";
  std::string ciphersuites;
};

struct AuthSettings {
  AuthMethod type = AuthMethod::scram_sha_256;
  std::filesystem::path file;
  std::filesystem::path hba_file;  // pg_hba.conf-format rules instead of [[access]]
  std::string query;               // auth_query: $1 is the user name; returns (name, secret)
  std::string query_user;          // server user that runs it
  Duration query_cache_ttl = std::chrono::seconds(15);
  // Certificate CN -> the user names it may log in as (cert method); a CN absent here must equal the user.
  std::map<std::string, std::vector<std::string>, std::less<>> cert_map;
  // Per client address: after this many failed logins in a row, new logins wait out a back-off that starts at
  // backoff_initial and doubles per further failure up to backoff_max. 0 = off.
  unsigned backoff_after_failures = 5;
  Duration backoff_initial = std::chrono::seconds(1);
  Duration backoff_max = std::chrono::seconds(60);
};

struct PoolSettings {
  PoolMode mode = PoolMode::transaction;
  unsigned default_size = 20;
  unsigned min_size = 0;
  unsigned reserve_size = 0;
  Duration reserve_timeout = std::chrono::seconds(5);
  unsigned max_db_connections = 0;
  unsigned max_user_connections = 0;
  Duration server_lifetime = std::chrono::hours(1);
  Duration server_idle_timeout = std::chrono::minutes(10);
  Duration server_check_delay = std::chrono::seconds(1);
  Duration server_connect_timeout = std::chrono::seconds(15);
  Duration query_wait_timeout = std::chrono::seconds(120);
  Duration client_idle_timeout{0};
  Duration idle_transaction_timeout{0};
  std::string server_reset_query = "DISCARD ALL";
  unsigned max_prepared_statements = 200;
  unsigned max_client_prepared_statements = 1000;
  std::uint64_t max_client_prepared_bytes = std::uint64_t{16} << 20;
  std::vector<std::string> track_extra_parameters;
};

// Another instance of the fleet (PgBouncer's [peers]): CancelRequests carrying its id go there.
struct PeerSettings {
  unsigned id = 0;
  std::string host;
  std::uint16_t port = 6432;
};

struct DatabaseSettings {
  std::string name;
  std::string host = "127.0.0.1";
  std::uint16_t port = 5432;
  std::string dbname;  // default: name
  std::string user;    // "" = the client's user
  std::string password;
  PoolSettings pool;  // [pool] with this database's overrides applied
};

struct LogSettings {
  LogLevel level = LogLevel::info;
  LogFormat format = LogFormat::text;
};

struct AuditSettings {
  bool enabled = true;
  std::string instance;                           // "" = the host name, resolved when the log opens
  std::filesystem::path path = "audit.jsonl";     // relative to the config file's directory
  std::vector<AuditSink> sinks{AuditSink::file};  // non-empty, no duplicates
  AuditStatements statements = AuditStatements::mod;
  AuditParameters parameters = AuditParameters::redact;
  std::uint64_t rotate_size = std::uint64_t{100} << 20;  // 0 = never rotate
  unsigned rotate_keep = 10;
  AuditFsync fsync = AuditFsync::batch;
  std::filesystem::path hmac_key_file;                     // "" = plain SHA-256 chain
  Duration checkpoint_interval = std::chrono::minutes(1);  // 0 = only at shutdown
  AuditLiterals literals = AuditLiterals::keep;
  bool routines = false;
  AuditOnFailure on_failure = AuditOnFailure::block;
  // Not in the SPEC's example (limits belong in config, STYLE.md): the writer's bounds and timers.
  unsigned queue_records = 65536;                            // records waiting for the writer thread
  std::uint64_t queue_size = std::uint64_t{64} << 20;        // bytes of rendered records waiting
  Duration fsync_interval = std::chrono::milliseconds(100);  // fsync = "batch": at most this long unsynced
  Duration write_delay = std::chrono::milliseconds(10);      // fsync != "every": records gather this long
  Duration retry_interval = std::chrono::seconds(1);         // a failing log retries its writes this often

  bool has_sink(AuditSink s) const noexcept;
};
using Audit = AuditSettings;

struct Config {
  std::filesystem::path path;  // the file it was read from
  ProxySettings proxy;
  ClientTlsSettings client_tls;
  ServerTlsSettings server_tls;
  AuthSettings auth;
  PoolSettings pool;
  std::vector<DatabaseSettings> databases;
  std::vector<PeerSettings> peers;
  LogSettings log;
  AuditSettings audit;
  // [[access]] rules in file order; null when none is written (see auth.hba_file for the other form).
  std::shared_ptr<const std::vector<AccessRule>> access;
  // Where each key was written ("client_tls.cert", "database[0].host"), and each section ("client_tls").
  std::map<std::string, Position, std::less<>> positions;
  // The TOML text this config was parsed from (the admin console's SET and SHOW CONFIG start from it).
  std::shared_ptr<const std::string> source;

  // The position of a key, else of its section, else the top of the file.
  Position position_of(std::string_view key) const;
  const DatabaseSettings* find_database(std::string_view name) const noexcept;
};

struct LoadResult {
  std::optional<Config> config;  // set only when there are no diagnostics
  std::vector<Diagnostic> diagnostics;
};

// Parses and validates a TOML document; paths inside it are resolved relative to the file's directory.
LoadResult parse(std::string_view toml_text, const std::filesystem::path& file_name);
LoadResult load(const std::filesystem::path& file);

// Parses "host:port" or "[v6-address]:port"; returns the problem, "" on success.
std::string parse_listen_address(std::string_view text, ListenAddress& out);
// Parses "500ms", "15s", "10m", "1h", "2d" (and "0"); nullopt if malformed.
std::optional<Duration> parse_duration(std::string_view text) noexcept;
// Parses "512", "64kB", "100MB", "1GB"; nullopt if malformed or above 2^63.
std::optional<std::uint64_t> parse_size(std::string_view text) noexcept;

// Reads a key file (audit.hmac_key_file): its bytes less trailing CR/LF. nullopt with `error` set when the
// file is missing, unreadable or empty.
std::optional<std::string> read_key_file(const std::filesystem::path& file, std::string& error);

// One row of the key table, for the reference documentation (`pgwarden --config-reference`).
struct KeyInfo {
  std::string_view section;
  std::string_view name;
  std::string_view type;
  std::string_view default_value;
  bool reloadable;
  bool supported;
  std::string_view description;
};
std::vector<KeyInfo> key_reference();
// The reference as a Markdown table (docs/CONFIG.md is generated from it).
std::string key_reference_markdown();

// The running config with one key changed (the admin console's SET): `key` is "section.name" of a reloadable
// key outside [[database]] and [[access]], or PgBouncer's name of a pool or client limit (default_pool_size,
// max_client_conn, ...; a bare number for a PgBouncer duration means seconds). `value` is a TOML value: 30,
// 'session', "15s". The result is validated as a whole, like a reload.
LoadResult with_setting(const Config& base, std::string_view key, std::string_view value);

// SHOW CONFIG: every key outside [[database]] and [[access]] with its value (as written, else the default).
struct ConfigRow {
  std::string key;  // "pool.default_size"
  std::string value;
  std::string default_value;
  bool reloadable;
};
std::vector<ConfigRow> config_rows(const Config& config);
// PgBouncer's names of the keys with the same meaning, as (pgbouncer name, "section.key").
std::span<const std::pair<std::string_view, std::string_view>> pgbouncer_key_names() noexcept;

}  // namespace pgw::config
