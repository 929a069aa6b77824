// The admin console's SET (one key changed on the running config, validated whole) and SHOW CONFIG's rows.
#include <gtest/gtest.h>

#include <algorithm>

#include "pgw/config/access.hpp"
#include "pgw/config/config.hpp"

namespace pgw::config {
namespace {

constexpr std::string_view base_text = R"toml([proxy]
max_client_conn = 100
[auth]
type = "trust"
[pool]
default_size = 5
[[database]]
name = "app"
[[access]]
address = ["127.0.0.1/32"]
method = "trust"
[audit]
enabled = false
[client_tls]
mode = "disable"
[server_tls]
mode = "disable"
)toml";

Config base() {
  auto r = parse(base_text, "/etc/pgwarden/pgwarden.toml");
  EXPECT_TRUE(r.diagnostics.empty());
  return std::move(*r.config);
}

std::string first_error(const LoadResult& r) {
  return r.diagnostics.empty() ? std::string() : r.diagnostics.front().message;
}

TEST(ConfigSet, ChangesOneKeyAndKeepsTheRest) {
  auto r = with_setting(base(), "pool.default_size", "30");
  ASSERT_TRUE(r.config) << first_error(r);
  EXPECT_EQ(r.config->pool.default_size, 30u);
  EXPECT_EQ(r.config->proxy.max_client_conn, 100u);
  ASSERT_NE(r.config->find_database("app"), nullptr);
  EXPECT_EQ(r.config->find_database("app")->pool.default_size, 30u);  // inherited by the database
  ASSERT_TRUE(r.config->access);
  EXPECT_EQ(r.config->access->size(), 1u);
  EXPECT_EQ(r.config->path, std::filesystem::path("/etc/pgwarden/pgwarden.toml"));
  // SETs stack: the next starts from this one.
  auto r2 = with_setting(*r.config, "pool.query_wait_timeout", "\"5s\"");
  ASSERT_TRUE(r2.config) << first_error(r2);
  EXPECT_EQ(r2.config->pool.default_size, 30u);
  EXPECT_EQ(r2.config->pool.query_wait_timeout, std::chrono::seconds(5));
}

TEST(ConfigSet, AddsASectionThatWasNotWritten) {
  auto r = with_setting(base(), "log.level", "'debug'");
  ASSERT_TRUE(r.config) << first_error(r);
  EXPECT_EQ(r.config->log.level, LogLevel::debug);
}

TEST(ConfigSet, PgBouncerNamesAndSecondsAreUnderstood) {
  auto r = with_setting(base(), "default_pool_size", "12");
  ASSERT_TRUE(r.config) << first_error(r);
  EXPECT_EQ(r.config->pool.default_size, 12u);
  r = with_setting(base(), "query_wait_timeout", "7");
  ASSERT_TRUE(r.config) << first_error(r);
  EXPECT_EQ(r.config->pool.query_wait_timeout, std::chrono::seconds(7));
  r = with_setting(base(), "pool_mode", "'session'");
  ASSERT_TRUE(r.config) << first_error(r);
  EXPECT_EQ(r.config->pool.mode, PoolMode::session);
  // As PgBouncer's console: names in any case, numbers and durations in quotes.
  r = with_setting(base(), "DEFAULT_POOL_SIZE", "'9'");
  ASSERT_TRUE(r.config) << first_error(r);
  EXPECT_EQ(r.config->pool.default_size, 9u);
  r = with_setting(base(), "Query_Wait_Timeout", "'8'");
  ASSERT_TRUE(r.config) << first_error(r);
  EXPECT_EQ(r.config->pool.query_wait_timeout, std::chrono::seconds(8));
}

TEST(ConfigSet, RefusesWhatItCannotApply) {
  EXPECT_EQ(first_error(with_setting(base(), "pool.nonsense", "1")), "unknown key \"pool.nonsense\"");
  EXPECT_EQ(first_error(with_setting(base(), "nonsense", "1")),
            "unknown key \"nonsense\": write it as section.name");
  EXPECT_EQ(first_error(with_setting(base(), "proxy.workers", "4")),
            "proxy.workers needs a restart: change it in the config file");
  EXPECT_EQ(first_error(with_setting(base(), "database.host", "'x'")), "unknown key \"database.host\"");
  EXPECT_EQ(first_error(with_setting(base(), "pool.default_size", "'many'")),
            "pool.default_size: expected an integer, found string");
  EXPECT_NE(first_error(with_setting(base(), "pool.default_size", "1 2")).find("invalid value"),
            std::string::npos);
  EXPECT_NE(first_error(with_setting(base(), "pool.mode", "'sometimes'")).find("pool.mode"),
            std::string::npos);
  // Cross-key validation runs as for a reload: scram-sha-256 needs an auth file or auth.query.
  EXPECT_NE(first_error(with_setting(base(), "auth.type", "'scram-sha-256'")).find("needs auth.file"),
            std::string::npos);
}

TEST(ConfigRows, ShowWrittenValuesElseDefaults) {
  auto rows = config_rows(base());
  auto find = [&](std::string_view key) {
    auto it = std::find_if(rows.begin(), rows.end(), [&](const ConfigRow& r) { return r.key == key; });
    EXPECT_NE(it, rows.end()) << key;
    return it == rows.end() ? ConfigRow{} : *it;
  };
  EXPECT_EQ(find("pool.default_size").value, "5");
  EXPECT_EQ(find("pool.default_size").default_value, "20");
  EXPECT_TRUE(find("pool.default_size").reloadable);
  EXPECT_EQ(find("pool.mode").value, "transaction");
  EXPECT_EQ(find("auth.type").value, "trust");
  EXPECT_FALSE(find("proxy.workers").reloadable);
  for (const auto& r : rows) {
    EXPECT_NE(r.key.rfind("database.", 0), 0u) << r.key;
    EXPECT_NE(r.key.rfind("access.", 0), 0u) << r.key;
  }
}

}  // namespace
}  // namespace pgw::config
