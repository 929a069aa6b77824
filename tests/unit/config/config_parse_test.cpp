// Unit tests of config parsing for valid files: values, defaults, paths, positions and load().
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

#include "pgw/config/auth_file.hpp"
#include "pgw/config/config.hpp"

namespace pgw::config {
namespace {

using namespace std::chrono_literals;

std::vector<std::string> messages(const LoadResult& r) {
  std::vector<std::string> out;
  for (const auto& d : r.diagnostics)
    out.push_back(d.to_string());
  return out;
}

// Every supported key, none at its default; line numbers are checked by the position tests below.
constexpr std::string_view full_config =
    R"toml(# pgwarden test config: every supported key, none at its default
[proxy]
listen = ["127.0.0.1:6432", "[::1]:6433", "db-proxy.internal:7000"]
workers = 4
max_client_conn = 5000
shutdown_timeout = "45s"
admin_users = []
metrics_listen = ""
proxy_protocol_from = []
max_packet_size = "64MB"
client_login_timeout = "20s"

[client_tls]
mode = "verify-full"
cert = "tls/server.crt"
key = "tls/server.key"
ca = "/etc/ssl/clients-ca.crt"
min_version = "TLSv1.3"
ciphers = "ECDHE+AESGCM"
ciphersuites = "TLS_AES_256_GCM_SHA384"

[server_tls]
mode = "verify-ca"
ca = "root.crt"
cert = "/var/lib/pgw/client.crt"
key = "client.key"
min_version = "TLSv1.3"
ciphers = "HIGH"
ciphersuites = "TLS_CHACHA20_POLY1305_SHA256"

[auth]
type = "scram-sha-256"
file = "userlist.txt"
query = ""
query_user = ""

[pool]
mode = "session"
default_size = 30
min_size = 2
reserve_size = 5
reserve_timeout = "3s"
max_db_connections = 100
max_user_connections = 50
server_lifetime = "2h"
server_idle_timeout = "5m"
server_connect_timeout = "10s"
query_wait_timeout = "60s"
client_idle_timeout = "1d"
idle_transaction_timeout = "500ms"
server_reset_query = "RESET ALL"
max_prepared_statements = 100

[[database]]
name = "jhe_production"
host = "10.0.0.5"
port = 6543
dbname = "jhe"
user = "jheuser"
password = "s3cret"
pool_size = 7
server_connect_timeout = "2s"

[[database]]
name = "reports"

[log]
level = "debug"
format = "json"

[audit]
enabled = false
)toml";

// The smallest valid file: everything else is at its default.
constexpr std::string_view minimal_config = R"toml([client_tls]
mode = "disable"
[server_tls]
mode = "disable"
[auth]
file = "userlist.txt"
[pool]
mode = "session"
[[database]]
name = "app"
)toml";

Config parse_ok(std::string_view text, const std::filesystem::path& file = "cfg.toml") {
  LoadResult r = parse(text, file);
  EXPECT_EQ(messages(r), std::vector<std::string>{});
  EXPECT_TRUE(r.config.has_value());
  return r.config ? *r.config : Config{};
}

void expect_pool_eq(const PoolSettings& a, const PoolSettings& b) {
  EXPECT_EQ(a.mode, b.mode);
  EXPECT_EQ(a.default_size, b.default_size);
  EXPECT_EQ(a.min_size, b.min_size);
  EXPECT_EQ(a.reserve_size, b.reserve_size);
  EXPECT_EQ(a.reserve_timeout, b.reserve_timeout);
  EXPECT_EQ(a.max_db_connections, b.max_db_connections);
  EXPECT_EQ(a.max_user_connections, b.max_user_connections);
  EXPECT_EQ(a.server_lifetime, b.server_lifetime);
  EXPECT_EQ(a.server_idle_timeout, b.server_idle_timeout);
  EXPECT_EQ(a.server_connect_timeout, b.server_connect_timeout);
  EXPECT_EQ(a.query_wait_timeout, b.query_wait_timeout);
  EXPECT_EQ(a.client_idle_timeout, b.client_idle_timeout);
  EXPECT_EQ(a.idle_transaction_timeout, b.idle_transaction_timeout);
  EXPECT_EQ(a.server_reset_query, b.server_reset_query);
  EXPECT_EQ(a.max_prepared_statements, b.max_prepared_statements);
}

TEST(ConfigParse, FullConfigEveryValueLands) {
  const Config c = parse_ok(full_config, "/etc/pgwarden/pgwarden.toml");
  EXPECT_EQ(c.path, std::filesystem::path("/etc/pgwarden/pgwarden.toml"));

  ASSERT_EQ(c.proxy.listen.size(), 3u);
  EXPECT_EQ(c.proxy.listen[0].host, "127.0.0.1");
  EXPECT_EQ(c.proxy.listen[0].port, 6432);
  EXPECT_EQ(c.proxy.listen[1].host, "::1");
  EXPECT_EQ(c.proxy.listen[1].port, 6433);
  EXPECT_EQ(c.proxy.listen[1].to_string(), "[::1]:6433");
  EXPECT_EQ(c.proxy.listen[2].host, "db-proxy.internal");
  EXPECT_EQ(c.proxy.listen[2].port, 7000);
  EXPECT_EQ(c.proxy.listen[2].to_string(), "db-proxy.internal:7000");
  EXPECT_EQ(c.proxy.workers, 4u);
  EXPECT_EQ(c.proxy.max_client_conn, 5000u);
  EXPECT_EQ(c.proxy.shutdown_timeout, 45s);
  EXPECT_TRUE(c.proxy.admin_users.empty());
  EXPECT_EQ(c.proxy.metrics_listen, "");
  EXPECT_TRUE(c.proxy.proxy_protocol_from.empty());
  EXPECT_EQ(c.proxy.max_packet_size, 64u << 20);
  EXPECT_EQ(c.proxy.client_login_timeout, 20s);

  EXPECT_EQ(c.client_tls.mode, TlsMode::verify_full);
  EXPECT_EQ(c.client_tls.cert, std::filesystem::path("/etc/pgwarden/tls/server.crt"));
  EXPECT_EQ(c.client_tls.key, std::filesystem::path("/etc/pgwarden/tls/server.key"));
  EXPECT_EQ(c.client_tls.ca, std::filesystem::path("/etc/ssl/clients-ca.crt"));
  EXPECT_EQ(c.client_tls.min_version, "TLSv1.3");
  EXPECT_EQ(c.client_tls.ciphers, "ECDHE+AESGCM");
  EXPECT_EQ(c.client_tls.ciphersuites, "TLS_AES_256_GCM_SHA384");

  EXPECT_EQ(c.server_tls.mode, TlsMode::verify_ca);
  EXPECT_EQ(c.server_tls.ca, std::filesystem::path("/etc/pgwarden/root.crt"));
  EXPECT_EQ(c.server_tls.cert, std::filesystem::path("/var/lib/pgw/client.crt"));
  EXPECT_EQ(c.server_tls.key, std::filesystem::path("/etc/pgwarden/client.key"));
  EXPECT_EQ(c.server_tls.min_version, "TLSv1.3");
  EXPECT_EQ(c.server_tls.ciphers, "HIGH");
  EXPECT_EQ(c.server_tls.ciphersuites, "TLS_CHACHA20_POLY1305_SHA256");

  EXPECT_EQ(c.auth.type, AuthMethod::scram_sha_256);
  EXPECT_EQ(c.auth.file, std::filesystem::path("/etc/pgwarden/userlist.txt"));
  EXPECT_EQ(c.auth.query, "");
  EXPECT_EQ(c.auth.query_user, "");

  EXPECT_EQ(c.pool.mode, PoolMode::session);
  EXPECT_EQ(c.pool.default_size, 30u);
  EXPECT_EQ(c.pool.min_size, 2u);
  EXPECT_EQ(c.pool.reserve_size, 5u);
  EXPECT_EQ(c.pool.reserve_timeout, 3s);
  EXPECT_EQ(c.pool.max_db_connections, 100u);
  EXPECT_EQ(c.pool.max_user_connections, 50u);
  EXPECT_EQ(c.pool.server_lifetime, 2h);
  EXPECT_EQ(c.pool.server_idle_timeout, 5min);
  EXPECT_EQ(c.pool.server_connect_timeout, 10s);
  EXPECT_EQ(c.pool.query_wait_timeout, 60s);
  EXPECT_EQ(c.pool.client_idle_timeout, 24h);
  EXPECT_EQ(c.pool.idle_transaction_timeout, 500ms);
  EXPECT_EQ(c.pool.server_reset_query, "RESET ALL");
  EXPECT_EQ(c.pool.max_prepared_statements, 100u);

  ASSERT_EQ(c.databases.size(), 2u);
  const DatabaseSettings& prod = c.databases[0];
  EXPECT_EQ(prod.name, "jhe_production");
  EXPECT_EQ(prod.host, "10.0.0.5");
  EXPECT_EQ(prod.port, 6543);
  EXPECT_EQ(prod.dbname, "jhe");
  EXPECT_EQ(prod.user, "jheuser");
  EXPECT_EQ(prod.password, "s3cret");
  // Overrides apply to this database only; everything else is inherited from [pool].
  EXPECT_EQ(prod.pool.default_size, 7u);
  EXPECT_EQ(prod.pool.server_connect_timeout, 2s);
  PoolSettings expected = c.pool;
  expected.default_size = 7;
  expected.server_connect_timeout = 2s;
  expect_pool_eq(prod.pool, expected);

  const DatabaseSettings& reports = c.databases[1];
  EXPECT_EQ(reports.name, "reports");
  EXPECT_EQ(reports.host, "127.0.0.1");
  EXPECT_EQ(reports.port, 5432);
  EXPECT_EQ(reports.dbname, "reports");
  EXPECT_EQ(reports.user, "");
  EXPECT_EQ(reports.password, "");
  expect_pool_eq(reports.pool, c.pool);

  EXPECT_EQ(c.log.level, LogLevel::debug);
  EXPECT_EQ(c.log.format, LogFormat::json);
}

TEST(ConfigParse, StructDefaultsAreTheDocumentedOnes) {
  // The values the SPEC and config.hpp document, written out so that a changed default is noticed.
  EXPECT_EQ(ClientTlsSettings{}.mode, TlsMode::require);
  EXPECT_EQ(ServerTlsSettings{}.mode, TlsMode::verify_full);
  EXPECT_EQ(PoolSettings{}.mode, PoolMode::transaction);
  EXPECT_EQ(AuthSettings{}.type, AuthMethod::scram_sha_256);
  EXPECT_TRUE(AuthSettings{}.file.empty());
}

TEST(ConfigParse, AbsentKeysKeepTheirDefaults) {
  const Config c = parse_ok(minimal_config);
  ASSERT_EQ(c.proxy.listen.size(), 1u);
  EXPECT_EQ(c.proxy.listen[0].host, "127.0.0.1");
  EXPECT_EQ(c.proxy.listen[0].port, 6432);
  EXPECT_EQ(c.proxy.workers, 0u);
  EXPECT_EQ(c.proxy.max_client_conn, 1000u);
  EXPECT_EQ(c.proxy.shutdown_timeout, 30s);
  EXPECT_TRUE(c.proxy.admin_users.empty());
  EXPECT_EQ(c.proxy.metrics_listen, "");
  EXPECT_TRUE(c.proxy.proxy_protocol_from.empty());
  EXPECT_EQ(c.proxy.max_packet_size, 256u << 20);
  EXPECT_EQ(c.proxy.client_login_timeout, 60s);

  EXPECT_EQ(c.client_tls.mode, TlsMode::disable);
  EXPECT_TRUE(c.client_tls.cert.empty());
  EXPECT_TRUE(c.client_tls.key.empty());
  EXPECT_TRUE(c.client_tls.ca.empty());
  EXPECT_EQ(c.client_tls.min_version, "TLSv1.2");
  EXPECT_EQ(c.client_tls.ciphers, "HIGH:!aNULL:!MD5");
  EXPECT_EQ(c.client_tls.ciphersuites, "");

  EXPECT_EQ(c.server_tls.mode, TlsMode::disable);
  EXPECT_TRUE(c.server_tls.ca.empty());
  EXPECT_TRUE(c.server_tls.cert.empty());
  EXPECT_TRUE(c.server_tls.key.empty());
  EXPECT_EQ(c.server_tls.min_version, "TLSv1.2");
  EXPECT_EQ(c.server_tls.ciphers, "HIGH:!aNULL:!MD5");
  EXPECT_EQ(c.server_tls.ciphersuites, "");

  EXPECT_EQ(c.auth.type, AuthMethod::scram_sha_256);
  EXPECT_EQ(c.auth.query, "");
  EXPECT_EQ(c.auth.query_user, "");

  EXPECT_EQ(c.pool.mode, PoolMode::session);
  EXPECT_EQ(c.pool.default_size, 20u);
  EXPECT_EQ(c.pool.min_size, 0u);
  EXPECT_EQ(c.pool.reserve_size, 0u);
  EXPECT_EQ(c.pool.reserve_timeout, 5s);
  EXPECT_EQ(c.pool.max_db_connections, 0u);
  EXPECT_EQ(c.pool.max_user_connections, 0u);
  EXPECT_EQ(c.pool.server_lifetime, 1h);
  EXPECT_EQ(c.pool.server_idle_timeout, 10min);
  EXPECT_EQ(c.pool.server_connect_timeout, 15s);
  EXPECT_EQ(c.pool.query_wait_timeout, 120s);
  EXPECT_EQ(c.pool.client_idle_timeout, 0ms);
  EXPECT_EQ(c.pool.idle_transaction_timeout, 0ms);
  EXPECT_EQ(c.pool.server_reset_query, "DISCARD ALL");
  EXPECT_EQ(c.pool.max_prepared_statements, 200u);

  ASSERT_EQ(c.databases.size(), 1u);
  EXPECT_EQ(c.databases[0].name, "app");
  EXPECT_EQ(c.databases[0].host, "127.0.0.1");
  EXPECT_EQ(c.databases[0].port, 5432);
  EXPECT_EQ(c.databases[0].dbname, "app");  // dbname defaults to name
  EXPECT_EQ(c.databases[0].user, "");
  EXPECT_EQ(c.databases[0].password, "");
  expect_pool_eq(c.databases[0].pool, c.pool);

  EXPECT_EQ(c.log.level, LogLevel::info);
  EXPECT_EQ(c.log.format, LogFormat::text);
}

TEST(ConfigParse, RelativePathsResolveAgainstTheConfigDirectory) {
  constexpr std::string_view text = R"toml([client_tls]
mode = "require"
cert = "server.crt"
key = "/abs/server.key"
[server_tls]
mode = "verify-full"
ca = "../ca/root.crt"
[auth]
file = "userlist.txt"
[pool]
mode = "session"
[[database]]
name = "app"
)toml";
  const Config bare = parse_ok(text, "cfg.toml");  // no directory: the paths stay as written
  EXPECT_EQ(bare.client_tls.cert, std::filesystem::path("server.crt"));
  EXPECT_EQ(bare.client_tls.key, std::filesystem::path("/abs/server.key"));
  EXPECT_EQ(bare.server_tls.ca, std::filesystem::path("../ca/root.crt"));
  EXPECT_EQ(bare.auth.file, std::filesystem::path("userlist.txt"));

  const Config rel = parse_ok(text, "conf/cfg.toml");
  EXPECT_EQ(rel.client_tls.cert, std::filesystem::path("conf/server.crt"));
  EXPECT_EQ(rel.client_tls.key, std::filesystem::path("/abs/server.key"));
  EXPECT_EQ(rel.server_tls.ca, std::filesystem::path("conf/../ca/root.crt"));
  EXPECT_EQ(rel.auth.file, std::filesystem::path("conf/userlist.txt"));

  const Config abs = parse_ok(text, "/srv/pgw/cfg.toml");
  EXPECT_EQ(abs.client_tls.cert, std::filesystem::path("/srv/pgw/server.crt"));
  EXPECT_EQ(abs.client_tls.key, std::filesystem::path("/abs/server.key"));
  EXPECT_EQ(abs.server_tls.ca, std::filesystem::path("/srv/pgw/../ca/root.crt"));
  EXPECT_EQ(abs.auth.file, std::filesystem::path("/srv/pgw/userlist.txt"));
  // Empty paths stay empty rather than becoming the directory itself.
  EXPECT_TRUE(abs.client_tls.ca.empty());
  EXPECT_TRUE(abs.server_tls.cert.empty());
  EXPECT_TRUE(abs.server_tls.key.empty());
}

TEST(ConfigParse, SectionsMayComeInAnyOrder) {
  // [[database]] written before [pool] still inherits [pool]; inline tables are tables too.
  const Config c = parse_ok(R"toml(client_tls = { mode = "disable" }
server_tls = { mode = "disable" }
[[database]]
name = "early"
[pool]
mode = "session"
default_size = 9
[auth]
file = "u.txt"
)toml");
  ASSERT_EQ(c.databases.size(), 1u);
  EXPECT_EQ(c.databases[0].pool.default_size, 9u);
  EXPECT_EQ(c.client_tls.mode, TlsMode::disable);
}

TEST(ConfigParse, PerDatabaseOverridesUsePgBouncerOrPoolNames) {
  const Config c = parse_ok(R"toml([pool]
mode = "session"
default_size = 10
min_size = 1
[[database]]
name = "a"
pool_mode = "session"
pool_size = 3
[[database]]
name = "b"
mode = "session"
default_size = 4
min_size = 2
query_wait_timeout = "1m"
server_reset_query = ""
[[database]]
name = "c"
[client_tls]
mode = "disable"
[server_tls]
mode = "disable"
[auth]
file = "u.txt"
)toml");
  ASSERT_EQ(c.databases.size(), 3u);
  EXPECT_EQ(c.databases[0].pool.default_size, 3u);
  EXPECT_EQ(c.databases[0].pool.min_size, 1u);
  EXPECT_EQ(c.databases[0].pool.query_wait_timeout, 120s);
  EXPECT_EQ(c.databases[1].pool.default_size, 4u);
  EXPECT_EQ(c.databases[1].pool.min_size, 2u);
  EXPECT_EQ(c.databases[1].pool.query_wait_timeout, 1min);
  EXPECT_EQ(c.databases[1].pool.server_reset_query, "");
  expect_pool_eq(c.databases[2].pool, c.pool);
  EXPECT_EQ(c.pool.default_size, 10u);
  EXPECT_EQ(c.pool.min_size, 1u);
  EXPECT_EQ(c.pool.server_reset_query, "DISCARD ALL");
}

TEST(ConfigParse, PositionsOfKeysSectionsAndEntries) {
  const Config c = parse_ok(full_config, "/etc/pgwarden/pgwarden.toml");
  auto at = [&](std::string_view key) {
    Position p = c.position_of(key);
    return p.file + ":" + std::to_string(p.line) + ":" + std::to_string(p.column);
  };
  const std::string f = "/etc/pgwarden/pgwarden.toml";
  EXPECT_EQ(at("proxy"), f + ":2:1");
  EXPECT_EQ(at("proxy.workers"), f + ":4:1");
  EXPECT_EQ(at("client_tls.cert"), f + ":15:1");
  EXPECT_EQ(at("pool.mode"), f + ":38:1");
  EXPECT_EQ(at("log.format"), f + ":69:1");
  // An absent key falls back to its section.
  EXPECT_EQ(at("proxy.no_such_key"), f + ":2:1");
  EXPECT_EQ(at("client_tls.no_such_key"), f + ":13:1");
  // Database entries are numbered in file order; an absent key falls back to its entry.
  EXPECT_EQ(at("database[0]"), f + ":54:1");
  EXPECT_EQ(at("database[0].pool_size"), f + ":61:1");
  EXPECT_EQ(at("database[1]"), f + ":64:1");
  EXPECT_EQ(at("database[1].name"), f + ":65:1");
  EXPECT_EQ(at("database[1].host"), f + ":64:1");
  // Nothing known: the top of the file.
  EXPECT_EQ(at("nowhere.at_all"), f + ":1:1");
  EXPECT_EQ(at(""), f + ":1:1");
  EXPECT_EQ(at("database[7].host"), f + ":1:1");
}

TEST(ConfigParse, PositionOfAbsentSectionIsTopOfFile) {
  const Config c = parse_ok(minimal_config, "x/y.toml");
  const Position p = c.position_of("proxy.workers");
  EXPECT_EQ(p.file, "x/y.toml");
  EXPECT_EQ(p.line, 1u);
  EXPECT_EQ(p.column, 1u);
  EXPECT_EQ(c.position_of("auth.file").line, 6u);
  EXPECT_EQ(c.position_of("auth.type").line, 5u);
}

TEST(ConfigParse, FindDatabaseByClientFacingName) {
  const Config c = parse_ok(full_config);
  const DatabaseSettings* prod = c.find_database("jhe_production");
  ASSERT_NE(prod, nullptr);
  EXPECT_EQ(prod, &c.databases[0]);
  EXPECT_EQ(c.find_database("reports"), &c.databases[1]);
  EXPECT_EQ(c.find_database("jhe"), nullptr);  // the server-side dbname is not a client-facing name
  EXPECT_EQ(c.find_database("Reports"), nullptr);
  EXPECT_EQ(c.find_database("report"), nullptr);
  EXPECT_EQ(c.find_database(""), nullptr);
  EXPECT_EQ(Config{}.find_database("reports"), nullptr);
}

TEST(ConfigParse, EnumNames) {
  EXPECT_EQ(to_string(TlsMode::disable), "disable");
  EXPECT_EQ(to_string(TlsMode::allow), "allow");
  EXPECT_EQ(to_string(TlsMode::prefer), "prefer");
  EXPECT_EQ(to_string(TlsMode::require), "require");
  EXPECT_EQ(to_string(TlsMode::verify_ca), "verify-ca");
  EXPECT_EQ(to_string(TlsMode::verify_full), "verify-full");
  EXPECT_EQ(to_string(AuthMethod::scram_sha_256), "scram-sha-256");
  EXPECT_EQ(to_string(AuthMethod::md5), "md5");
  EXPECT_EQ(to_string(AuthMethod::password), "password");
  EXPECT_EQ(to_string(AuthMethod::cert), "cert");
  EXPECT_EQ(to_string(AuthMethod::trust), "trust");
  EXPECT_EQ(to_string(PoolMode::session), "session");
  EXPECT_EQ(to_string(PoolMode::transaction), "transaction");
  EXPECT_EQ(to_string(PoolMode::statement), "statement");
  ListenAddress v4;
  v4.host = "10.1.2.3";
  v4.port = 5432;
  EXPECT_EQ(v4.to_string(), "10.1.2.3:5432");
  ListenAddress v6;
  v6.host = "fe80::1";
  v6.port = 1;
  EXPECT_EQ(v6.to_string(), "[fe80::1]:1");
  Diagnostic d;
  d.where.file = "a.toml";
  d.where.line = 3;
  d.where.column = 7;
  d.message = "bad";
  EXPECT_EQ(d.to_string(), "a.toml:3:7: bad");
}

// A scratch directory per test, removed afterwards.
class ConfigFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = std::filesystem::temp_directory_path() /
           ("pgw_unit_config_" + std::to_string(::getpid()) + "_" + info->name());
    std::filesystem::remove_all(dir_);
    ASSERT_TRUE(std::filesystem::create_directories(dir_));
  }
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  std::filesystem::path write(std::string_view name, std::string_view content) {
    std::filesystem::path p = dir_ / name;
    std::ofstream out(p, std::ios::binary);
    out << content;
    return p;
  }
  std::filesystem::path dir_;
};

TEST_F(ConfigFiles, LoadMissingFileIsADiagnostic) {
  const std::filesystem::path missing = dir_ / "absent.toml";
  LoadResult r = load(missing);
  EXPECT_FALSE(r.config.has_value());
  EXPECT_EQ(messages(r), std::vector<std::string>{missing.string() + ":1:1: cannot read the config file"});
  r = load(dir_);  // a directory, not an empty config
  EXPECT_FALSE(r.config.has_value());
  EXPECT_EQ(messages(r),
            std::vector<std::string>{dir_.string() + ":1:1: cannot read the config file: it is a directory"});
}

TEST_F(ConfigFiles, LoadRealFile) {
  const std::filesystem::path file = write("pgwarden.toml", full_config);
  LoadResult r = load(file);
  ASSERT_EQ(messages(r), std::vector<std::string>{});
  ASSERT_TRUE(r.config.has_value());
  EXPECT_EQ(r.config->path, file);
  EXPECT_EQ(r.config->auth.file, dir_ / "userlist.txt");
  EXPECT_EQ(r.config->client_tls.cert, dir_ / "tls/server.crt");
  EXPECT_EQ(r.config->position_of("pool.mode").file, file.string());
  EXPECT_EQ(r.config->databases.size(), 2u);
}

TEST_F(ConfigFiles, LoadReportsErrorsWithTheFileName) {
  const std::filesystem::path file = write("bad.toml", "[proxy]\nworkers = \"many\"\n");
  LoadResult r = load(file);
  EXPECT_FALSE(r.config.has_value());
  ASSERT_FALSE(r.diagnostics.empty());
  EXPECT_EQ(r.diagnostics[0].where.file, file.string());
  bool found = false;
  for (const auto& m : messages(r)) {
    found = found || m == file.string() + ":2:11: proxy.workers: expected an integer, found string";
  }
  EXPECT_TRUE(found) << ::testing::PrintToString(messages(r));
}

TEST_F(ConfigFiles, LoadAuthFileNamedByTheConfig) {
  const std::filesystem::path file = write("pgwarden.toml", minimal_config);
  write("userlist.txt", "\"alice\" \"SCRAM-SHA-256$4096:c2FsdA==$a2V5:c2Vydg==\"\n");
  LoadResult r = load(file);
  ASSERT_TRUE(r.config.has_value());
  AuthFileResult a = load_auth_file(r.config->auth.file);
  EXPECT_TRUE(a.diagnostics.empty());
  ASSERT_EQ(a.entries.size(), 1u);
  EXPECT_EQ(a.entries[0].user, "alice");
  EXPECT_EQ(a.entries[0].where.file, (dir_ / "userlist.txt").string());
}

}  // namespace
}  // namespace pgw::config
