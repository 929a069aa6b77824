// Unit tests of the key reference: it covers every SPEC key, and its documented defaults are the real ones.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "pgw/config/config.hpp"

namespace pgw::config {
namespace {

// The SPEC's configuration example ("Configuration (TOML, parsed with toml++)"), its comments removed.
constexpr std::string_view spec_example = R"spec([proxy]
listen = ["127.0.0.1:6432"]
workers = 0
max_client_conn = 1000
shutdown_timeout = "30s"
admin_users = ["ops"]
metrics_listen = ""
proxy_protocol_from = []

[client_tls]
mode = "require"
cert = "server.crt"
key = "server.key"
ca = ""
min_version = "TLSv1.2"
ciphers = "HIGH:!aNULL:!MD5"
ciphersuites = ""

[server_tls]
mode = "verify-full"
ca = "root.crt"
cert = ""
key = ""
min_version = "TLSv1.2"

[auth]
type = "scram-sha-256"
file = "userlist.txt"
query = ""
query_user = ""

[pool]
mode = "transaction"
default_size = 20
min_size = 0
reserve_size = 0
reserve_timeout = "5s"
max_db_connections = 0
max_user_connections = 0
server_lifetime = "1h"
server_idle_timeout = "10m"
server_connect_timeout = "15s"
query_wait_timeout = "120s"
client_idle_timeout = "0s"
idle_transaction_timeout = "0s"
server_reset_query = "DISCARD ALL"
max_prepared_statements = 200

[[database]]
name = "jhe_production"
host = "127.0.0.1"
port = 5432
dbname = "jhe_production"
user = ""
password = ""

[[access]]
action = "allow"
database = ["jhe_production"]
user = ["jheuser"]
address = ["10.0.1.0/24", "127.0.0.1/32", "::1/128"]
tls = true
method = "scram-sha-256"

[audit]
enabled = true
instance = ""
path = "audit.jsonl"
sinks = ["file"]
statements = "mod"
parameters = "redact"
rotate_size = "100MB"
rotate_keep = 10
fsync = "batch"
hmac_key_file = ""
checkpoint_interval = "1m"
literals = "keep"
routines = false
on_failure = "block"

[log]
level = "info"
format = "text"
)spec";

// Every key the SPEC's example lists, as "section.key".
constexpr std::string_view spec_keys[] = {
    "proxy.listen",
    "proxy.workers",
    "proxy.max_client_conn",
    "proxy.shutdown_timeout",
    "proxy.admin_users",
    "proxy.metrics_listen",
    "proxy.proxy_protocol_from",
    "client_tls.mode",
    "client_tls.cert",
    "client_tls.key",
    "client_tls.ca",
    "client_tls.min_version",
    "client_tls.ciphers",
    "client_tls.ciphersuites",
    "server_tls.mode",
    "server_tls.ca",
    "server_tls.cert",
    "server_tls.key",
    "server_tls.min_version",
    "auth.type",
    "auth.file",
    "auth.query",
    "auth.query_user",
    "pool.mode",
    "pool.default_size",
    "pool.min_size",
    "pool.reserve_size",
    "pool.reserve_timeout",
    "pool.max_db_connections",
    "pool.max_user_connections",
    "pool.server_lifetime",
    "pool.server_idle_timeout",
    "pool.server_connect_timeout",
    "pool.query_wait_timeout",
    "pool.client_idle_timeout",
    "pool.idle_transaction_timeout",
    "pool.server_reset_query",
    "pool.max_prepared_statements",
    "database.name",
    "database.host",
    "database.port",
    "database.dbname",
    "database.user",
    "database.password",
    "access.action",
    "access.database",
    "access.user",
    "access.address",
    "access.tls",
    "access.method",
    "audit.enabled",
    "audit.instance",
    "audit.path",
    "audit.sinks",
    "audit.statements",
    "audit.parameters",
    "audit.rotate_size",
    "audit.rotate_keep",
    "audit.fsync",
    "audit.hmac_key_file",
    "audit.checkpoint_interval",
    "audit.literals",
    "audit.routines",
    "audit.on_failure",
    "log.level",
    "log.format",
};

// The "section.key" names written in a TOML text: "[s]" and "[[s]]" headers, then "key = ..." lines.
std::vector<std::string> keys_in(std::string_view toml) {
  std::vector<std::string> out;
  std::string section;
  std::istringstream in{std::string(toml)};
  for (std::string line; std::getline(in, line);) {
    const auto first = line.find_first_not_of(" \t");
    if (first == std::string::npos || line[first] == '#') continue;
    std::string_view t = std::string_view(line).substr(first);
    if (t.starts_with("[[")) {
      section = std::string(t.substr(2, t.find("]]") - 2));
    } else if (t.starts_with("[")) {
      section = std::string(t.substr(1, t.find(']') - 1));
    } else if (auto eq = t.find('='); eq != std::string_view::npos) {
      std::string_view key = t.substr(0, eq);
      key = key.substr(0, key.find_last_not_of(" \t") + 1);
      out.push_back(section + "." + std::string(key));
    }
  }
  return out;
}

std::set<std::string> reference_names() {
  std::set<std::string> out;
  for (const auto& k : key_reference())
    out.insert(std::string(k.section) + "." + std::string(k.name));
  return out;
}

TEST(ConfigReference, EmbeddedKeyTableMatchesEmbeddedExample) {
  const std::vector<std::string> scanned = keys_in(spec_example);
  const std::vector<std::string> table(std::begin(spec_keys), std::end(spec_keys));
  EXPECT_EQ(scanned, table);
  EXPECT_EQ(table.size(), 66u);
}

TEST(ConfigReference, EverySpecKeyIsInTheReference) {
  const std::set<std::string> names = reference_names();
  for (std::string_view key : spec_keys)
    EXPECT_TRUE(names.contains(std::string(key))) << key;
}

TEST(ConfigReference, EverySpecKeyIsInTheMarkdown) {
  const std::string md = key_reference_markdown();
  for (std::string_view key : spec_keys) {
    EXPECT_NE(md.find("| `" + std::string(key) + "` |"), std::string::npos) << key;
  }
}

TEST(ConfigReference, SpecFileKeysAreInTheReference) {
  const std::filesystem::path spec = std::filesystem::path(PGW_SOURCE_DIR) / ".." / "shared" / "SPEC.md";
  std::ifstream in(spec);
  if (!in)
    GTEST_SKIP() << spec
                 << " is not present (it lives outside the repository); the embedded key table "
                    "in EverySpecKeyIsInTheReference still covers the SPEC's keys";
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string text = ss.str();
  const auto begin = text.find("```toml\n");
  ASSERT_NE(begin, std::string::npos) << "no ```toml block in " << spec;
  const auto body = begin + 8;
  const auto end = text.find("```", body);
  ASSERT_NE(end, std::string::npos);
  const std::string block = text.substr(body, end - body);
  const std::vector<std::string> keys = keys_in(block);
  EXPECT_GE(keys.size(), 66u);
  const std::set<std::string> names = reference_names();
  for (const auto& key : keys)
    EXPECT_TRUE(names.contains(key)) << key << " is in the SPEC but not the reference";
  // And the parser knows each of them: only "not supported yet" may be said about the SPEC's own example.
  LoadResult r = parse(block, "SPEC.toml");
  for (const auto& d : r.diagnostics) {
    EXPECT_NE(d.message.find("not supported yet"), std::string::npos) << d.to_string();
  }
}

TEST(ConfigReference, SpecExampleIsAcceptedWhole) {
  LoadResult r = parse(spec_example, "pgwarden.toml");
  std::vector<std::string> got;
  for (const auto& d : r.diagnostics)
    got.push_back(d.to_string());
  // Every key of the SPEC's example is implemented: the example is refused only for its placeholder
  // problems (none of the files it names are checked by parse()).
  EXPECT_EQ(got, std::vector<std::string>{});
  EXPECT_TRUE(r.config.has_value());
}

TEST(ConfigReference, SpecExampleWithOnlySupportedSettingsIsAccepted) {
  // The example with session pooling, no admin users, no [[access]] and no [audit] is a working file.
  std::string text(spec_example);
  auto cut = [&](std::string_view from, std::string_view to) {
    const auto a = text.find(from);
    const auto b = text.find(to, a);
    ASSERT_NE(a, std::string::npos);
    ASSERT_NE(b, std::string::npos);
    text.erase(a, b - a);
  };
  cut("[[access]]", "[log]");
  text.replace(text.find("admin_users = [\"ops\"]"), 21, "admin_users = []");
  text.replace(text.find("mode = \"transaction\""), 20, "mode = \"session\"");
  LoadResult r = parse(text, "/etc/pgwarden/pgwarden.toml");
  std::vector<std::string> got;
  for (const auto& d : r.diagnostics)
    got.push_back(d.to_string());
  EXPECT_EQ(got, std::vector<std::string>{});
  ASSERT_TRUE(r.config.has_value());
  EXPECT_EQ(r.config->client_tls.cert, std::filesystem::path("/etc/pgwarden/server.crt"));
  EXPECT_EQ(r.config->server_tls.ca, std::filesystem::path("/etc/pgwarden/root.crt"));
  ASSERT_NE(r.config->find_database("jhe_production"), nullptr);
}

TEST(ConfigReference, RowsAreUniqueAndFlaggedAsThisBuildSupportsThem) {
  const std::set<std::string> unsupported_keys = {};
  std::set<std::string> seen;
  for (const auto& k : key_reference()) {
    const std::string name = std::string(k.section) + "." + std::string(k.name);
    EXPECT_TRUE(seen.insert(name).second) << name << " is listed twice";
    const bool expect_supported = !unsupported_keys.contains(name);
    EXPECT_EQ(k.supported, expect_supported) << name;
    EXPECT_FALSE(k.type.empty()) << name;
    EXPECT_FALSE(k.default_value.empty()) << name;
    EXPECT_FALSE(k.description.empty()) << name;
  }
}

TEST(ConfigReference, MarkdownHasOneRowPerKey) {
  const std::string md = key_reference_markdown();
  const std::vector<KeyInfo> rows = key_reference();
  EXPECT_TRUE(md.starts_with("| key | type | default | reload | description |\n|---|---|---|---|---|\n"));
  EXPECT_EQ(static_cast<std::size_t>(std::count(md.begin(), md.end(), '\n')), rows.size() + 2);
  for (const auto& k : rows) {
    const std::string cell = "| `" + std::string(k.section) + "." + std::string(k.name) + "` | ";
    const auto at = md.find(cell);
    ASSERT_NE(at, std::string::npos) << cell;
    const std::string row = md.substr(at, md.find('\n', at) - at);
    EXPECT_NE(row.find(std::string("`").append(k.default_value).append("`")), std::string::npos) << row;
    EXPECT_EQ(row.find("not supported yet") != std::string::npos, !k.supported) << row;
    EXPECT_NE(row.find(k.reloadable ? "| yes |" : "| restart |"), std::string::npos) << row;
  }
}

// Every value of a Config, as text, to compare two configs.
std::string describe(const Config& c) {
  std::ostringstream s;
  auto ms = [](Duration d) { return std::to_string(d.count()) + "ms"; };
  auto list = [](const std::vector<std::string>& v) {
    std::string out;
    for (const auto& e : v)
      out += e + ",";
    return out;
  };
  auto pool = [&](const PoolSettings& p) {
    return std::string(to_string(p.mode)) + " " + std::to_string(p.default_size) + " " +
           std::to_string(p.min_size) + " " + std::to_string(p.reserve_size) + " " + ms(p.reserve_timeout) +
           " " + std::to_string(p.max_db_connections) + " " + std::to_string(p.max_user_connections) + " " +
           ms(p.server_lifetime) + " " + ms(p.server_idle_timeout) + " " + ms(p.server_connect_timeout) +
           " " + ms(p.query_wait_timeout) + " " + ms(p.client_idle_timeout) + " " +
           ms(p.idle_transaction_timeout) + " [" + p.server_reset_query + "] " +
           std::to_string(p.max_prepared_statements);
  };
  s << "proxy:";
  for (const auto& l : c.proxy.listen)
    s << " " << l.to_string();
  s << " " << c.proxy.workers << " " << c.proxy.max_client_conn << " " << ms(c.proxy.shutdown_timeout) << " ["
    << list(c.proxy.admin_users) << "] [" << c.proxy.metrics_listen << "] ["
    << list(c.proxy.proxy_protocol_from) << "] " << c.proxy.max_packet_size << " "
    << ms(c.proxy.client_login_timeout) << "\n";
  s << "client_tls: " << to_string(c.client_tls.mode) << " [" << c.client_tls.cert.string() << "] ["
    << c.client_tls.key.string() << "] [" << c.client_tls.ca.string() << "] " << c.client_tls.min_version
    << " [" << c.client_tls.ciphers << "] [" << c.client_tls.ciphersuites << "]\n";
  s << "server_tls: " << to_string(c.server_tls.mode) << " [" << c.server_tls.ca.string() << "] ["
    << c.server_tls.cert.string() << "] [" << c.server_tls.key.string() << "] " << c.server_tls.min_version
    << " [" << c.server_tls.ciphers << "] [" << c.server_tls.ciphersuites << "]\n";
  s << "auth: " << to_string(c.auth.type) << " [" << c.auth.file.string() << "] [" << c.auth.query << "] ["
    << c.auth.query_user << "]\n";
  s << "pool: " << pool(c.pool) << "\n";
  for (const auto& d : c.databases) {
    s << "database: " << d.name << " " << d.host << " " << d.port << " " << d.dbname << " [" << d.user
      << "] [" << d.password << "] " << pool(d.pool) << "\n";
  }
  s << "log: " << static_cast<int>(c.log.level) << " " << static_cast<int>(c.log.format) << "\n";
  return s.str();
}

TEST(ConfigReference, DocumentedDefaultsAreTheRealOnes) {
  // What a minimal file must set (its default is checked in config_parse_test), per section.
  const std::vector<std::pair<std::string_view, std::string_view>> required = {
      {"client_tls", "mode = \"disable\"\n"}, {"server_tls", "mode = \"disable\"\n"},
      {"auth", "file = \"userlist.txt\"\n"},  {"pool", "mode = \"session\"\n"},
      {"database", "name = \"app\"\n"},
  };
  const std::vector<KeyInfo> rows = key_reference();
  std::string implicit, explicit_text;
  for (std::string_view section : {"proxy", "client_tls", "server_tls", "auth", "pool", "database", "log"}) {
    const std::string header =
        section == "database" ? "[[database]]\n" : std::string("[").append(section).append("]\n");
    implicit += header;
    explicit_text += header;
    for (const auto& [s, line] : required) {
      if (s == section) {
        implicit += line;
        explicit_text += line;
      }
    }
    for (const auto& k : rows) {
      if (k.section != section) continue;
      const std::string set_line = std::string(k.name) + " = ";
      bool set_by_required = false;
      for (const auto& [s, line] : required)
        set_by_required = set_by_required || (s == section && line.starts_with(set_line));
      // database.dbname's default is "the name", which is not a TOML value.
      if (set_by_required || (section == "database" && k.name == "dbname")) continue;
      explicit_text += set_line + std::string(k.default_value) + "\n";
    }
  }
  LoadResult a = parse(implicit, "cfg.toml");
  LoadResult b = parse(explicit_text, "cfg.toml");
  for (const auto& d : b.diagnostics)
    ADD_FAILURE() << d.to_string() << "\n" << explicit_text;
  ASSERT_TRUE(a.config.has_value()) << implicit;
  ASSERT_TRUE(b.config.has_value());
  EXPECT_EQ(describe(*a.config), describe(*b.config)) << explicit_text;
  // The modes a minimal file must override have documented defaults too.
  const std::vector<std::pair<std::string, std::string_view>> documented = {
      {"client_tls.mode", "\"require\""}, {"server_tls.mode", "\"verify-full\""},
      {"pool.mode", "\"transaction\""},   {"auth.file", "\"\""},
      {"database.dbname", "name"},
  };
  for (const auto& [name, value] : documented) {
    auto row = std::find_if(rows.begin(), rows.end(), [&](const KeyInfo& k) {
      return std::string(k.section) + "." + std::string(k.name) == name;
    });
    ASSERT_NE(row, rows.end()) << name;
    EXPECT_EQ(row->default_value, value) << name;
  }
}

}  // namespace
}  // namespace pgw::config
