// The TOML key table: parsing, defaults, "not supported yet" keys, validation and the reference docs.
#include "pgw/config/config.hpp"

#include "pgw/config/access.hpp"

#include <sys/un.h>
#include <toml++/toml.h>
#include <algorithm>
#include <cctype>
#include <charconv>
#include <fstream>
#include <functional>
#include <set>
#include <sstream>
#include <tuple>

namespace pgw::config {

std::string_view to_string(TlsMode m) noexcept {
  switch (m) {
    case TlsMode::disable:
      return "disable";
    case TlsMode::allow:
      return "allow";
    case TlsMode::prefer:
      return "prefer";
    case TlsMode::require:
      return "require";
    case TlsMode::verify_ca:
      return "verify-ca";
    case TlsMode::verify_full:
      return "verify-full";
  }
  return "?";
}

std::string_view to_string(AuthMethod m) noexcept {
  switch (m) {
    case AuthMethod::scram_sha_256:
      return "scram-sha-256";
    case AuthMethod::md5:
      return "md5";
    case AuthMethod::password:
      return "password";
    case AuthMethod::cert:
      return "cert";
    case AuthMethod::trust:
      return "trust";
  }
  return "?";
}

std::string_view to_string(PoolMode m) noexcept {
  switch (m) {
    case PoolMode::session:
      return "session";
    case PoolMode::transaction:
      return "transaction";
    case PoolMode::statement:
      return "statement";
  }
  return "?";
}

std::string_view to_string(AuditStatements m) noexcept {
  switch (m) {
    case AuditStatements::none:
      return "none";
    case AuditStatements::ddl:
      return "ddl";
    case AuditStatements::mod:
      return "mod";
    case AuditStatements::all:
      return "all";
  }
  return "?";
}

std::string_view to_string(AuditFsync m) noexcept {
  switch (m) {
    case AuditFsync::every:
      return "every";
    case AuditFsync::batch:
      return "batch";
    case AuditFsync::off:
      return "off";
  }
  return "?";
}

std::string_view to_string(AuditOnFailure m) noexcept {
  switch (m) {
    case AuditOnFailure::block:
      return "block";
    case AuditOnFailure::drop:
      return "drop";
  }
  return "?";
}

std::string_view to_string(AuditSink m) noexcept {
  switch (m) {
    case AuditSink::file:
      return "file";
    case AuditSink::syslog:
      return "syslog";
    case AuditSink::standard_output:
      return "stdout";
  }
  return "?";
}

bool AuditSettings::has_sink(AuditSink s) const noexcept {
  return std::find(sinks.begin(), sinks.end(), s) != sinks.end();
}

std::optional<std::string> read_key_file(const std::filesystem::path& file, std::string& error) {
  std::error_code ec;
  auto status = std::filesystem::status(file, ec);
  if (ec || !std::filesystem::exists(status)) {
    error = "cannot read the key file " + file.string() + ": it does not exist";
    return std::nullopt;
  }
  if (!std::filesystem::is_regular_file(status)) {
    error = "cannot read the key file " + file.string() + ": it is not a regular file";
    return std::nullopt;
  }
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    error = "cannot read the key file " + file.string() + ": permission denied or unreadable";
    return std::nullopt;
  }
  std::stringstream ss;
  ss << in.rdbuf();
  if (in.bad()) {
    error = "cannot read the key file " + file.string() + ": read error";
    return std::nullopt;
  }
  std::string key = ss.str();
  while (!key.empty() && (key.back() == '\n' || key.back() == '\r'))
    key.pop_back();  // "openssl rand -hex 32 > key" ends with a newline that is not part of the key
  if (key.empty()) {
    error = "the key file " + file.string() + " is empty: put at least 32 random bytes in it";
    return std::nullopt;
  }
  return key;
}

std::string Diagnostic::to_string() const {
  return where.file + ":" + std::to_string(where.line) + ":" + std::to_string(where.column) + ": " + message;
}

std::string ListenAddress::to_string() const {
  if (host.find(':') != std::string::npos) return "[" + host + "]:" + std::to_string(port);
  return host + ":" + std::to_string(port);
}

Position Config::position_of(std::string_view key) const {
  for (std::string_view k = key;;) {
    if (auto it = positions.find(k); it != positions.end()) return it->second;
    auto dot = k.rfind('.');
    if (dot == std::string_view::npos) break;
    k = k.substr(0, dot);
  }
  return Position{path.string(), 1, 1};
}

const DatabaseSettings* Config::find_database(std::string_view name) const noexcept {
  for (const auto& d : databases) {
    if (d.name == name) return &d;
  }
  return nullptr;
}

std::optional<Duration> parse_duration(std::string_view text) noexcept {
  std::uint64_t n = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  if (ec != std::errc{} || p == text.data()) return std::nullopt;
  std::string_view unit(p, static_cast<std::size_t>(text.data() + text.size() - p));
  std::uint64_t ms_per = 0;
  if (unit == "ms") {
    ms_per = 1;
  } else if (unit == "s") {
    ms_per = 1000;
  } else if (unit == "m" || unit == "min") {
    ms_per = 60'000;
  } else if (unit == "h") {
    ms_per = 3'600'000;
  } else if (unit == "d") {
    ms_per = 86'400'000;
  } else if (unit.empty() && n == 0) {
    ms_per = 1;
  } else {
    return std::nullopt;
  }
  if (n > (std::uint64_t{1} << 40) / ms_per) return std::nullopt;  // about 35 years: plenty, and no overflow
  return Duration(static_cast<Duration::rep>(n * ms_per));
}

std::optional<std::uint64_t> parse_size(std::string_view text) noexcept {
  std::uint64_t n = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  if (ec != std::errc{} || p == text.data()) return std::nullopt;
  std::string_view unit(p, static_cast<std::size_t>(text.data() + text.size() - p));
  int shift = 0;
  if (unit.empty() || unit == "B") {
    shift = 0;
  } else if (unit == "kB" || unit == "KB") {
    shift = 10;
  } else if (unit == "MB") {
    shift = 20;
  } else if (unit == "GB") {
    shift = 30;
  } else {
    return std::nullopt;
  }
  if (n > (std::uint64_t{1} << (63 - shift))) return std::nullopt;  // n << shift <= 2^63, as documented
  return n << shift;
}

namespace {

Position position(const toml::source_region& r, const std::string& file) {
  return Position{file, static_cast<std::uint32_t>(std::max<toml::source_index>(r.begin.line, 1)),
                  static_cast<std::uint32_t>(std::max<toml::source_index>(r.begin.column, 1))};
}

// A key's parser: writes into the section struct, returns "" or what is wrong with the value.
template <class S>
using Apply = std::function<std::string(S&, const toml::node&)>;

template <class S>
struct KeyDef {
  KeyInfo info;
  Apply<S> apply;
  // For keys this build does not implement: values that mean "off" are accepted (they ask for nothing).
  std::function<bool(const toml::node&)> is_off;
};

std::string type_error(std::string_view expected, const toml::node& n) {
  std::ostringstream s;
  s << "expected " << expected << ", found " << n.type();
  return s.str();
}

template <class S>
Apply<S> string_key(std::string S::*m) {
  return [m](S& s, const toml::node& n) -> std::string {
    auto v = n.value<std::string>();
    if (!n.is_string() || !v) return type_error("a string", n);
    if (v->find('\0') != std::string::npos) return "string contains a NUL character";
    s.*m = *v;
    return {};
  };
}

template <class S>
Apply<S> path_key(std::filesystem::path S::*m) {
  return [m](S& s, const toml::node& n) -> std::string {
    auto v = n.value<std::string>();
    if (!n.is_string() || !v) return type_error("a path string", n);
    s.*m = *v;  // resolved against the config file's directory after parsing
    return {};
  };
}

template <class S, class T>
Apply<S> uint_key(T S::*m, std::int64_t min, std::int64_t max) {
  return [m, min, max](S& s, const toml::node& n) -> std::string {
    if (!n.is_integer()) return type_error("an integer", n);
    std::int64_t v = *n.value<std::int64_t>();
    if (v < min || v > max) {
      return "value " + std::to_string(v) + " is out of range [" + std::to_string(min) + ", " +
             std::to_string(max) + "]";
    }
    s.*m = static_cast<T>(v);
    return {};
  };
}

template <class S>
Apply<S> duration_key(Duration S::*m) {
  return [m](S& s, const toml::node& n) -> std::string {
    auto v = n.value<std::string>();
    if (!n.is_string() || !v) return type_error("a duration string such as \"15s\"", n);
    auto d = parse_duration(*v);
    if (!d)
      return "invalid duration \"" + *v +
             "\": use a number with ms, s, m, h or d, such as \"500ms\" or \"15s\"";
    s.*m = *d;
    return {};
  };
}

template <class S, class T>
Apply<S> size_key(T S::*m, std::uint64_t min, std::uint64_t max) {
  return [m, min, max](S& s, const toml::node& n) -> std::string {
    std::optional<std::uint64_t> v;
    if (n.is_integer() && *n.value<std::int64_t>() >= 0) {
      v = static_cast<std::uint64_t>(*n.value<std::int64_t>());
    } else if (n.is_string()) {
      v = parse_size(*n.value<std::string>());
      if (!v) return "invalid size \"" + *n.value<std::string>() + "\": use a number with B, kB, MB or GB";
    } else {
      return type_error("a size such as \"100MB\"", n);
    }
    if (*v < min || *v > max) {
      return "size " + std::to_string(*v) + " is out of range [" + std::to_string(min) + ", " +
             std::to_string(max) + "] bytes";
    }
    s.*m = static_cast<T>(*v);
    return {};
  };
}

template <class S>
Apply<S> bool_key(bool S::*m) {
  return [m](S& s, const toml::node& n) -> std::string {
    if (!n.is_boolean()) return type_error("true or false", n);
    s.*m = *n.value<bool>();
    return {};
  };
}

template <class S>
Apply<S> strings_key(std::vector<std::string> S::*m) {
  return [m](S& s, const toml::node& n) -> std::string {
    const toml::array* a = n.as_array();
    if (a == nullptr) return type_error("an array of strings", n);
    std::vector<std::string> out;
    for (const auto& e : *a) {
      auto v = e.value<std::string>();
      if (!e.is_string() || !v) return type_error("an array of strings", n);
      out.push_back(*v);
    }
    s.*m = std::move(out);
    return {};
  };
}

template <class E>
struct EnumName {
  std::string_view name;
  E value;
};

template <class S, class E, std::size_t N>
Apply<S> enum_key(E S::*m, const std::array<EnumName<E>, N>& names) {
  return [m, names](S& s, const toml::node& n) -> std::string {
    auto v = n.value<std::string>();
    std::string allowed;
    for (const auto& e : names) {
      if (v && *v == e.name) {
        s.*m = e.value;
        return {};
      }
      allowed += allowed.empty() ? "" : ", ";
      allowed += std::string(e.name);
    }
    if (!n.is_string()) return type_error("a string (one of: " + allowed + ")", n);
    return "invalid value \"" + *v + "\": expected one of " + allowed;
  };
}

constexpr std::array<EnumName<TlsMode>, 6> tls_modes{{{"disable", TlsMode::disable},
                                                      {"allow", TlsMode::allow},
                                                      {"prefer", TlsMode::prefer},
                                                      {"require", TlsMode::require},
                                                      {"verify-ca", TlsMode::verify_ca},
                                                      {"verify-full", TlsMode::verify_full}}};
constexpr std::array<EnumName<AuthMethod>, 5> auth_methods{{{"scram-sha-256", AuthMethod::scram_sha_256},
                                                            {"md5", AuthMethod::md5},
                                                            {"password", AuthMethod::password},
                                                            {"cert", AuthMethod::cert},
                                                            {"trust", AuthMethod::trust}}};
constexpr std::array<EnumName<PoolMode>, 3> pool_modes{{{"session", PoolMode::session},
                                                        {"transaction", PoolMode::transaction},
                                                        {"statement", PoolMode::statement}}};
constexpr std::array<EnumName<LogLevel>, 5> log_levels{{{"trace", LogLevel::trace},
                                                        {"debug", LogLevel::debug},
                                                        {"info", LogLevel::info},
                                                        {"warn", LogLevel::warn},
                                                        {"error", LogLevel::error}}};
constexpr std::array<EnumName<LogFormat>, 2> log_formats{
    {{"text", LogFormat::text}, {"json", LogFormat::json}}};
constexpr std::array<EnumName<AuditStatements>, 4> audit_statements{{{"none", AuditStatements::none},
                                                                     {"ddl", AuditStatements::ddl},
                                                                     {"mod", AuditStatements::mod},
                                                                     {"all", AuditStatements::all}}};
constexpr std::array<EnumName<AuditParameters>, 2> audit_parameters{
    {{"redact", AuditParameters::redact}, {"log", AuditParameters::log}}};
constexpr std::array<EnumName<AuditLiterals>, 2> audit_literals{
    {{"keep", AuditLiterals::keep}, {"redact", AuditLiterals::redact}}};
constexpr std::array<EnumName<AuditFsync>, 3> audit_fsyncs{
    {{"every", AuditFsync::every}, {"batch", AuditFsync::batch}, {"off", AuditFsync::off}}};
constexpr std::array<EnumName<AuditOnFailure>, 2> audit_on_failures{
    {{"block", AuditOnFailure::block}, {"drop", AuditOnFailure::drop}}};
constexpr std::array<EnumName<AuditSink>, 3> audit_sinks{
    {{"file", AuditSink::file}, {"syslog", AuditSink::syslog}, {"stdout", AuditSink::standard_output}}};

// audit.sinks: a non-empty set of file | syslog | stdout, each at most once.
Apply<AuditSettings> sinks_key() {
  return [](AuditSettings& s, const toml::node& n) -> std::string {
    const toml::array* a = n.as_array();
    if (a == nullptr) return type_error("an array of strings (file, syslog, stdout)", n);
    std::vector<AuditSink> out;
    for (const auto& e : *a) {
      auto v = e.value<std::string>();
      if (!e.is_string() || !v) return type_error("an array of strings (file, syslog, stdout)", n);
      auto it = std::find_if(audit_sinks.begin(), audit_sinks.end(),
                             [&](const EnumName<AuditSink>& k) { return k.name == *v; });
      if (it == audit_sinks.end()) return "unknown sink \"" + *v + "\": expected file, syslog or stdout";
      if (std::find(out.begin(), out.end(), it->value) != out.end())
        return "sink \"" + *v + "\" is listed twice";
      out.push_back(it->value);
    }
    if (out.empty()) return "sinks must name at least one of file, syslog, stdout";
    s.sinks = std::move(out);
    return {};
  };
}

// "host:port", "[v6]:port"; the host may be a name.
std::string parse_listen(std::string_view text, ListenAddress& out) {
  std::string_view host, port;
  if (text.starts_with("[")) {
    auto close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return "invalid listen address \"" + std::string(text) + "\": expected \"[v6-address]:port\"";
    }
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else {
    auto colon = text.rfind(':');
    if (colon == std::string_view::npos || text.find(':') != colon) {
      return "invalid listen address \"" + std::string(text) +
             "\": expected \"host:port\" or \"[v6-address]:port\"";
    }
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
  }
  unsigned p = 0;
  auto [ptr, ec] = std::from_chars(port.data(), port.data() + port.size(), p);
  if (host.empty() || ec != std::errc{} || ptr != port.data() + port.size() || p == 0 || p > 65535) {
    return "invalid listen address \"" + std::string(text) + "\": port must be 1-65535 and host non-empty";
  }
  out.host = std::string(host);
  out.port = static_cast<std::uint16_t>(p);
  return {};
}

Apply<ProxySettings> metrics_listen_key() {
  return [](ProxySettings& s, const toml::node& n) -> std::string {
    auto v = n.value<std::string>();
    if (!n.is_string() || !v) return type_error("a \"host:port\" string", n);
    if (!v->empty()) {
      ListenAddress l;
      if (auto err = parse_listen(*v, l); !err.empty()) return err;
    }
    s.metrics_listen = *v;
    return {};
  };
}

Apply<ProxySettings> listen_key() {
  return [](ProxySettings& s, const toml::node& n) -> std::string {
    const toml::array* a = n.as_array();
    if (a == nullptr) return type_error("an array of \"host:port\" strings", n);
    std::vector<ListenAddress> out;
    for (const auto& e : *a) {
      auto v = e.value<std::string>();
      if (!e.is_string() || !v) return type_error("an array of \"host:port\" strings", n);
      ListenAddress l;
      if (auto err = parse_listen(*v, l); !err.empty()) return err;
      out.push_back(std::move(l));
    }
    if (out.empty()) return "listen must name at least one address";
    s.listen = std::move(out);
    return {};
  };
}

template <class S>
Apply<S> cidrs_key(std::vector<std::string> S::*m) {
  return [m](S& s, const toml::node& n) -> std::string {
    auto err = strings_key(m)(s, n);
    if (!err.empty()) return err;
    for (const auto& c : s.*m) {
      if (!Cidr::parse(c))
        return "invalid address \"" + c + "\": expected a CIDR such as \"10.0.0.0/8\" or \"::1/128\"";
    }
    return {};
  };
}

// The [pool] keys, shared by [pool] and by [[database]] (per-database overrides).
std::vector<KeyDef<PoolSettings>> pool_keys() {
  using P = PoolSettings;
  const std::int64_t big = 1'000'000;
  return {
      {{"pool", "mode", "string", "\"transaction\"", true, true, "session | transaction | statement"},
       enum_key(&P::mode, pool_modes),
       {}},
      {{"pool", "default_size", "integer", "20", true, true,
        "server connections per (database, user) pool, shared by all worker threads"},
       uint_key(&P::default_size, 1, big),
       {}},
      {{"pool", "min_size", "integer", "0", true, true, "idle server connections kept open per pool"},
       uint_key(&P::min_size, 0, big),
       {}},
      {{"pool", "reserve_size", "integer", "0", true, true,
        "extra connections a pool may open when a client has waited reserve_timeout"},
       uint_key(&P::reserve_size, 0, big),
       {}},
      {{"pool", "reserve_timeout", "duration", "\"5s\"", true, true, "wait before the reserve may be used"},
       duration_key(&P::reserve_timeout),
       {}},
      {{"pool", "max_db_connections", "integer", "0", true, true,
        "server connections per database across users; 0 = unlimited"},
       uint_key(&P::max_db_connections, 0, big),
       {}},
      {{"pool", "max_user_connections", "integer", "0", true, true,
        "server connections per user across databases; 0 = unlimited"},
       uint_key(&P::max_user_connections, 0, big),
       {}},
      {{"pool", "server_lifetime", "duration", "\"1h\"", true, true,
        "an idle server connection older than this is closed; 0 = never"},
       duration_key(&P::server_lifetime),
       {}},
      {{"pool", "server_idle_timeout", "duration", "\"10m\"", true, true,
        "a server connection idle this long is closed; 0 = never"},
       duration_key(&P::server_idle_timeout),
       {}},
      {{"pool", "server_check_delay", "duration", "\"1s\"", true, true,
        "a server connection idle at least this long is checked (closed by the server? unexpected bytes?) "
        "before it is handed out; 0 = always"},
       duration_key(&P::server_check_delay),
       {}},
      {{"pool", "server_connect_timeout", "duration", "\"15s\"", true, true,
        "connect, TLS and login to PostgreSQL must finish within this"},
       duration_key(&P::server_connect_timeout),
       {}},
      {{"pool", "query_wait_timeout", "duration", "\"120s\"", true, true,
        "a client waiting this long for a server connection gets 57014; 0 = forever"},
       duration_key(&P::query_wait_timeout),
       {}},
      {{"pool", "client_idle_timeout", "duration", "\"0s\"", true, true,
        "a client idle this long (outside a transaction) is disconnected; 0 = off"},
       duration_key(&P::client_idle_timeout),
       {}},
      {{"pool", "idle_transaction_timeout", "duration", "\"0s\"", true, true,
        "a client idle inside a transaction this long is disconnected; 0 = off"},
       duration_key(&P::idle_transaction_timeout),
       {}},
      {{"pool", "server_reset_query", "string", "\"DISCARD ALL\"", true, true,
        "run on a server connection before it is reused (session mode)"},
       string_key(&P::server_reset_query),
       {}},
      {{"pool", "max_prepared_statements", "integer", "200", true, true,
        "protocol-level named statements cached per server connection (LRU); 0 = no tracking"},
       uint_key(&P::max_prepared_statements, 0, big),
       {}},
      {{"pool", "max_client_prepared_statements", "integer", "1000", true, true,
        "protocol-level named statements one client may hold at once (transaction and statement modes)"},
       uint_key(&P::max_client_prepared_statements, 1, big),
       {}},
      {{"pool", "max_client_prepared_bytes", "size", "\"16MB\"", true, true,
        "bytes of statement text, names and parameter types those statements may hold in all"},
       size_key(&P::max_client_prepared_bytes, 1024, std::uint64_t{1} << 40),
       {}},
      {{"pool", "track_extra_parameters", "array of strings", "[]", true, true,
        "parameters kept per client besides client_encoding, DateStyle, IntervalStyle, TimeZone, "
        "standard_conforming_strings, application_name and default_transaction_read_only (they must be "
        "reported by ParameterStatus)"},
       strings_key(&P::track_extra_parameters),
       {}},
  };
}

std::vector<KeyDef<ProxySettings>> proxy_keys() {
  using S = ProxySettings;
  return {
      {{"proxy", "listen", "array of strings", "[\"127.0.0.1:6432\"]", false, true,
        "addresses to listen on, \"host:port\" or \"[v6]:port\""},
       listen_key(),
       {}},
      {{"proxy", "workers", "integer", "0", false, true, "I/O threads; 0 = one per core"},
       uint_key(&S::workers, 0, 1024),
       {}},
      {{"proxy", "max_client_conn", "integer", "1000", true, true, "client connections accepted at once"},
       uint_key(&S::max_client_conn, 1, 10'000'000),
       {}},
      {{"proxy", "shutdown_timeout", "duration", "\"30s\"", true, true,
        "on SIGTERM/SIGINT, how long clients may finish their transactions"},
       duration_key(&S::shutdown_timeout),
       {}},
      {{"proxy", "admin_users", "array of strings", "[]", true, true,
        "users allowed on the admin console (virtual database \"pgwarden\", also \"pgbouncer\")"},
       strings_key(&S::admin_users),
       {}},
      {{"proxy", "metrics_listen", "string", "\"\"", false, true,
        "\"host:port\" serving Prometheus /metrics (text format 0.0.4); \"\" = off"},
       metrics_listen_key(),
       {}},
      {{"proxy", "metrics_tls_cert", "path", "\"\"", false, true,
        "certificate chain (PEM) for /metrics over HTTPS; \"\" = plain HTTP"},
       path_key(&S::metrics_tls_cert),
       {}},
      {{"proxy", "metrics_tls_key", "path", "\"\"", false, true, "private key (PEM) for metrics_tls_cert"},
       path_key(&S::metrics_tls_key),
       {}},
      {{"proxy", "handover_socket", "path", "\"\"", false, true,
        "Unix socket for rolling restarts: `pgwarden --takeover` started with the same config takes the "
        "listening sockets over it while this process drains; \"\" = off"},
       path_key(&S::handover_socket),
       {}},
      {{"proxy", "peer_id", "integer", "0", false, true,
        "this instance's id among its [[peer]]s (1-16383): cancel keys carry it, so a CancelRequest that a "
        "load balancer sends to another instance is forwarded here; 0 = no peering"},
       uint_key(&S::peer_id, 0, 16383),
       {}},
      {{"proxy", "proxy_protocol_from", "array of strings", "[]", true, true,
        "CIDRs of load balancers that must send a PROXY protocol v1 or v2 header (and only they may); the "
        "address in it is the client's for rules, limits, logs and audit"},
       cidrs_key(&S::proxy_protocol_from),
       {}},
      {{"proxy", "max_packet_size", "size", "\"256MB\"", true, true,
        "largest message pgwarden holds whole to inspect (Query, Parse, ...); rows and COPY data are "
        "streamed"},
       size_key(&S::max_packet_size, 1024, 0x3fffffff),
       {}},
      {{"proxy", "client_login_timeout", "duration", "\"60s\"", true, true,
        "a client must finish TLS, startup and authentication within this"},
       duration_key(&S::client_login_timeout),
       {}},
      {{"proxy", "client_handshake_timeout", "duration", "\"10s\"", true, true,
        "a new connection must finish TLS and send its startup packet within this (slowloris)"},
       duration_key(&S::client_handshake_timeout),
       {}},
      {{"proxy", "max_db_client_connections", "integer", "0", true, true,
        "client connections per database; 0 = unlimited"},
       uint_key(&S::max_db_client_connections, 0, 10'000'000),
       {}},
      {{"proxy", "max_user_client_connections", "integer", "0", true, true,
        "client connections per user; 0 = unlimited"},
       uint_key(&S::max_user_client_connections, 0, 10'000'000),
       {}},
      {{"proxy", "max_client_conn_per_address", "integer", "0", true, true,
        "client connections at once from one address; 0 = max_client_conn (a sidecar or a load balancer "
        "without the PROXY protocol shows every client with one address)"},
       uint_key(&S::max_client_conn_per_address, 0, 10'000'000),
       {}},
      {{"proxy", "client_connect_rate", "integer", "5000", true, true,
        "new connections per second from one address (token bucket, bursts as large); 0 = off"},
       uint_key(&S::client_connect_rate, 0, 10'000'000),
       {}},
      {{"proxy", "revoke_on_reload", "bool", "true", true, true,
        "on reload, close (28000) clients that the new [[access]] rules or hba file no longer allow"},
       bool_key(&S::revoke_on_reload),
       {}},
  };
}

std::vector<KeyDef<ClientTlsSettings>> client_tls_keys() {
  using S = ClientTlsSettings;
  return {
      {{"client_tls", "mode", "string", "\"require\"", true, true,
        "disable | allow | prefer | require | verify-ca | verify-full"},
       enum_key(&S::mode, tls_modes),
       {}},
      {{"client_tls", "cert", "path", "\"\"", true, true, "certificate chain (PEM) pgwarden shows clients"},
       path_key(&S::cert),
       {}},
      {{"client_tls", "key", "path", "\"\"", true, true, "private key (PEM) of cert"}, path_key(&S::key), {}},
      {{"client_tls", "ca", "path", "\"\"", true, true,
        "CA bundle for client certificates (verify-ca, verify-full)"},
       path_key(&S::ca),
       {}},
      {{"client_tls", "min_version", "string", "\"TLSv1.2\"", true, true, "TLSv1.2 | TLSv1.3"},
       string_key(&S::min_version),
       {}},
      {{"client_tls", "ciphers", "string", "\"HIGH:!aNULL:!MD5\"", true, true,
        "TLS 1.2 cipher list (OpenSSL syntax)"},
       string_key(&S::ciphers),
       {}},
      {{"client_tls", "ciphersuites", "string", "\"\"", true, true,
        "TLS 1.3 suites; \"\" = OpenSSL's default"},
       string_key(&S::ciphersuites),
       {}},
  };
}

std::vector<KeyDef<ServerTlsSettings>> server_tls_keys() {
  using S = ServerTlsSettings;
  return {
      {{"server_tls", "mode", "string", "\"verify-full\"", true, true,
        "libpq sslmode: disable | allow | prefer | require | verify-ca | verify-full"},
       enum_key(&S::mode, tls_modes),
       {}},
      {{"server_tls", "ca", "path", "\"\"", true, true, "CA bundle that signs PostgreSQL's certificate"},
       path_key(&S::ca),
       {}},
      {{"server_tls", "cert", "path", "\"\"", true, true, "client certificate for mutual TLS to PostgreSQL"},
       path_key(&S::cert),
       {}},
      {{"server_tls", "key", "path", "\"\"", true, true, "private key of cert"}, path_key(&S::key), {}},
      {{"server_tls", "min_version", "string", "\"TLSv1.2\"", true, true, "TLSv1.2 | TLSv1.3"},
       string_key(&S::min_version),
       {}},
      {{"server_tls", "ciphers", "string", "\"HIGH:!aNULL:!MD5\"", true, true, "TLS 1.2 cipher list"},
       string_key(&S::ciphers),
       {}},
      {{"server_tls", "ciphersuites", "string", "\"\"", true, true,
        "TLS 1.3 suites; \"\" = OpenSSL's default"},
       string_key(&S::ciphersuites),
       {}},
  };
}

Apply<AuthSettings> cert_map_key() {
  return [](AuthSettings& s, const toml::node& n) -> std::string {
    const toml::table* t = n.as_table();
    const char* expected = "a table of certificate CN = \"user\" or [\"user\", ...]";
    if (t == nullptr) return type_error(expected, n);
    std::map<std::string, std::vector<std::string>, std::less<>> out;
    for (auto&& [k, v] : *t) {
      std::vector<std::string> users;
      if (auto one = v.value<std::string>(); v.is_string() && one) {
        users.push_back(*one);
      } else if (const toml::array* a = v.as_array()) {
        for (const auto& e : *a) {
          auto u = e.value<std::string>();
          if (!e.is_string() || !u) return type_error(expected, v);
          users.push_back(*u);
        }
      } else {
        return type_error(expected, v);
      }
      out[std::string(k.str())] = std::move(users);
    }
    s.cert_map = std::move(out);
    return {};
  };
}

std::vector<KeyDef<AuthSettings>> auth_keys() {
  using S = AuthSettings;
  return {
      {{"auth", "type", "string", "\"scram-sha-256\"", true, true,
        "client authentication: scram-sha-256 | md5 | password | cert | trust"},
       enum_key(&S::type, auth_methods),
       {}},
      {{"auth", "file", "path", "\"\"", true, true,
        "PgBouncer-format auth file: \"user\" \"plain | md5... | SCRAM-SHA-256$...\""},
       path_key(&S::file),
       {}},
      {{"auth", "hba_file", "path", "\"\"", true, true,
        "pg_hba.conf-format access rules (host, hostssl, hostnossl lines) instead of [[access]]"},
       path_key(&S::hba_file),
       {}},
      {{"auth", "query", "string", "\"\"", true, true,
        "auth_query: looks up a user's secret on the server for users the auth file does not list; $1 is "
        "the user name, the result is (name, secret), e.g. SELECT usename, passwd FROM pg_shadow WHERE "
        "usename = $1"},
       string_key(&S::query),
       {}},
      {{"auth", "query_user", "string", "\"\"", true, true,
        "server user that runs auth.query (its secret: auth file or the database's password)"},
       string_key(&S::query_user),
       {}},
      {{"auth", "query_cache_ttl", "duration", "\"15s\"", true, true,
        "how long a secret found by auth.query is reused; \"0s\" = ask every time. Misses are never cached"},
       duration_key(&S::query_cache_ttl),
       {}},
      {{"auth", "cert_map", "table", "{}", true, true,
        "cert method: certificate CN -> user name or array of user names it may log in as; a CN not listed "
        "must equal the user name"},
       cert_map_key(),
       {}},
      {{"auth", "backoff_after_failures", "integer", "5", true, true,
        "failed logins in a row from one client address before its new logins are refused (53300) for a "
        "back-off; 0 = off"},
       uint_key(&S::backoff_after_failures, 0, 1'000'000),
       {}},
      {{"auth", "backoff_initial", "duration", "\"1s\"", true, true,
        "first back-off; it doubles with every further failure"},
       duration_key(&S::backoff_initial),
       {}},
      {{"auth", "backoff_max", "duration", "\"60s\"", true, true, "longest back-off"},
       duration_key(&S::backoff_max),
       {}},
  };
}

std::vector<KeyDef<DatabaseSettings>> database_keys() {
  using S = DatabaseSettings;
  return {
      {{"database", "name", "string", "(required)", true, true, "database name clients connect to"},
       string_key(&S::name),
       {}},
      {{"database", "host", "string", "\"127.0.0.1\"", true, true,
        "PostgreSQL host name or IP; a name is resolved again for every new server connection"},
       string_key(&S::host),
       {}},
      {{"database", "port", "integer", "5432", true, true, "PostgreSQL port"},
       uint_key(&S::port, 1, 65535),
       {}},
      {{"database", "dbname", "string", "name", true, true, "database name on the server"},
       string_key(&S::dbname),
       {}},
      {{"database", "user", "string", "\"\"", true, true, "force this server user; \"\" = the client's user"},
       string_key(&S::user),
       {}},
      {{"database", "password", "string", "\"\"", true, true,
        "server password when the auth file holds no usable secret"},
       string_key(&S::password),
       {}},
  };
}

std::vector<KeyDef<LogSettings>> log_keys() {
  using S = LogSettings;
  return {
      {{"log", "level", "string", "\"info\"", true, true, "trace | debug | info | warn | error"},
       enum_key(&S::level, log_levels),
       {}},
      {{"log", "format", "string", "\"text\"", true, true, "text | json"},
       enum_key(&S::format, log_formats),
       {}},
  };
}

std::vector<KeyDef<AuditSettings>> audit_keys() {
  using S = AuditSettings;
  const std::int64_t big = 1'000'000;
  return {
      {{"audit", "enabled", "bool", "true", false, true, "write the audit log"}, bool_key(&S::enabled), {}},
      {{"audit", "instance", "string", "\"\"", false, true,
        "instance name in every record (chains are told apart by it); \"\" = the host name"},
       string_key(&S::instance),
       {}},
      {{"audit", "path", "path", "\"audit.jsonl\"", false, true,
        "the audit log (JSON Lines); rotated files get .1, .2, ... (.1 newest); needed with the file sink"},
       path_key(&S::path),
       {}},
      {{"audit", "sinks", "array of strings", "[\"file\"]", false, true,
        "file | syslog | stdout, several allowed; the same chained lines go to each. syslog: RFC 5424 over "
        "/dev/log, facility authpriv"},
       sinks_key(),
       {}},
      {{"audit", "statements", "string", "\"mod\"", false, true,
        "none | ddl | mod | all (PostgreSQL log_statement levels)"},
       enum_key(&S::statements, audit_statements),
       {}},
      {{"audit", "parameters", "string", "\"redact\"", false, true,
        "redact | log: bind parameters may hold PHI"},
       enum_key(&S::parameters, audit_parameters),
       {}},
      {{"audit", "rotate_size", "size", "\"100MB\"", false, true,
        "rotate the file when it reaches this size; 0 = never"},
       size_key(&S::rotate_size, 0, std::uint64_t{1} << 50),
       {}},
      {{"audit", "rotate_keep", "integer", "10", false, true,
        "rotated files kept; older ones are deleted (audit verify accepts a chain starting in the oldest "
        "kept file)"},
       uint_key(&S::rotate_keep, 0, 100'000),
       {}},
      {{"audit", "fsync", "string", "\"batch\"", false, true,
        "every (a record is on disk before its statement runs) | batch (fsync at most every fsync_interval) "
        "| "
        "off"},
       enum_key(&S::fsync, audit_fsyncs),
       {}},
      {{"audit", "hmac_key_file", "path", "\"\"", false, true,
        "key for an HMAC-SHA-256 chain (trailing newlines ignored); \"\" = plain SHA-256 chain"},
       path_key(&S::hmac_key_file),
       {}},
      {{"audit", "checkpoint_interval", "duration", "\"1m\"", false, true,
        "checkpoint records (seq and hash of the last record) to the sinks other than file; 0 = at shutdown "
        "only"},
       duration_key(&S::checkpoint_interval),
       {}},
      {{"audit", "literals", "string", "\"keep\"", false, true,
        "keep | redact (constants in statement text replaced by $n)"},
       enum_key(&S::literals, audit_literals),
       {}},
      {{"audit", "routines", "bool", "false", false, true, "also record DO and CALL (class routine)"},
       bool_key(&S::routines),
       {}},
      {{"audit", "on_failure", "string", "\"block\"", false, true,
        "block (refuse modifying statements with 58030 while records cannot be written) | drop (counted, "
        "alarmed, then a records_dropped record)"},
       enum_key(&S::on_failure, audit_on_failures),
       {}},
      {{"audit", "queue_records", "integer", "65536", false, true,
        "records waiting for the writer thread; beyond it on_failure applies"},
       uint_key(&S::queue_records, 1, big * 100),
       {}},
      {{"audit", "queue_size", "size", "\"64MB\"", false, true,
        "bytes of records waiting for the writer thread; beyond it on_failure applies"},
       size_key(&S::queue_size, 1024, std::uint64_t{1} << 40),
       {}},
      {{"audit", "fsync_interval", "duration", "\"100ms\"", false, true,
        "with fsync = \"batch\": written records are fsynced at most this long after their write (each fsync "
        "costs the writer a wait for the disk, whatever the number of records)"},
       duration_key(&S::fsync_interval),
       {}},
      {{"audit", "write_delay", "duration", "\"10ms\"", false, true,
        "with fsync = \"batch\" or \"off\": how long the writer thread lets records gather before it "
        "writes them (one wakeup per batch, not per record; a crash of pgwarden itself loses at most this "
        "much); 0 = at once. Records a session waits for (fsync = \"every\") are never delayed"},
       duration_key(&S::write_delay),
       {}},
      {{"audit", "retry_interval", "duration", "\"1s\"", false, true,
        "a failing log (disk full, I/O error, no /dev/log) retries its writes this often"},
       duration_key(&S::retry_interval),
       {}},
  };
}

constexpr std::array<EnumName<AccessAction>, 2> access_actions{
    {{"allow", AccessAction::allow}, {"deny", AccessAction::deny}}};

// [[peer]]: the other instances of a fleet, for CancelRequests that reach the wrong one.
std::vector<KeyDef<PeerSettings>> peer_keys() {
  using S = PeerSettings;
  return {
      {{"peer", "id", "integer", "(required)", true, true, "the peer's proxy.peer_id (1-16383)"},
       uint_key(&S::id, 1, 16383),
       {}},
      {{"peer", "host", "string", "(required)", true, true,
        "where the peer listens (one of its proxy.listen addresses); the cancel goes there in plaintext, as "
        "libpq sends it"},
       string_key(&S::host),
       {}},
      {{"peer", "port", "integer", "6432", true, true, "the peer's port"}, uint_key(&S::port, 1, 65535), {}},
  };
}

// [[access]] rules (SPEC): first match wins, no match is refused.
std::vector<KeyDef<AccessRule>> access_keys() {
  using R = AccessRule;
  return {
      {{"access", "action", "string", "\"allow\"", true, true, "allow | deny"},
       enum_key(&R::action, access_actions),
       {}},
      {{"access", "database", "array of strings", "[\"all\"]", true, true,
        "databases the rule matches; \"all\" = any"},
       strings_key(&R::databases),
       {}},
      {{"access", "user", "array of strings", "[\"all\"]", true, true,
        "users the rule matches; \"all\" = any"},
       strings_key(&R::users),
       {}},
      {{"access", "address", "array of strings", "[] (any)", true, true,
        "client CIDRs the rule matches (IPv4-mapped IPv6 addresses match IPv4 rules)"},
       [](R& r, const toml::node& n) -> std::string {
         const toml::array* a = n.as_array();
         if (a == nullptr) return type_error("an array of CIDR strings", n);
         std::vector<Cidr> out;
         for (const auto& e : *a) {
           auto v = e.value<std::string>();
           if (!e.is_string() || !v) return type_error("an array of CIDR strings", n);
           auto c = Cidr::parse(*v);
           if (!c)
             return "invalid address \"" + *v + "\": expected a CIDR such as \"10.0.1.0/24\" or \"::1/128\"";
           out.push_back(*c);
         }
         r.addresses = std::move(out);
         return {};
       },
       {}},
      {{"access", "tls", "bool", "false", true, true, "true: the connection must be TLS"},
       [](R& r, const toml::node& n) -> std::string {
         if (!n.is_boolean()) return type_error("true or false", n);
         r.tls = *n.value<bool>() ? AccessRule::Tls::required : AccessRule::Tls::any;
         return {};
       },
       {}},
      {{"access", "method", "string", "auth.type", true, true,
        "auth method for matching connections: scram-sha-256 | md5 | password | cert | trust"},
       [](R& r, const toml::node& n) -> std::string {
         AuthSettings a;
         auto err = enum_key(&AuthSettings::type, auth_methods)(a, n);
         if (err.empty()) r.method = a.type;
         return err;
       },
       {}},
  };
}

class Parser {
 public:
  Parser(const std::filesystem::path& file) : file_(file.string()) { cfg_.path = file; }

  LoadResult run(const toml::table& root) {
    static const std::set<std::string_view, std::less<>> sections{
        "proxy", "client_tls", "server_tls", "auth", "pool", "database", "log", "audit", "access", "peer"};
    for (auto&& [k, v] : root) {
      std::string_view name = k.str();
      if (!sections.contains(name)) {
        error(k.source(), "unknown section or key '" + std::string(name) + "'" + suggest(name, sections));
      }
    }
    table_section(root, "proxy", cfg_.proxy, proxy_keys());
    table_section(root, "client_tls", cfg_.client_tls, client_tls_keys());
    table_section(root, "server_tls", cfg_.server_tls, server_tls_keys());
    table_section(root, "auth", cfg_.auth, auth_keys());
    table_section(root, "pool", cfg_.pool, pool_keys());
    table_section(root, "log", cfg_.log, log_keys());
    table_section(root, "audit", cfg_.audit, audit_keys());
    databases(root);
    access_rules(root);
    peers(root);
    resolve_paths();
    validate();
    // Keys come in name order (toml++ tables) and sections in a fixed order: report them in file order.
    std::stable_sort(diags_.begin(), diags_.end(), [](const Diagnostic& a, const Diagnostic& b) {
      return std::tie(a.where.line, a.where.column) < std::tie(b.where.line, b.where.column);
    });
    LoadResult r;
    r.diagnostics = std::move(diags_);
    if (r.diagnostics.empty()) r.config = std::move(cfg_);
    return r;
  }

  void error(const toml::source_region& where, std::string message) {
    diags_.push_back({position(where, file_), std::move(message)});
  }
  // A cross-key check on a key whose value was already refused would only repeat the problem.
  void error_at(std::string_view key, std::string message) {
    if (refused_keys_.contains(key)) return;
    diags_.push_back({cfg_.position_of(key), std::move(message)});
  }

 private:
  template <class S>
  const toml::table* section_table(const toml::table& root, std::string_view name) {
    const toml::node* n = root.get(name);
    if (n == nullptr) return nullptr;
    const toml::table* t = n->as_table();
    if (t == nullptr) {
      error(n->source(), "[" + std::string(name) + "] must be a table");
      return nullptr;
    }
    cfg_.positions[std::string(name)] = position(n->source(), file_);
    return t;
  }

  template <class S>
  static const KeyDef<S>* find_key(const std::vector<KeyDef<S>>& keys, std::string_view name) {
    auto it = std::find_if(keys.begin(), keys.end(), [&](const KeyDef<S>& d) { return d.info.name == name; });
    return it == keys.end() ? nullptr : &*it;
  }

  template <class S>
  void apply_one(const toml::key& k, const toml::node& v, std::string_view prefix, std::string_view section,
                 S& target, const KeyDef<S>& def) {
    std::string_view name = k.str();
    cfg_.positions[std::string(prefix) + "." + std::string(name)] = position(k.source(), file_);
    if (!def.info.supported && !(def.is_off && def.is_off(v))) {
      error(k.source(),
            std::string(section) + "." + std::string(name) + " is not supported yet by this build");
      return;
    }
    if (auto err = def.apply(target, v); !err.empty()) {
      error(v.source(), std::string(section) + "." + std::string(name) + ": " + err);
      refused_keys_.insert(std::string(prefix) + "." + std::string(name));
    }
  }

  template <class S>
  void unknown_key(const toml::key& k, std::string_view section, const std::vector<KeyDef<S>>& keys,
                   std::set<std::string_view, std::less<>> names = {}) {
    for (const auto& d : keys)
      names.insert(d.info.name);
    error(k.source(), "unknown key '" + std::string(k.str()) + "' in [" + std::string(section) + "]" +
                          suggest(k.str(), names));
  }

  template <class S>
  void apply_keys(const toml::table& t, std::string_view prefix, std::string_view section, S& target,
                  const std::vector<KeyDef<S>>& keys) {
    for (auto&& [k, v] : t) {
      if (const KeyDef<S>* def = find_key(keys, k.str())) {
        apply_one(k, v, prefix, section, target, *def);
      } else {
        unknown_key(k, section, keys);
      }
    }
  }

  template <class S>
  void table_section(const toml::table& root, std::string_view name, S& target,
                     const std::vector<KeyDef<S>>& keys) {
    if (const toml::table* t = section_table<S>(root, name)) apply_keys(*t, name, name, target, keys);
  }

  void databases(const toml::table& root) {
    const toml::node* n = root.get("database");
    if (n == nullptr) return;
    const toml::array* arr = n->as_array();
    if (arr == nullptr || !arr->is_array_of_tables()) {
      error(n->source(), "database entries must be written as [[database]] tables");
      return;
    }
    cfg_.positions["database"] = position(n->source(), file_);
    auto db_keys = database_keys();
    // Pool overrides: any [pool] key by its own name, or PgBouncer's spellings pool_size and pool_mode.
    auto pk = pool_keys();
    auto aliases = pk;
    for (auto& o : aliases) {
      if (o.info.name == "default_size") o.info.name = "pool_size";
      if (o.info.name == "mode") o.info.name = "pool_mode";
    }
    std::set<std::string_view, std::less<>> pool_names{"pool_size", "pool_mode"};
    for (const auto& k : pk)
      pool_names.insert(k.info.name);
    std::size_t index = 0;
    for (const auto& e : *arr) {
      const toml::table& t = *e.as_table();
      DatabaseSettings db;
      db.pool = cfg_.pool;
      std::string prefix = "database[" + std::to_string(index) + "]";
      cfg_.positions[prefix] = position(t.source(), file_);
      for (auto&& [k, v] : t) {
        if (const auto* def = find_key(db_keys, k.str())) {
          apply_one(k, v, prefix, "database", db, *def);
        } else if (const auto* pdef = find_key(pk, k.str())) {
          apply_one(k, v, prefix, "database", db.pool, *pdef);
        } else if (const auto* adef = find_key(aliases, k.str())) {
          apply_one(k, v, prefix, "database", db.pool, *adef);
        } else {
          unknown_key(k, "database", db_keys, pool_names);
        }
      }
      if (t.contains("pool_size") && t.contains("default_size")) {
        error(t.get("default_size")->source(), "set either pool_size or default_size, not both");
      }
      if (t.contains("pool_mode") && t.contains("mode")) {
        error(t.get("mode")->source(), "set either pool_mode or mode, not both");
      }
      if (db.name.empty()) {
        error(t.source(), "[[database]] needs a name");
      }
      if (db.dbname.empty()) db.dbname = db.name;
      cfg_.databases.push_back(std::move(db));
      ++index;
    }
  }

  void access_rules(const toml::table& root) {
    const toml::node* n = root.get("access");
    if (n == nullptr) return;
    const toml::array* arr = n->as_array();
    if (arr == nullptr || !arr->is_array_of_tables()) {
      error(n->source(), "access entries must be written as [[access]] tables");
      return;
    }
    cfg_.positions["access"] = position(n->source(), file_);
    auto keys = access_keys();
    auto rules = std::make_shared<std::vector<AccessRule>>();
    std::size_t index = 0;
    for (const auto& e : *arr) {
      const toml::table& t = *e.as_table();
      AccessRule rule;
      rule.where = position(t.source(), file_);
      std::string prefix = "access[" + std::to_string(index++) + "]";
      cfg_.positions[prefix] = rule.where;
      apply_keys(t, prefix, "access", rule, keys);
      if (rule.method == AuthMethod::trust && rule.action == AccessAction::allow && rule.addresses.empty()) {
        error(t.source(),
              "an [[access]] rule with method = \"trust\" must name its addresses: trust for "
              "every address is never what a HIPAA deployment wants");
      }
      rules->push_back(std::move(rule));
    }
    cfg_.access = std::move(rules);
  }

  void peers(const toml::table& root) {
    const toml::node* n = root.get("peer");
    if (n == nullptr) return;
    const toml::array* arr = n->as_array();
    if (arr == nullptr || !arr->is_array_of_tables()) {
      error(n->source(), "peer entries must be written as [[peer]] tables");
      return;
    }
    cfg_.positions["peer"] = position(n->source(), file_);
    auto keys = peer_keys();
    std::set<unsigned> ids;
    std::size_t index = 0;
    for (const auto& e : *arr) {
      const toml::table& t = *e.as_table();
      PeerSettings peer;
      std::string prefix = "peer[" + std::to_string(index++) + "]";
      cfg_.positions[prefix] = position(t.source(), file_);
      apply_keys(t, prefix, "peer", peer, keys);
      if (peer.id == 0 || peer.host.empty()) {
        error(t.source(), "a [[peer]] needs id (1-16383) and host");
      } else if (!ids.insert(peer.id).second) {
        error(t.source(), "peer id " + std::to_string(peer.id) + " is listed twice");
      }
      cfg_.peers.push_back(std::move(peer));
    }
  }

  void resolve_paths() {
    std::filesystem::path base = cfg_.path.parent_path();
    auto resolve = [&](std::filesystem::path& p) {
      if (!p.empty() && p.is_relative()) p = base / p;
    };
    resolve(cfg_.client_tls.cert);
    resolve(cfg_.client_tls.key);
    resolve(cfg_.client_tls.ca);
    resolve(cfg_.server_tls.ca);
    resolve(cfg_.server_tls.cert);
    resolve(cfg_.server_tls.key);
    resolve(cfg_.auth.file);
    resolve(cfg_.auth.hba_file);
    resolve(cfg_.audit.path);
    resolve(cfg_.audit.hmac_key_file);
    resolve(cfg_.proxy.metrics_tls_cert);
    resolve(cfg_.proxy.metrics_tls_key);
    resolve(cfg_.proxy.handover_socket);
  }

  void validate() {
    // A longer path would pass here and fail at start, after a rolling restart took the listeners.
    constexpr std::size_t max_socket_path = sizeof(sockaddr_un::sun_path) - 1;  // and its NUL
    if (const auto& h = cfg_.proxy.handover_socket; h.native().size() > max_socket_path) {
      error_at("proxy.handover_socket",
               "proxy.handover_socket \"" + h.string() + "\" is " + std::to_string(h.native().size()) +
                   " bytes long; a Unix socket path takes at most " + std::to_string(max_socket_path));
    }
    const auto& ct = cfg_.client_tls;
    if (ct.mode != TlsMode::disable && (ct.cert.empty() || ct.key.empty())) {
      error_at("client_tls.mode",
               "client_tls.mode = \"" + std::string(to_string(ct.mode)) +
                   "\" needs client_tls.cert and client_tls.key (or set mode = \"disable\")");
    }
    if ((ct.mode == TlsMode::verify_ca || ct.mode == TlsMode::verify_full) && ct.ca.empty()) {
      error_at("client_tls.mode", "client_tls.mode = \"" + std::string(to_string(ct.mode)) +
                                      "\" needs client_tls.ca, the CA that signs client certificates");
    }
    const auto& st = cfg_.server_tls;
    if ((st.mode == TlsMode::verify_ca || st.mode == TlsMode::verify_full) && st.ca.empty()) {
      error_at("server_tls.mode", "server_tls.mode = \"" + std::string(to_string(st.mode)) +
                                      "\" needs server_tls.ca to verify PostgreSQL's certificate");
    }
    if (st.cert.empty() != st.key.empty()) {
      error_at(st.cert.empty() ? "server_tls.key" : "server_tls.cert",
               "server_tls.cert and server_tls.key must be set together");
    }
    for (auto [key, v] : {std::pair{"client_tls.min_version", &ct.min_version},
                          std::pair{"server_tls.min_version", &st.min_version}}) {
      if (*v != "TLSv1.2" && *v != "TLSv1.3") {
        error_at(key, std::string(key) + " = \"" + *v +
                          "\": use \"TLSv1.2\" or \"TLSv1.3\" (older versions are refused)");
      }
    }
    if (cfg_.access && !cfg_.auth.hba_file.empty()) {
      error_at("auth.hba_file", "set either [[access]] rules or auth.hba_file, not both");
    }
    const auto& au = cfg_.auth;
    bool needs_secrets = au.type != AuthMethod::cert && au.type != AuthMethod::trust;
    if (needs_secrets && au.file.empty() && au.query.empty()) {
      error_at("auth", "auth.type = \"" + std::string(to_string(au.type)) +
                           "\" needs auth.file (the PgBouncer-format file holding each user's secret) or "
                           "auth.query");
    }
    if (!au.query.empty() && au.query_user.empty()) {
      error_at("auth.query", "auth.query needs auth.query_user, the server user that runs it");
    }
    if (au.query.empty() && !au.query_user.empty()) {
      error_at("auth.query_user", "auth.query_user is set but auth.query is empty");
    }
    if (au.type == AuthMethod::cert && ct.ca.empty()) {
      error_at("auth.type",
               "auth.type = \"cert\" needs client_tls.ca, the CA that signs client certificates");
    }
    if (au.backoff_after_failures > 0 &&
        (au.backoff_initial.count() <= 0 || au.backoff_max < au.backoff_initial)) {
      error_at("auth.backoff_initial", "auth.backoff_initial must be above 0 and at most auth.backoff_max");
    }
    if (cfg_.databases.empty()) {
      error_at("database", "no [[database]] is configured: clients would have nothing to connect to");
    }
    std::set<std::string, std::less<>> names;
    for (std::size_t i = 0; i < cfg_.databases.size(); ++i) {
      const auto& d = cfg_.databases[i];
      std::string prefix = "database[" + std::to_string(i) + "]";
      if (!d.name.empty() && !names.insert(d.name).second) {
        error_at(prefix + ".name", "database \"" + d.name + "\" is configured twice");
      }
      if (d.host.empty()) error_at(prefix + ".host", "database host must not be empty");
      validate_pool(d.pool, prefix);
    }
    validate_pool(cfg_.pool, "pool");
    validate_audit();
  }

  void validate_audit() {
    const AuditSettings& a = cfg_.audit;
    if (!a.enabled) return;  // nothing is opened or read: the keys were still checked one by one
    if (a.has_sink(AuditSink::file) && a.path.empty()) {
      error_at("audit.path", "audit.path must name a file when \"file\" is one of audit.sinks");
    }
    if (!a.path.empty() && a.has_sink(AuditSink::file) && a.path.filename().empty()) {
      error_at("audit.path", "audit.path \"" + a.path.string() + "\" names a directory, not a file");
    }
    if (!a.hmac_key_file.empty()) {
      std::string why;
      if (!read_key_file(a.hmac_key_file, why))
        error_at("audit.hmac_key_file", "audit.hmac_key_file: " + why);
    }
    if (a.fsync == AuditFsync::every && !a.has_sink(AuditSink::file)) {
      error_at("audit.fsync", "audit.fsync = \"every\" needs the file sink: only a file can be fsynced");
    }
  }

  void validate_pool(const PoolSettings& p, const std::string& prefix) {
    auto key = [&](std::string_view k) { return prefix + "." + std::string(k); };
    if (p.min_size > p.default_size) {
      error_at(key("min_size"), "min_size (" + std::to_string(p.min_size) + ") exceeds default_size (" +
                                    std::to_string(p.default_size) + ")");
    }
  }

  static std::size_t edit_distance(std::string_view a, std::string_view b) {
    std::vector<std::size_t> prev(b.size() + 1), cur(b.size() + 1);
    for (std::size_t j = 0; j <= b.size(); ++j)
      prev[j] = j;
    for (std::size_t i = 1; i <= a.size(); ++i) {
      cur[0] = i;
      for (std::size_t j = 1; j <= b.size(); ++j) {
        cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
      }
      std::swap(prev, cur);
    }
    return prev[b.size()];
  }

  static std::string suggest(std::string_view name, const std::set<std::string_view, std::less<>>& known) {
    std::string_view best;
    std::size_t best_d = 3;
    for (auto k : known) {
      std::size_t d = edit_distance(name, k);
      if (d < best_d) {
        best_d = d;
        best = k;
      }
    }
    return best.empty() ? std::string{} : " (did you mean '" + std::string(best) + "'?)";
  }

  std::string file_;
  Config cfg_;
  std::vector<Diagnostic> diags_;
  std::set<std::string, std::less<>> refused_keys_;
};

}  // namespace

LoadResult parse(std::string_view toml_text, const std::filesystem::path& file_name) {
  toml::table root;
  try {
    root = toml::parse(toml_text, file_name.string());
  } catch (const toml::parse_error& e) {
    LoadResult r;
    r.diagnostics.push_back({position(e.source(), file_name.string()), std::string(e.description())});
    return r;
  }
  LoadResult r = Parser(file_name).run(root);
  if (r.config) r.config->source = std::make_shared<const std::string>(toml_text);
  return r;
}

std::string parse_listen_address(std::string_view text, ListenAddress& out) {
  return parse_listen(text, out);
}

namespace {

// PgBouncer's names for the keys an operator most often SETs.
constexpr std::array<std::pair<std::string_view, std::string_view>, 14> pgbouncer_names{{
    {"default_pool_size", "pool.default_size"},
    {"min_pool_size", "pool.min_size"},
    {"reserve_pool_size", "pool.reserve_size"},
    {"reserve_pool_timeout", "pool.reserve_timeout"},
    {"pool_mode", "pool.mode"},
    {"max_db_connections", "pool.max_db_connections"},
    {"max_user_connections", "pool.max_user_connections"},
    {"server_lifetime", "pool.server_lifetime"},
    {"server_idle_timeout", "pool.server_idle_timeout"},
    {"server_check_delay", "pool.server_check_delay"},
    {"query_wait_timeout", "pool.query_wait_timeout"},
    {"client_idle_timeout", "pool.client_idle_timeout"},
    {"idle_transaction_timeout", "pool.idle_transaction_timeout"},
    {"max_client_conn", "proxy.max_client_conn"},
}};

std::string node_text(const toml::node& n) {
  if (auto s = n.value<std::string>(); s && n.is_string()) return *s;
  std::ostringstream out;
  n.visit([&](const auto& v) { out << v; });
  return out.str();
}

}  // namespace

std::span<const std::pair<std::string_view, std::string_view>> pgbouncer_key_names() noexcept {
  return pgbouncer_names;
}

namespace {

bool equal_ignoring_case(std::string_view a, std::string_view b) noexcept {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

}  // namespace

LoadResult with_setting(const Config& base, std::string_view key, std::string_view value) {
  auto fail = [&](std::string message) {
    LoadResult r;
    r.diagnostics.push_back({Position{"SET", 1, 1}, std::move(message)});
    return r;
  };
  std::string name(key);
  bool pgbouncer_name = false;
  for (const auto& [from, to] : pgbouncer_names) {
    if (equal_ignoring_case(key, from)) {  // PgBouncer's console takes its names in any case
      name = to;
      pgbouncer_name = true;
    }
  }
  auto dot = name.find('.');
  if (dot == std::string::npos) return fail("unknown key \"" + name + "\": write it as section.name");
  std::string_view section = std::string_view(name).substr(0, dot);
  std::string_view leaf = std::string_view(name).substr(dot + 1);
  const auto keys = key_reference();
  auto it = std::find_if(keys.begin(), keys.end(), [&](const KeyInfo& k) {
    return k.section == section && k.name == leaf && section != "database" && section != "access" &&
           section != "peer";
  });
  if (it == keys.end()) return fail("unknown key \"" + name + "\"");
  if (!it->reloadable) return fail(name + " needs a restart: change it in the config file");
  std::string text(value);
  // PgBouncer's console takes every value in quotes ('7', '30'): under its names, so does this one.
  const bool scalar =
      it->type == "integer" || it->type == "duration" || it->type == "size" || it->type == "bool";
  if (pgbouncer_name && scalar && text.size() >= 2 && text.front() == '\'' && text.back() == '\'')
    text = text.substr(1, text.size() - 2);
  if (pgbouncer_name && it->type == "duration" && !text.empty() &&
      std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    text = "\"" + text + "s\"";  // PgBouncer's durations are seconds
  }
  toml::table assignment;
  toml::table root;
  try {
    const std::string line = "v = " + text;
    assignment = toml::parse(std::string_view(line), std::string_view("SET"));
    root = toml::parse(base.source ? *base.source : std::string(), base.path.string());
  } catch (const toml::parse_error& e) {
    return fail("invalid value for " + name + ": " + std::string(e.description()));
  }
  const toml::node* v = assignment.get("v");
  if (v == nullptr || assignment.size() != 1) return fail("invalid value for " + name);
  toml::table* t = root.get_as<toml::table>(section);
  if (t == nullptr) {
    root.insert_or_assign(section, toml::table{});
    t = root.get_as<toml::table>(section);
  }
  v->visit([&](const auto& node) { t->insert_or_assign(leaf, node); });
  std::ostringstream serialized;
  serialized << root;
  LoadResult r = parse(serialized.str(), base.path);
  for (auto& d : r.diagnostics)
    d.where = Position{"SET", 1, 1};
  return r;
}

std::vector<ConfigRow> config_rows(const Config& config) {
  toml::table root;
  if (config.source) {
    try {
      root = toml::parse(*config.source, config.path.string());
    } catch (const toml::parse_error&) {  // it parsed when it was loaded; an empty table shows the defaults
    }
  }
  std::vector<ConfigRow> out;
  for (const auto& k : key_reference()) {
    if (k.section == "database" || k.section == "access" || k.section == "peer") continue;
    ConfigRow row{
        std::string(k.section) + "." + std::string(k.name), {}, std::string(k.default_value), k.reloadable};
    if (row.default_value.size() >= 2 && row.default_value.front() == '"') {
      row.default_value = row.default_value.substr(1, row.default_value.size() - 2);
    }
    const toml::node* n = root.at_path(row.key).node();
    row.value = n != nullptr ? node_text(*n) : row.default_value;
    out.push_back(std::move(row));
  }
  return out;
}

LoadResult load(const std::filesystem::path& file) {
  auto refused = [&](std::string why) {
    LoadResult r;
    r.diagnostics.push_back({Position{file.string(), 1, 1}, std::move(why)});
    return r;
  };
  // A directory opens as a stream and reads as nothing: it would pass as an empty file.
  std::error_code ec;
  if (std::filesystem::is_directory(file, ec))
    return refused("cannot read the config file: it is a directory");
  std::ifstream in(file, std::ios::binary);
  if (!in) return refused("cannot read the config file");
  std::stringstream ss;
  ss << in.rdbuf();
  return parse(ss.str(), file);
}

std::vector<KeyInfo> key_reference() {
  std::vector<KeyInfo> out;
  auto add = [&](const auto& keys) {
    for (const auto& k : keys)
      out.push_back(k.info);
  };
  add(proxy_keys());
  add(client_tls_keys());
  add(server_tls_keys());
  add(auth_keys());
  add(pool_keys());
  add(database_keys());
  add(log_keys());
  add(audit_keys());
  add(access_keys());
  add(peer_keys());
  return out;
}

std::string key_reference_markdown() {
  // A '|' inside a cell would end it.
  auto cell = [](std::string_view text) {
    std::string out;
    for (char c : text) {
      if (c == '|') out += '\\';
      out += c;
    }
    return out;
  };
  std::ostringstream s;
  s << "| key | type | default | reload | description |\n|---|---|---|---|---|\n";
  for (const auto& k : key_reference()) {
    s << "| `" << k.section << "." << k.name << "` | " << k.type << " | `" << k.default_value << "` | "
      << (k.reloadable ? "yes" : "restart") << " | " << cell(k.description)
      << (k.supported ? "" : " (not supported yet: only its off value is accepted)") << " |\n";
  }
  return s.str();
}

}  // namespace pgw::config
