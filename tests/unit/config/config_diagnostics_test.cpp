// Unit tests of config diagnostics: each error is "FILE:LINE:COL: message" at its place, in file order.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "pgw/config/access.hpp"
#include "pgw/config/config.hpp"

namespace pgw::config {
namespace {

using namespace std::chrono_literals;
using Errors = std::vector<std::string>;

// Appends, after the text under test, each section of a minimal valid file that the text does not write
// itself, so line numbers in the text under test are those of the whole file.
std::string with_base(std::string_view head) {
  struct Section {
    std::string_view header;
    std::string_view body;
  };
  static constexpr Section base[] = {
      {"[client_tls]", "mode = \"disable\"\n"}, {"[server_tls]", "mode = \"disable\"\n"},
      {"[auth]", "file = \"userlist.txt\"\n"},  {"[pool]", "mode = \"session\"\n"},
      {"[[database]]", "name = \"app\"\n"},
  };
  std::string out(head);
  for (const auto& s : base) {
    if (head.find(s.header) != std::string_view::npos) continue;
    out += "\n";
    out += s.header;
    out += "\n";
    out += s.body;
  }
  return out;
}

Errors raw_errors(std::string_view text) {
  LoadResult r = parse(text, "cfg.toml");
  Errors out;
  for (const auto& d : r.diagnostics)
    out.push_back(d.to_string());
  EXPECT_EQ(r.config.has_value(), out.empty()) << "a config is returned exactly when there is no diagnostic";
  return out;
}

Errors errors(std::string_view head) {
  return raw_errors(with_base(head));
}

Config accepted(std::string_view head) {
  LoadResult r = parse(with_base(head), "cfg.toml");
  Errors out;
  for (const auto& d : r.diagnostics)
    out.push_back(d.to_string());
  EXPECT_EQ(out, Errors{}) << with_base(head);
  return r.config ? *r.config : Config{};
}

// --- TOML syntax
// -----------------------------------------------------------------------------------------------

TEST(ConfigDiagnostics, TomlSyntaxErrorHasItsPosition) {
  Errors e = raw_errors("[proxy]\nworkers = \n");
  ASSERT_EQ(e.size(), 1u);
  EXPECT_TRUE(e[0].starts_with("cfg.toml:2:11: ")) << e[0];

  e = raw_errors("[proxy]\nworkers = 1\nworkers = 2\n");
  ASSERT_EQ(e.size(), 1u);
  EXPECT_TRUE(e[0].starts_with("cfg.toml:3:")) << e[0];
  EXPECT_NE(e[0].find("workers"), std::string::npos) << e[0];

  e = raw_errors("\n\n[auth]\nfile = \"unterminated\n");
  ASSERT_EQ(e.size(), 1u);
  EXPECT_TRUE(e[0].starts_with("cfg.toml:4:")) << e[0];

  e = raw_errors("[pool\n");
  ASSERT_EQ(e.size(), 1u);
  EXPECT_TRUE(e[0].starts_with("cfg.toml:1:")) << e[0];
}

// --- unknown sections and keys
// ---------------------------------------------------------------------------------

TEST(ConfigDiagnostics, PathsAreRelativeToTheConfigFileAndAHandoverSocketFitsSunPath) {
  LoadResult r = parse(with_base("[proxy]\nhandover_socket = \"h.sock\"\nmetrics_tls_cert = \"m.crt\"\n"
                                 "metrics_tls_key = \"m.key\"\n"),
                       "/etc/pgw/cfg.toml");
  ASSERT_TRUE(r.config);
  EXPECT_EQ(r.config->proxy.handover_socket, std::filesystem::path("/etc/pgw/h.sock"));
  EXPECT_EQ(r.config->proxy.metrics_tls_cert, std::filesystem::path("/etc/pgw/m.crt"));
  EXPECT_EQ(r.config->proxy.metrics_tls_key, std::filesystem::path("/etc/pgw/m.key"));
  const std::string dir(100, 'h');
  r = parse(with_base("[proxy]\nhandover_socket = \"" + dir + "/x.sock\"\n"), "/etc/pgw/cfg.toml");
  ASSERT_EQ(r.diagnostics.size(), 1U);
  EXPECT_EQ(r.diagnostics[0].to_string(),
            "/etc/pgw/cfg.toml:2:1: proxy.handover_socket \"/etc/pgw/" + dir +
                "/x.sock\" is 116 bytes long; a Unix socket path takes at most 107");
}

TEST(ConfigDiagnostics, UnknownSection) {
  EXPECT_EQ(errors("[proxi]\nworkers = 1\n"),
            Errors{"cfg.toml:1:2: unknown section or key 'proxi' (did you mean 'proxy'?)"});
  EXPECT_EQ(errors("[metrics]\n"), Errors{"cfg.toml:1:2: unknown section or key 'metrics'"});
  EXPECT_EQ(errors("workers = 4\n"), Errors{"cfg.toml:1:1: unknown section or key 'workers'"});
  EXPECT_EQ(errors("[[databases]]\nname = \"x\"\n"),
            Errors{"cfg.toml:1:3: unknown section or key 'databases' (did you mean 'database'?)"});
}

TEST(ConfigDiagnostics, SectionOfTheWrongShape) {
  EXPECT_EQ(errors("proxy = 5\n"), Errors{"cfg.toml:1:9: [proxy] must be a table"});
  EXPECT_EQ(errors("log = \"debug\"\n"), Errors{"cfg.toml:1:7: [log] must be a table"});
  EXPECT_EQ(errors("audit = [1]\n"), Errors{"cfg.toml:1:9: [audit] must be a table"});
  EXPECT_EQ(errors("access = 1\n"),
            Errors{"cfg.toml:1:10: access entries must be written as [[access]] tables"});
  // A single [database] table is not a list of databases.
  Errors e = raw_errors(R"toml([database]
name = "a"
[client_tls]
mode = "disable"
[server_tls]
mode = "disable"
[auth]
file = "u.txt"
[pool]
mode = "session"
)toml");
  EXPECT_EQ(
      e, (Errors{"cfg.toml:1:1: database entries must be written as [[database]] tables",
                 "cfg.toml:1:1: no [[database]] is configured: clients would have nothing to connect to"}));
}

TEST(ConfigDiagnostics, UnknownKeyInEverySection) {
  EXPECT_EQ(
      errors("[proxy]\nworkers = 2\nmax_client_con = 10\n"),
      Errors{"cfg.toml:3:1: unknown key 'max_client_con' in [proxy] (did you mean 'max_client_conn'?)"});
  EXPECT_EQ(errors("[proxy]\nfrobnicate = 1\n"), Errors{"cfg.toml:2:1: unknown key 'frobnicate' in [proxy]"});
  EXPECT_EQ(errors("[client_tls]\nmode = \"disable\"\ncipher = \"HIGH\"\n"),
            Errors{"cfg.toml:3:1: unknown key 'cipher' in [client_tls] (did you mean 'ciphers'?)"});
  EXPECT_EQ(errors("[server_tls]\nmode = \"disable\"\n  sslmode = \"require\"\n"),
            Errors{"cfg.toml:3:3: unknown key 'sslmode' in [server_tls]"});
  EXPECT_EQ(errors("[auth]\nfile = \"u.txt\"\nfiel = \"u.txt\"\n"),
            Errors{"cfg.toml:3:1: unknown key 'fiel' in [auth] (did you mean 'file'?)"});
  EXPECT_EQ(errors("[pool]\nmode = \"session\"\ndefault_sise = 3\n"),
            Errors{"cfg.toml:3:1: unknown key 'default_sise' in [pool] (did you mean 'default_size'?)"});
  EXPECT_EQ(errors("[[database]]\nname = \"a\"\npool_sise = 3\n"),
            Errors{"cfg.toml:3:1: unknown key 'pool_sise' in [database] (did you mean 'pool_size'?)"});
  EXPECT_EQ(errors("[[database]]\nname = \"a\"\nhots = \"h\"\n"),
            Errors{"cfg.toml:3:1: unknown key 'hots' in [database] (did you mean 'host'?)"});
  EXPECT_EQ(errors("[log]\nlevel = \"info\"\nlevle = \"info\"\n"),
            Errors{"cfg.toml:3:1: unknown key 'levle' in [log] (did you mean 'level'?)"});
  EXPECT_EQ(errors("[audit]\nenable = false\n"),
            Errors{"cfg.toml:2:1: unknown key 'enable' in [audit] (did you mean 'enabled'?)"});
  EXPECT_EQ(errors("[[access]]\nactoin = \"allow\"\n"),
            Errors{"cfg.toml:2:1: unknown key 'actoin' in [access] (did you mean 'action'?)"});
  // A sub-table inside a section is an unknown key too.
  EXPECT_EQ(errors("[proxy.tls]\nmode = 1\n"), Errors{"cfg.toml:1:8: unknown key 'tls' in [proxy]"});
}

// --- wrong types
// -----------------------------------------------------------------------------------------------

TEST(ConfigDiagnostics, WrongTypeForEachKind) {
  // string
  EXPECT_EQ(errors("[client_tls]\nmode = \"disable\"\nciphers = 1\n"),
            Errors{"cfg.toml:3:11: client_tls.ciphers: expected a string, found integer"});
  EXPECT_EQ(errors("[[database]]\nname = [\"a\"]\n"),
            (Errors{"cfg.toml:1:1: [[database]] needs a name",
                    "cfg.toml:2:8: database.name: expected a string, found array"}));
  // path
  EXPECT_EQ(errors("[auth]\nfile = 3\n"),
            (Errors{"cfg.toml:1:1: auth.type = \"scram-sha-256\" needs auth.file (the PgBouncer-format file "
                    "holding each user's secret) or auth.query",
                    "cfg.toml:2:8: auth.file: expected a path string, found integer"}));
  // integer
  EXPECT_EQ(errors("[proxy]\nworkers = \"4\"\n"),
            Errors{"cfg.toml:2:11: proxy.workers: expected an integer, found string"});
  EXPECT_EQ(errors("[proxy]\nworkers = 2.0\n"),
            Errors{"cfg.toml:2:11: proxy.workers: expected an integer, found floating-point"});
  EXPECT_EQ(errors("[[database]]\nname = \"a\"\nport = \"5432\"\n"),
            Errors{"cfg.toml:3:8: database.port: expected an integer, found string"});
  EXPECT_EQ(errors("[audit]\nenabled = \"false\"\n"),
            Errors{"cfg.toml:2:11: audit.enabled: expected true or false, found string"});
  // duration
  EXPECT_EQ(errors("[proxy]\nshutdown_timeout = 30\n"),
            Errors{"cfg.toml:2:20: proxy.shutdown_timeout: expected a duration string such as \"15s\", found "
                   "integer"});
  EXPECT_EQ(
      errors("[pool]\nmode = \"session\"\nserver_lifetime = true\n"),
      Errors{
          "cfg.toml:3:19: pool.server_lifetime: expected a duration string such as \"15s\", found boolean"});
  // size
  EXPECT_EQ(errors("[proxy]\nmax_packet_size = true\n"),
            Errors{"cfg.toml:2:19: proxy.max_packet_size: expected a size such as \"100MB\", found boolean"});
  Errors negative = errors("[proxy]\nmax_packet_size = -5\n");
  ASSERT_EQ(negative.size(), 1u);
  EXPECT_TRUE(negative[0].starts_with("cfg.toml:2:19: proxy.max_packet_size: ")) << negative[0];
  // array of strings
  EXPECT_EQ(errors("[proxy]\nlisten = \"127.0.0.1:6432\"\n"),
            Errors{"cfg.toml:2:10: proxy.listen: expected an array of \"host:port\" strings, found string"});
  EXPECT_EQ(errors("[proxy]\nlisten = [\"127.0.0.1:6432\", 6433]\n"),
            Errors{"cfg.toml:2:10: proxy.listen: expected an array of \"host:port\" strings, found array"});
  // enum
  EXPECT_EQ(
      errors("[log]\nlevel = 3\n"),
      Errors{"cfg.toml:2:9: log.level: expected a string (one of: trace, debug, info, warn, error), found "
             "integer"});
  EXPECT_EQ(errors("[log]\nformat = \"yaml\"\n"),
            Errors{"cfg.toml:2:10: log.format: invalid value \"yaml\": expected one of text, json"});
  EXPECT_EQ(
      errors("[server_tls]\nca = \"root.crt\"\nmode = \"sometimes\"\n"),
      Errors{"cfg.toml:3:8: server_tls.mode: invalid value \"sometimes\": expected one of disable, allow, "
             "prefer, require, verify-ca, verify-full"});
  // A refused value is reported once: the cross-key checks do not judge the default left in its place.
  EXPECT_EQ(
      errors("[pool]\nmode = \"Session\"\n"),
      (Errors{"cfg.toml:2:8: pool.mode: invalid value \"Session\": expected one of session, transaction, "
              "statement"}));
  EXPECT_EQ(
      errors("[auth]\nfile = \"u.txt\"\ntype = \"ldap\"\n"),
      Errors{"cfg.toml:3:8: auth.type: invalid value \"ldap\": expected one of scram-sha-256, md5, password, "
             "cert, trust"});
}

// --- integer ranges
// --------------------------------------------------------------------------------------------

TEST(ConfigDiagnostics, IntegersOutOfRange) {
  EXPECT_EQ(errors("[proxy]\nworkers = -1\n"),
            Errors{"cfg.toml:2:11: proxy.workers: value -1 is out of range [0, 1024]"});
  EXPECT_EQ(errors("[proxy]\nworkers = 1025\n"),
            Errors{"cfg.toml:2:11: proxy.workers: value 1025 is out of range [0, 1024]"});
  EXPECT_EQ(errors("[proxy]\nmax_client_conn = 0\n"),
            Errors{"cfg.toml:2:19: proxy.max_client_conn: value 0 is out of range [1, 10000000]"});
  EXPECT_EQ(errors("[pool]\nmode = \"session\"\ndefault_size = 0\n"),
            Errors{"cfg.toml:3:16: pool.default_size: value 0 is out of range [1, 1000000]"});
  EXPECT_EQ(errors("[pool]\nmode = \"session\"\nmin_size = -3\n"),
            Errors{"cfg.toml:3:12: pool.min_size: value -3 is out of range [0, 1000000]"});
  EXPECT_EQ(errors("[[database]]\nname = \"a\"\nport = 0\n"),
            Errors{"cfg.toml:3:8: database.port: value 0 is out of range [1, 65535]"});
  EXPECT_EQ(errors("[[database]]\nname = \"a\"\nport = 65536\n"),
            Errors{"cfg.toml:3:8: database.port: value 65536 is out of range [1, 65535]"});
  EXPECT_EQ(errors("[[database]]\nname = \"a\"\npool_size = 0\n"),
            Errors{"cfg.toml:3:13: database.pool_size: value 0 is out of range [1, 1000000]"});
  // The edges themselves are accepted.
  const Config c = accepted(
      "[proxy]\nworkers = 1024\nmax_client_conn = 10000000\n[[database]]\nname = \"a\"\nport = 65535\n");
  EXPECT_EQ(c.proxy.workers, 1024u);
  EXPECT_EQ(c.proxy.max_client_conn, 10'000'000u);
  EXPECT_EQ(c.databases[0].port, 65535);
}

// --- durations
// -------------------------------------------------------------------------------------------------

TEST(ConfigDiagnostics, ValidDurations) {
  EXPECT_EQ(parse_duration("500ms"), Duration(500));
  EXPECT_EQ(parse_duration("15s"), Duration(15s));
  EXPECT_EQ(parse_duration("10m"), Duration(10min));
  EXPECT_EQ(parse_duration("3min"), Duration(3min));
  EXPECT_EQ(parse_duration("1h"), Duration(1h));
  EXPECT_EQ(parse_duration("2d"), Duration(48h));
  EXPECT_EQ(parse_duration("0"), Duration(0));
  EXPECT_EQ(parse_duration("0s"), Duration(0));
  EXPECT_EQ(parse_duration("0ms"), Duration(0));
  EXPECT_EQ(parse_duration("120s"), Duration(2min));

  const Config c = accepted(R"toml([proxy]
shutdown_timeout = "500ms"
client_login_timeout = "0"
[pool]
mode = "session"
reserve_timeout = "15s"
server_idle_timeout = "10m"
server_lifetime = "1h"
query_wait_timeout = "2d"
)toml");
  EXPECT_EQ(c.proxy.shutdown_timeout, 500ms);
  EXPECT_EQ(c.proxy.client_login_timeout, 0ms);
  EXPECT_EQ(c.pool.reserve_timeout, 15s);
  EXPECT_EQ(c.pool.server_idle_timeout, 10min);
  EXPECT_EQ(c.pool.server_lifetime, 1h);
  EXPECT_EQ(c.pool.query_wait_timeout, 48h);
}

TEST(ConfigDiagnostics, InvalidDurations) {
  for (std::string_view bad : {"5x", "-1s", "", "1.5s", "5", "s", "ms", "15 s", " 15s", "15s ", "15S",
                               "1h30m", "+5s", "0x10s", "99999999999999999999s", "1000000000000d"}) {
    EXPECT_EQ(parse_duration(bad), std::nullopt) << '"' << bad << '"';
  }
  const std::string msg = ": use a number with ms, s, m, h or d, such as \"500ms\" or \"15s\"";
  EXPECT_EQ(errors("[proxy]\nshutdown_timeout = \"5x\"\n"),
            Errors{"cfg.toml:2:20: proxy.shutdown_timeout: invalid duration \"5x\"" + msg});
  EXPECT_EQ(errors("[proxy]\nshutdown_timeout = \"-1s\"\n"),
            Errors{"cfg.toml:2:20: proxy.shutdown_timeout: invalid duration \"-1s\"" + msg});
  EXPECT_EQ(errors("[proxy]\nshutdown_timeout = \"\"\n"),
            Errors{"cfg.toml:2:20: proxy.shutdown_timeout: invalid duration \"\"" + msg});
  EXPECT_EQ(errors("[pool]\nmode = \"session\"\nclient_idle_timeout = \"1.5s\"\n"),
            Errors{"cfg.toml:3:23: pool.client_idle_timeout: invalid duration \"1.5s\"" + msg});
  EXPECT_EQ(errors("[[database]]\nname = \"a\"\nserver_connect_timeout = \"15\"\n"),
            Errors{"cfg.toml:3:26: database.server_connect_timeout: invalid duration \"15\"" + msg});
}

// --- sizes
// -----------------------------------------------------------------------------------------------------

TEST(ConfigDiagnostics, Sizes) {
  EXPECT_EQ(parse_size("512"), 512u);
  EXPECT_EQ(parse_size("512B"), 512u);
  EXPECT_EQ(parse_size("0"), 0u);
  EXPECT_EQ(parse_size("64kB"), 64u << 10);
  EXPECT_EQ(parse_size("64KB"), 64u << 10);
  EXPECT_EQ(parse_size("100MB"), 100u << 20);
  EXPECT_EQ(parse_size("1GB"), std::uint64_t{1} << 30);
  // The documented limit: anything up to 2^63 bytes, nothing above.
  EXPECT_EQ(parse_size("9223372036854775808"), std::uint64_t{1} << 63);
  EXPECT_EQ(parse_size("8589934592GB"), std::uint64_t{1} << 63);
  EXPECT_EQ(parse_size("9223372036854775809"), std::nullopt);
  EXPECT_EQ(parse_size("8589934593GB"), std::nullopt);
  EXPECT_EQ(parse_size("18446744073709551616"), std::nullopt);
  for (std::string_view bad :
       {"", "MB", "1.5MB", "-1MB", "100mb", "1TB", "10 MB", " 10MB", "1GiB", "1kb", "+1"}) {
    EXPECT_EQ(parse_size(bad), std::nullopt) << '"' << bad << '"';
  }

  EXPECT_EQ(accepted("[proxy]\nmax_packet_size = \"64kB\"\n").proxy.max_packet_size, 64u << 10);
  EXPECT_EQ(accepted("[proxy]\nmax_packet_size = \"100MB\"\n").proxy.max_packet_size, 100u << 20);
  EXPECT_EQ(accepted("[proxy]\nmax_packet_size = 4096\n").proxy.max_packet_size, 4096u);
  EXPECT_EQ(accepted("[proxy]\nmax_packet_size = \"1024\"\n").proxy.max_packet_size, 1024u);
  EXPECT_EQ(
      errors("[proxy]\nmax_packet_size = \"100XB\"\n"),
      Errors{
          "cfg.toml:2:19: proxy.max_packet_size: invalid size \"100XB\": use a number with B, kB, MB or GB"});
  // max_packet_size is bounded by PostgreSQL's largest message (1 GB - 1) and a sane minimum.
  EXPECT_EQ(
      errors("[proxy]\nmax_packet_size = \"1GB\"\n"),
      Errors{
          "cfg.toml:2:19: proxy.max_packet_size: size 1073741824 is out of range [1024, 1073741823] bytes"});
  EXPECT_EQ(
      errors("[proxy]\nmax_packet_size = \"512\"\n"),
      Errors{"cfg.toml:2:19: proxy.max_packet_size: size 512 is out of range [1024, 1073741823] bytes"});
}

// --- listen addresses
// ------------------------------------------------------------------------------------------

TEST(ConfigDiagnostics, ValidListenAddresses) {
  const Config c = accepted(
      "[proxy]\nlisten = [\"127.0.0.1:6432\", \"[::1]:6432\", \"localhost:1\", \"0.0.0.0:65535\"]\n");
  ASSERT_EQ(c.proxy.listen.size(), 4u);
  EXPECT_EQ(c.proxy.listen[0].host, "127.0.0.1");
  EXPECT_EQ(c.proxy.listen[0].port, 6432);
  EXPECT_EQ(c.proxy.listen[1].host, "::1");
  EXPECT_EQ(c.proxy.listen[1].port, 6432);
  EXPECT_EQ(c.proxy.listen[2].host, "localhost");
  EXPECT_EQ(c.proxy.listen[2].port, 1);
  EXPECT_EQ(c.proxy.listen[3].port, 65535);
}

TEST(ConfigDiagnostics, InvalidListenAddresses) {
  const std::string form = R"(": expected "host:port" or "[v6-address]:port")";
  const std::string range = R"(": port must be 1-65535 and host non-empty)";
  const std::string v6 = R"(": expected "[v6-address]:port")";
  struct Case {
    std::string_view address;
    std::string suffix;
  };
  const Case cases[] = {
      {"nohost", form},
      {"::1:6432", form},
      {":5432", range},
      {"1.2.3.4:0", range},
      {"1.2.3.4:70000", range},
      {"1.2.3.4:", range},
      {"1.2.3.4:54x", range},
      {"1.2.3.4:-1", range},
      {"[]:5432", range},
      {"[::1]6432", v6},
      {"[::1]", v6},
      {"[::1:6432", v6},
      {"[::1]:", range},
      {"1.2.3.4:99999999999", range},
  };
  for (const auto& c : cases) {
    const std::string head = "[proxy]\nworkers = 1\nlisten = [\"" + std::string(c.address) + "\"]\n";
    EXPECT_EQ(errors(head), Errors{"cfg.toml:3:10: proxy.listen: invalid listen address \"" +
                                   std::string(c.address) + c.suffix})
        << c.address;
  }
  EXPECT_EQ(errors("[proxy]\nlisten = []\n"),
            Errors{"cfg.toml:2:10: proxy.listen: listen must name at least one address"});
}

// --- several errors
// --------------------------------------------------------------------------------------------

TEST(ConfigDiagnostics, AllErrorsReportedInFileOrder) {
  // Keys written in an order that is neither alphabetical nor the order sections are checked in.
  Errors e = raw_errors(R"toml([pool]
mode = "session"
server_lifetime = "forever"
default_size = "x"

[proxy]
workers = "x"
max_client_conn = "y"
listen = ["nohost"]

[auth]
file = "u.txt"

[client_tls]
mode = "disable"

[server_tls]
mode = "disable"

[[database]]
name = "a"
pool_size = 3
default_size = 4

[[database]]
host = "h"

[[access]]
action = "maybe"

[bogus]
)toml");
  EXPECT_EQ(
      e,
      (Errors{
          "cfg.toml:3:19: pool.server_lifetime: invalid duration \"forever\": use a number with ms, s, m, h "
          "or d, such as \"500ms\" or \"15s\"",
          "cfg.toml:4:16: pool.default_size: expected an integer, found string",
          "cfg.toml:7:11: proxy.workers: expected an integer, found string",
          "cfg.toml:8:19: proxy.max_client_conn: expected an integer, found string",
          "cfg.toml:9:10: proxy.listen: invalid listen address \"nohost\": expected \"host:port\" or "
          "\"[v6-address]:port\"",
          "cfg.toml:23:16: set either pool_size or default_size, not both",
          "cfg.toml:25:1: [[database]] needs a name",
          "cfg.toml:29:10: access.action: invalid value \"maybe\": expected one of allow, deny",
          "cfg.toml:31:2: unknown section or key 'bogus'",
      }));
}

TEST(ConfigDiagnostics, EmptyFileNamesEveryMissingRequirementAtTheTop) {
  EXPECT_EQ(raw_errors(""),
            (Errors{
                "cfg.toml:1:1: client_tls.mode = \"require\" needs client_tls.cert and client_tls.key (or "
                "set mode = "
                "\"disable\")",
                "cfg.toml:1:1: server_tls.mode = \"verify-full\" needs server_tls.ca to verify PostgreSQL's "
                "certificate",
                "cfg.toml:1:1: auth.type = \"scram-sha-256\" needs auth.file (the PgBouncer-format file "
                "holding each user's secret) or auth.query",
                "cfg.toml:1:1: no [[database]] is configured: clients would have nothing to connect to",
            }));
}

// --- operations keys
// ------------------------------------------------------------------------

TEST(ConfigDiagnostics, AdminUsersAndMetricsListen) {
  const Config c = accepted(
      "[proxy]\nworkers = 1\nadmin_users = [\"ops\", \"monitor\"]\n"
      "metrics_listen = \"127.0.0.1:9930\"\n");
  EXPECT_EQ(c.proxy.admin_users, (std::vector<std::string>{"ops", "monitor"}));
  EXPECT_EQ(c.proxy.metrics_listen, "127.0.0.1:9930");
  EXPECT_EQ(accepted("[proxy]\nmetrics_listen = \"[::1]:9930\"\n").proxy.metrics_listen, "[::1]:9930");
  EXPECT_TRUE(accepted("[proxy]\nmetrics_listen = \"\"\n").proxy.metrics_listen.empty());
  EXPECT_EQ(errors("[proxy]\nadmin_users = \"\"\n"),
            Errors{"cfg.toml:2:15: proxy.admin_users: expected an array of strings, found string"});
  EXPECT_EQ(errors("[proxy]\nmetrics_listen = []\n"),
            Errors{"cfg.toml:2:18: proxy.metrics_listen: expected a \"host:port\" string, found array"});
  EXPECT_EQ(errors("[proxy]\nmetrics_listen = \"9930\"\n"),
            Errors{"cfg.toml:2:18: proxy.metrics_listen: invalid listen address \"9930\": expected "
                   "\"host:port\" or \"[v6-address]:port\""});
  EXPECT_EQ(accepted("[proxy]\n\nproxy_protocol_from = [\"10.0.0.0/8\"]\n").proxy.proxy_protocol_from,
            std::vector<std::string>{"10.0.0.0/8"});
}

TEST(ConfigDiagnostics, PeersForCancelForwarding) {
  const Config c = accepted(
      "[proxy]\npeer_id = 2\n[[peer]]\nid = 1\nhost = \"10.0.0.1\"\n[[peer]]\nid = 2\nhost = \"10.0.0.2\"\n"
      "port = 7432\n");
  EXPECT_EQ(c.proxy.peer_id, 2u);
  ASSERT_EQ(c.peers.size(), 2u);
  EXPECT_EQ(c.peers[0].port, 6432);
  EXPECT_EQ(c.peers[1].host, "10.0.0.2");
  EXPECT_EQ(c.peers[1].port, 7432);
  EXPECT_EQ(errors("[[peer]]\nid = 1\nhost = \"a\"\n[[peer]]\nid = 1\nhost = \"b\"\n"),
            Errors{"cfg.toml:4:1: peer id 1 is listed twice"});
  EXPECT_EQ(errors("[[peer]]\nhost = \"a\"\n"),
            Errors{"cfg.toml:1:1: a [[peer]] needs id (1-16383) and host"});
  EXPECT_EQ(errors("[proxy]\npeer_id = 16384\n"),
            Errors{"cfg.toml:2:11: proxy.peer_id: value 16384 is out of range [0, 16383]"});
  EXPECT_EQ(errors("[[peer]]\nid = 1\nhost = \"a\"\nsecret = 1\n"),
            Errors{"cfg.toml:4:1: unknown key 'secret' in [peer]"});
}

TEST(ConfigDiagnostics, AccessRules) {
  auto c = accepted(R"toml([[access]]
action = "allow"
database = ["app"]
user = ["alice", "bob"]
address = ["10.0.1.0/24", "::1"]
tls = true
method = "cert"
[[access]]
action = "deny"
)toml");
  ASSERT_TRUE(c.access);
  ASSERT_EQ(c.access->size(), 2U);
  const AccessRule& a = (*c.access)[0];
  EXPECT_EQ(a.action, AccessAction::allow);
  EXPECT_EQ(a.databases, std::vector<std::string>{"app"});
  EXPECT_EQ(a.users, (std::vector<std::string>{"alice", "bob"}));
  ASSERT_EQ(a.addresses.size(), 2U);
  EXPECT_EQ(a.addresses[0].to_string(), "10.0.1.0/24");
  EXPECT_EQ(a.addresses[1].to_string(), "::1/128");
  EXPECT_EQ(a.tls, AccessRule::Tls::required);
  EXPECT_EQ(a.method, AuthMethod::cert);
  EXPECT_EQ(a.where.line, 1U);
  EXPECT_EQ((*c.access)[1].action, AccessAction::deny);
  EXPECT_TRUE((*c.access)[1].addresses.empty());
  EXPECT_FALSE(accepted("[proxy]\nworkers = 1\n").access) << "no [[access]]: no rules at all";

  EXPECT_EQ(errors("[[access]]\naddress = [\"10.0.0.0/33\"]\n"),
            Errors{"cfg.toml:2:11: access.address: invalid address \"10.0.0.0/33\": expected a CIDR such as "
                   "\"10.0.1.0/24\" or \"::1/128\""});
  EXPECT_EQ(
      errors("[[access]]\nmethod = \"ldap\"\n"),
      Errors{"cfg.toml:2:10: access.method: invalid value \"ldap\": expected one of scram-sha-256, md5, "
             "password, cert, trust"});
  EXPECT_EQ(
      errors("[[access]]\nmethod = \"trust\"\n"),
      Errors{"cfg.toml:1:1: an [[access]] rule with method = \"trust\" must name its addresses: trust for "
             "every address is never what a HIPAA deployment wants"});
  EXPECT_EQ(errors("[auth]\nfile = \"u.txt\"\nhba_file = \"pg_hba.conf\"\n[[access]]\naction = \"deny\"\n"),
            Errors{"cfg.toml:3:1: set either [[access]] rules or auth.hba_file, not both"});
  EXPECT_EQ(
      errors("[proxy]\nproxy_protocol_from = [\"lb.example\"]\n"),
      Errors{"cfg.toml:2:23: proxy.proxy_protocol_from: invalid address \"lb.example\": expected a CIDR "
             "such as \"10.0.0.0/8\" or \"::1/128\""});
}

TEST(ConfigDiagnostics, EveryPoolModeIsAcceptedAndOverridablePerDatabase) {
  EXPECT_EQ(accepted("[pool]\nmode = \"statement\"\n").pool.mode, PoolMode::statement);
  EXPECT_EQ(accepted("[pool]\nmode = \"session\"\n").pool.mode, PoolMode::session);
  // The default is transaction, as the guide asks.
  EXPECT_EQ(Config{}.pool.mode, PoolMode::transaction);
  // Per database, under either name; absent = inherit [pool].
  auto c = accepted(
      "[pool]\nmode = \"session\"\n[[database]]\nname = \"a\"\npool_mode = \"statement\"\n"
      "[[database]]\nname = \"b\"\n");
  ASSERT_EQ(c.databases.size(), 2U);
  EXPECT_EQ(c.databases[0].pool.mode, PoolMode::statement);
  EXPECT_EQ(c.databases[1].pool.mode, PoolMode::session);
  EXPECT_EQ(accepted("[[database]]\nname = \"a\"\n\nmode = \"transaction\"\n").databases[0].pool.mode,
            PoolMode::transaction);
  // Both spellings at once.
  EXPECT_EQ(errors("[[database]]\nname = \"a\"\npool_mode = \"session\"\nmode = \"session\"\n"),
            Errors{"cfg.toml:4:8: set either pool_mode or mode, not both"});
}

TEST(ConfigDiagnostics, EveryAuthMethodIsAccepted) {
  EXPECT_EQ(accepted("[auth]\nfile = \"u.txt\"\ntype = \"scram-sha-256\"\n").auth.type,
            AuthMethod::scram_sha_256);
  EXPECT_EQ(accepted("[auth]\nfile = \"u.txt\"\ntype = \"md5\"\n").auth.type, AuthMethod::md5);
  EXPECT_EQ(accepted("[auth]\nfile = \"u.txt\"\ntype = \"password\"\n").auth.type, AuthMethod::password);
  EXPECT_EQ(accepted("[auth]\ntype = \"trust\"\n").auth.type, AuthMethod::trust);
  EXPECT_EQ(
      accepted("[client_tls]\nmode = \"disable\"\nca = \"ca.crt\"\n[auth]\ntype = \"cert\"\n").auth.type,
      AuthMethod::cert);
  // cert needs the CA that signs client certificates.
  EXPECT_EQ(
      errors("[auth]\ntype = \"cert\"\n"),
      Errors{
          "cfg.toml:2:1: auth.type = \"cert\" needs client_tls.ca, the CA that signs client certificates"});
  // Methods that check a secret need somewhere to find it.
  EXPECT_EQ(
      errors("[auth]\ntype = \"md5\"\n"),
      Errors{"cfg.toml:1:1: auth.type = \"md5\" needs auth.file (the PgBouncer-format file holding each "
             "user's secret) or auth.query"});
}

TEST(ConfigDiagnostics, AuthQueryAndItsUser) {
  auto c = accepted(
      "[auth]\nquery = \"SELECT usename, passwd FROM pg_shadow WHERE usename=$1\"\n"
      "query_user = \"pgwarden\"\nquery_cache_ttl = \"5s\"\n");
  EXPECT_EQ(c.auth.query_user, "pgwarden");
  EXPECT_EQ(c.auth.query_cache_ttl, std::chrono::seconds(5));
  EXPECT_TRUE(c.auth.file.empty());
  EXPECT_EQ(errors("[auth]\nfile = \"u.txt\"\nquery = \"SELECT 1\"\n"),
            Errors{"cfg.toml:3:1: auth.query needs auth.query_user, the server user that runs it"});
  EXPECT_EQ(errors("[auth]\nfile = \"u.txt\"\nquery_user = \"x\"\n"),
            Errors{"cfg.toml:3:1: auth.query_user is set but auth.query is empty"});
}

TEST(ConfigDiagnostics, CertMapAndBackoff) {
  auto c = accepted(
      "[auth]\nfile = \"u.txt\"\n[auth.cert_map]\n\"app.example.org\" = \"app\"\n"
      "ops = [\"alice\", \"bob\"]\n");
  ASSERT_EQ(c.auth.cert_map.size(), 2U);
  EXPECT_EQ(c.auth.cert_map.at("app.example.org"), std::vector<std::string>{"app"});
  EXPECT_EQ(c.auth.cert_map.at("ops"), (std::vector<std::string>{"alice", "bob"}));
  EXPECT_EQ(
      errors("[auth]\nfile = \"u.txt\"\n[auth.cert_map]\nops = 3\n"),
      Errors{"cfg.toml:3:1: auth.cert_map: expected a table of certificate CN = \"user\" or [\"user\", ...], "
             "found integer"});
  auto d = Config{}.auth;
  EXPECT_EQ(d.backoff_after_failures, 5U) << "on by default";
  c = accepted("[auth]\nfile = \"u.txt\"\nbackoff_after_failures = 0\n");
  EXPECT_EQ(c.auth.backoff_after_failures, 0U);
  EXPECT_EQ(errors("[auth]\nfile = \"u.txt\"\nbackoff_initial = \"10s\"\nbackoff_max = \"1s\"\n"),
            Errors{"cfg.toml:3:1: auth.backoff_initial must be above 0 and at most auth.backoff_max"});
}

// --- validation
// ------------------------------------------------------------------------------------------------

TEST(ConfigDiagnostics, ClientTlsNeedsCertificateAndKey) {
  const std::string needs = " needs client_tls.cert and client_tls.key (or set mode = \"disable\")";
  for (std::string_view mode : {"allow", "prefer", "require"}) {
    EXPECT_EQ(errors("[client_tls]\n\nmode = \"" + std::string(mode) + "\"\n"),
              Errors{"cfg.toml:3:1: client_tls.mode = \"" + std::string(mode) + "\"" + needs});
  }
  EXPECT_EQ(errors("[client_tls]\nmode = \"require\"\ncert = \"s.crt\"\n"),
            Errors{"cfg.toml:2:1: client_tls.mode = \"require\"" + needs});
  EXPECT_EQ(errors("[client_tls]\nkey = \"s.key\"\nmode = \"require\"\n"),
            Errors{"cfg.toml:3:1: client_tls.mode = \"require\"" + needs});
  // mode absent: the default (require) is reported at the section.
  EXPECT_EQ(errors("[proxy]\nworkers = 1\n[client_tls]\ncert = \"s.crt\"\n"),
            Errors{"cfg.toml:3:1: client_tls.mode = \"require\"" + needs});
  EXPECT_EQ(accepted("[client_tls]\nmode = \"require\"\ncert = \"s.crt\"\nkey = \"s.key\"\n").client_tls.mode,
            TlsMode::require);
  EXPECT_EQ(accepted("[client_tls]\nmode = \"disable\"\n").client_tls.mode, TlsMode::disable);
}

TEST(ConfigDiagnostics, VerifyModesNeedACertificateAuthority) {
  for (std::string_view mode : {"verify-ca", "verify-full"}) {
    const std::string m(mode);
    EXPECT_EQ(errors("[client_tls]\ncert = \"s.crt\"\nkey = \"s.key\"\nmode = \"" + m + "\"\n"),
              Errors{"cfg.toml:4:1: client_tls.mode = \"" + m +
                     "\" needs client_tls.ca, the CA that signs client certificates"});
    EXPECT_EQ(errors("[client_tls]\nmode = \"" + m + "\"\n"),
              (Errors{"cfg.toml:2:1: client_tls.mode = \"" + m +
                          "\" needs client_tls.cert and client_tls.key (or set mode = \"disable\")",
                      "cfg.toml:2:1: client_tls.mode = \"" + m +
                          "\" needs client_tls.ca, the CA that signs client certificates"}));
    EXPECT_EQ(errors("[server_tls]\nmode = \"" + m + "\"\n"),
              Errors{"cfg.toml:2:1: server_tls.mode = \"" + m +
                     "\" needs server_tls.ca to verify PostgreSQL's certificate"});
    accepted("[client_tls]\ncert = \"s.crt\"\nkey = \"s.key\"\nca = \"ca.crt\"\nmode = \"" + m + "\"\n");
    accepted("[server_tls]\nmode = \"" + m + "\"\nca = \"root.crt\"\n");
  }
  // Modes that do not verify need no CA.
  for (std::string_view mode : {"disable", "allow", "prefer", "require"}) {
    accepted("[server_tls]\nmode = \"" + std::string(mode) + "\"\n");
  }
  // No [server_tls] at all: the default verify-full needs a CA, reported at the top of the file.
  EXPECT_EQ(
      raw_errors("[client_tls]\nmode = \"disable\"\n[auth]\nfile = \"u\"\n[pool]\nmode = \"session\"\n"
                 "[[database]]\nname = \"a\"\n"),
      Errors{"cfg.toml:1:1: server_tls.mode = \"verify-full\" needs server_tls.ca to verify PostgreSQL's "
             "certificate"});
}

TEST(ConfigDiagnostics, ServerTlsCertificateAndKeyGoTogether) {
  EXPECT_EQ(errors("[server_tls]\nmode = \"require\"\ncert = \"c.crt\"\n"),
            Errors{"cfg.toml:3:1: server_tls.cert and server_tls.key must be set together"});
  EXPECT_EQ(errors("[server_tls]\nmode = \"require\"\n\nkey = \"c.key\"\n"),
            Errors{"cfg.toml:4:1: server_tls.cert and server_tls.key must be set together"});
  const Config c = accepted("[server_tls]\nmode = \"require\"\ncert = \"c.crt\"\nkey = \"c.key\"\n");
  EXPECT_EQ(c.server_tls.cert, std::filesystem::path("c.crt"));
}

TEST(ConfigDiagnostics, OldTlsVersionsRefused) {
  const std::string refused = "\": use \"TLSv1.2\" or \"TLSv1.3\" (older versions are refused)";
  EXPECT_EQ(errors("[client_tls]\nmode = \"disable\"\nmin_version = \"TLSv1.1\"\n"),
            Errors{"cfg.toml:3:1: client_tls.min_version = \"TLSv1.1" + refused});
  EXPECT_EQ(errors("[server_tls]\nmode = \"disable\"\nmin_version = \"TLSv1\"\n"),
            Errors{"cfg.toml:3:1: server_tls.min_version = \"TLSv1" + refused});
  EXPECT_EQ(errors("[server_tls]\nmode = \"disable\"\nmin_version = \"\"\n"),
            Errors{"cfg.toml:3:1: server_tls.min_version = \"" + refused});
  EXPECT_EQ(errors("[client_tls]\nmode = \"disable\"\nmin_version = \"tlsv1.2\"\n"),
            Errors{"cfg.toml:3:1: client_tls.min_version = \"tlsv1.2" + refused});
  const Config c = accepted(
      "[client_tls]\nmode = \"disable\"\nmin_version = \"TLSv1.3\"\n[server_tls]\n"
      "mode = \"disable\"\nmin_version = \"TLSv1.2\"\n");
  EXPECT_EQ(c.client_tls.min_version, "TLSv1.3");
  EXPECT_EQ(c.server_tls.min_version, "TLSv1.2");
}

TEST(ConfigDiagnostics, AuthFileIsRequired) {
  EXPECT_EQ(errors("[proxy]\nworkers = 1\n[auth]\ntype = \"scram-sha-256\"\n"),
            Errors{"cfg.toml:3:1: auth.type = \"scram-sha-256\" needs auth.file (the PgBouncer-format file "
                   "holding each user's secret) or auth.query"});
  EXPECT_EQ(raw_errors("[client_tls]\nmode = \"disable\"\n[server_tls]\nmode = \"disable\"\n[pool]\n"
                       "mode = \"session\"\n[[database]]\nname = \"a\"\n"),
            Errors{"cfg.toml:1:1: auth.type = \"scram-sha-256\" needs auth.file (the PgBouncer-format file "
                   "holding each user's secret) or auth.query"});
}

TEST(ConfigDiagnostics, DatabaseEntries) {
  EXPECT_EQ(
      raw_errors("[client_tls]\nmode = \"disable\"\n[server_tls]\nmode = \"disable\"\n[auth]\nfile = \"u\"\n"
                 "[pool]\nmode = \"session\"\n"),
      Errors{"cfg.toml:1:1: no [[database]] is configured: clients would have nothing to connect to"});
  EXPECT_EQ(errors("[[database]]\nname = \"app\"\n\n[[database]]\nhost = \"h\"\nname = \"app\"\n"),
            Errors{"cfg.toml:6:1: database \"app\" is configured twice"});
  EXPECT_EQ(errors("[[database]]\nname = \"a\"\n[[database]]\nhost = \"h\"\n"),
            Errors{"cfg.toml:3:1: [[database]] needs a name"});
  EXPECT_EQ(errors("[[database]]\nname = \"\"\n"), Errors{"cfg.toml:1:1: [[database]] needs a name"});
  EXPECT_EQ(errors("[[database]]\nname = \"a\"\nhost = \"\"\n"),
            Errors{"cfg.toml:3:1: database host must not be empty"});
  // Names differing only by case are different databases, as in PostgreSQL.
  EXPECT_EQ(accepted("[[database]]\nname = \"app\"\n[[database]]\nname = \"App\"\n").databases.size(), 2u);
  // dbname defaults to name; a written dbname is kept.
  const Config c = accepted("[[database]]\nname = \"a\"\n[[database]]\nname = \"b\"\ndbname = \"real_b\"\n");
  EXPECT_EQ(c.databases[0].dbname, "a");
  EXPECT_EQ(c.databases[1].dbname, "real_b");
}

TEST(ConfigDiagnostics, PerDatabasePoolOverrides) {
  const Config c = accepted(R"toml([pool]
mode = "session"
default_size = 10
server_connect_timeout = "20s"
[[database]]
name = "a"
pool_size = 3
server_connect_timeout = "1s"
[[database]]
name = "b"
default_size = 5
[[database]]
name = "c"
)toml");
  ASSERT_EQ(c.databases.size(), 3u);
  EXPECT_EQ(c.databases[0].pool.default_size, 3u);
  EXPECT_EQ(c.databases[0].pool.server_connect_timeout, 1s);
  EXPECT_EQ(c.databases[1].pool.default_size, 5u);
  EXPECT_EQ(c.databases[1].pool.server_connect_timeout, 20s);
  EXPECT_EQ(c.databases[2].pool.default_size, 10u);
  EXPECT_EQ(c.databases[2].pool.server_connect_timeout, 20s);
  EXPECT_EQ(c.pool.default_size, 10u);
  EXPECT_EQ(c.pool.server_connect_timeout, 20s);

  EXPECT_EQ(errors("[[database]]\nname = \"a\"\npool_size = 3\ndefault_size = 4\n"),
            Errors{"cfg.toml:4:16: set either pool_size or default_size, not both"});
  EXPECT_EQ(errors("[[database]]\nname = \"a\"\ndefault_size = 4\n\npool_size = 3\n"),
            Errors{"cfg.toml:3:16: set either pool_size or default_size, not both"});
}

}  // namespace
}  // namespace pgw::config
