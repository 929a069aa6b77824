// Unit tests of `pgwarden import-pgbouncer`: PgBouncer's INI dialect, every key converted or listed, and a
// TOML that pgwarden's own parser accepts.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "pgw/config/config.hpp"
#include "pgw/config/pgbouncer_import.hpp"

namespace pgw::config {
namespace {

using namespace std::chrono_literals;

struct Files {
  std::map<std::string, std::string> includes;
  std::optional<std::pair<std::string, std::string>> userlist;  // name, text
};

PgbouncerImportResult convert(std::string_view ini, const Files& files = {}) {
  PgbouncerImportOptions o;
  o.ini_name = "pgbouncer.ini";
  if (files.userlist) {
    o.userlist_name = files.userlist->first;
    o.userlist_text = files.userlist->second;
  }
  o.read_include = [includes = files.includes](const std::string& path, std::string& error) {
    auto it = includes.find(path);
    if (it == includes.end()) {
      error = "No such file or directory";
      return std::optional<std::string>();
    }
    return std::optional<std::string>(it->second);
  };
  return import_pgbouncer(ini, o);
}

std::vector<std::string> notes(const PgbouncerImportResult& r) {
  std::vector<std::string> out;
  for (const auto& n : r.notes)
    out.push_back(n.to_string());
  return out;
}

std::vector<std::string> errors(const PgbouncerImportResult& r) {
  std::vector<std::string> out;
  for (const auto& d : r.errors)
    out.push_back(d.to_string());
  return out;
}

// The note for `prefix` ("pgbouncer.ini:7: logfile"), or "" when there is none.
std::string note_for(const PgbouncerImportResult& r, std::string_view prefix) {
  for (const auto& n : notes(r)) {
    if (std::string_view(n).starts_with(prefix)) return n;
  }
  return {};
}

// The converted TOML as pgwarden reads it; the test fails on any diagnostic.
Config parsed(const PgbouncerImportResult& r) {
  EXPECT_TRUE(r.ok()) << testing::PrintToString(errors(r));
  LoadResult l = parse(r.toml, "/etc/pgwarden/pgwarden.toml");
  std::vector<std::string> problems;
  for (const auto& d : l.diagnostics)
    problems.push_back(d.to_string());
  EXPECT_EQ(problems, std::vector<std::string>{}) << r.toml;
  return l.config.value_or(Config{});
}

// Whether `needle` is in `haystack`, reading a comment broken over several "# " lines as one line.
bool contains(std::string_view haystack, std::string_view needle) {
  std::string joined;
  for (std::size_t i = 0; i < haystack.size(); ++i) {
    if (haystack.substr(i, 3) == "\n# ") {
      joined += ' ';
      i += 2;
    } else {
      joined += haystack[i];
    }
  }
  return haystack.find(needle) != std::string_view::npos || joined.find(needle) != std::string::npos;
}

// The pgbouncer.ini of the HIPAA storage guide, verbatim.
constexpr std::string_view guide_ini = R"(# pgbouncer.ini
[databases]
jhe_production = host=your-db-host.com port=5432 dbname=jhe_production

[pgbouncer]
pool_mode = transaction
max_client_conn = 100
default_pool_size = 20
client_tls_sslmode = require
server_tls_sslmode = require
)";

TEST(PgbouncerImport, GuideIni) {
  auto r = convert(guide_ini);
  Config c = parsed(r);
  EXPECT_EQ(c.pool.mode, PoolMode::transaction);
  EXPECT_EQ(c.pool.default_size, 20u);
  EXPECT_EQ(c.proxy.max_client_conn, 100u);
  ASSERT_EQ(c.proxy.listen.size(), 1u);
  EXPECT_EQ(c.proxy.listen[0].to_string(), "127.0.0.1:6432");
  EXPECT_EQ(c.client_tls.mode, TlsMode::require);
  EXPECT_EQ(c.client_tls.cert, "/etc/pgwarden/server.crt");  // placeholders, reported by --check
  EXPECT_EQ(c.client_tls.key, "/etc/pgwarden/server.key");
  EXPECT_EQ(c.server_tls.mode, TlsMode::require);
  EXPECT_EQ(c.auth.type, AuthMethod::md5);  // PgBouncer's default
  EXPECT_EQ(c.auth.file, "/etc/pgwarden/userlist.txt");
  ASSERT_EQ(c.databases.size(), 1u);
  EXPECT_EQ(c.databases[0].name, "jhe_production");
  EXPECT_EQ(c.databases[0].host, "your-db-host.com");
  EXPECT_EQ(c.databases[0].port, 5432);
  EXPECT_EQ(c.databases[0].dbname, "jhe_production");
  EXPECT_TRUE(contains(r.toml, "# TODO: pgbouncer.ini names no client_tls_cert_file")) << r.toml;
  EXPECT_TRUE(contains(r.toml, "mode = \"transaction\"")) << r.toml;
  EXPECT_TRUE(contains(r.toml, "# pool_mode (line 6)")) << r.toml;
  EXPECT_TRUE(r.toml.starts_with("# pgwarden configuration converted from pgbouncer.ini")) << r.toml;
  auto tls = note_for(r, "pgbouncer.ini:9: client_tls_sslmode:");
  EXPECT_TRUE(contains(tls, "client_tls_cert_file (placeholder server.crt)")) << tls;
  EXPECT_TRUE(contains(tls, "client_tls_key_file (placeholder server.key)")) << tls;
  EXPECT_FALSE(note_for(r, "pgbouncer.ini: listen_addr: not set").empty());
  EXPECT_FALSE(note_for(r, "pgbouncer.ini: auth_file: not set").empty());
  // Deterministic: the same input gives the same bytes.
  EXPECT_EQ(convert(guide_ini).toml, r.toml);
  EXPECT_EQ(notes(convert(guide_ini)), notes(r));
}

constexpr std::string_view minimal_db = "[databases]\napp = host=db.internal\n";

TEST(PgbouncerImport, PgbouncerDefaultsThatDifferFromPgwardensAreWritten) {
  auto r = convert(std::string("[pgbouncer]\n") + std::string(minimal_db));
  Config c = parsed(r);
  EXPECT_EQ(c.pool.mode, PoolMode::session);
  EXPECT_EQ(c.proxy.max_client_conn, 100u);
  EXPECT_EQ(c.client_tls.mode, TlsMode::disable);
  EXPECT_EQ(c.server_tls.mode, TlsMode::prefer);
  EXPECT_EQ(c.auth.type, AuthMethod::md5);
  EXPECT_TRUE(contains(r.toml, "pool_mode is not set: PgBouncer's default, session")) << r.toml;
  EXPECT_FALSE(note_for(r, "pgbouncer.ini: client_tls_sslmode: not set").empty());
}

TEST(PgbouncerImport, CommentsBlankLinesAndCrLf) {
  auto r = convert(
      "; PgBouncer comment\r\n"
      "# shell comment\r\n"
      "\r\n"
      "   ; indented comment\r\n"
      "[pgbouncer] ; comment after a header\r\n"
      "\tpool_mode\t=\ttransaction   \r\n"
      "max_client_conn=250\r\n"
      "[databases]\r\n"
      "app = host=db port=6543\r\n");
  Config c = parsed(r);
  EXPECT_EQ(c.pool.mode, PoolMode::transaction);
  EXPECT_EQ(c.proxy.max_client_conn, 250u);
  EXPECT_EQ(c.databases.at(0).port, 6543);
  EXPECT_TRUE(contains(r.toml, "# max_client_conn (line 7)")) << r.toml;
}

TEST(PgbouncerImport, CommentCharactersLaterInTheLineArePartOfTheValue) {
  // PgBouncer: "';' and '#' are not recognized as special when they appear later in the line".
  auto r = convert("[pgbouncer]\npool_mode = session ; was transaction\n");
  EXPECT_EQ(errors(r),
            std::vector<std::string>{"pgbouncer.ini:2:13: pool_mode: invalid value \"session ; was "
                                     "transaction\": expected one of session, transaction, statement"});
  EXPECT_TRUE(r.toml.empty());
  auto q = convert(std::string(minimal_db) + "[pgbouncer]\nserver_reset_query = DISCARD ALL # reset\n");
  EXPECT_EQ(parsed(q).pool.server_reset_query, "DISCARD ALL # reset");
}

TEST(PgbouncerImport, QuotedNamesAndValues) {
  auto r = convert(
      "[databases]\n"
      "\"my \"\"odd\"\" db\" = host=db1 dbname='quoted name' password='it''s a secret'\n"
      "'dotted.name' = host=db2 user=app\n"
      "[pgbouncer]\n"
      "auth_user = lookup\n"
      "auth_query = SELECT usename, passwd FROM pgbouncer.user_lookup($1)\n");
  Config c = parsed(r);
  ASSERT_EQ(c.databases.size(), 2u);
  EXPECT_EQ(c.databases[0].name, "my \"odd\" db");
  EXPECT_EQ(c.databases[0].dbname, "quoted name");
  EXPECT_EQ(c.databases[0].password, "it's a secret");
  EXPECT_EQ(c.databases[1].name, "dotted.name");
  EXPECT_EQ(c.databases[1].user, "app");
  EXPECT_EQ(c.auth.query, "SELECT usename, passwd FROM pgbouncer.user_lookup($1)");
  EXPECT_EQ(c.auth.query_user, "lookup");
}

TEST(PgbouncerImport, TomlEscapesAreWritten) {
  auto r = convert(std::string(minimal_db) +
                   "[pgbouncer]\nserver_reset_query = SELECT '\\path' AS \"x\";\tDISCARD ALL\n");
  EXPECT_EQ(parsed(r).pool.server_reset_query, "SELECT '\\path' AS \"x\";\tDISCARD ALL");
}

TEST(PgbouncerImport, DuplicatesLastOneWinsAndTheEarlierIsListed) {
  auto r = convert(
      "[pgbouncer]\n"
      "default_pool_size = 10\n"
      "default_pool_size = 30\n"
      "[databases]\n"
      "app = host=old\n"
      "app = host=new port=5433 port=5434\n"
      "[pgbouncer]\n"
      "default_pool_size = 40\n");
  Config c = parsed(r);
  EXPECT_EQ(c.pool.default_size, 40u);
  ASSERT_EQ(c.databases.size(), 1u);
  EXPECT_EQ(c.databases[0].host, "new");
  EXPECT_EQ(c.databases[0].port, 5434);
  EXPECT_EQ(
      note_for(r, "pgbouncer.ini:2:"),
      "pgbouncer.ini:2: default_pool_size: set again at line 3: PgBouncer uses the last value, and so does "
      "the import");
  EXPECT_FALSE(note_for(r, "pgbouncer.ini:3: default_pool_size: set again at line 8").empty());
  EXPECT_FALSE(note_for(r, "pgbouncer.ini:5: [databases] app: set again at line 6").empty());
  EXPECT_FALSE(note_for(r, "pgbouncer.ini:6: [databases] app port: set twice").empty())
      << testing::PrintToString(notes(r));
}

TEST(PgbouncerImport, FractionalSecondsBecomeDurations) {
  auto r = convert(std::string(minimal_db) +
                   "[pgbouncer]\n"
                   "server_idle_timeout = 0.5\n"
                   "query_wait_timeout = 2.25\n"
                   "client_idle_timeout = 0.0001\n"
                   "server_lifetime = 3600.0\n"
                   "server_connect_timeout = 15\n"
                   "idle_transaction_timeout = 90\n"
                   "client_login_timeout = .75\n"
                   "reserve_pool_timeout = 3.\n");
  Config c = parsed(r);
  EXPECT_EQ(c.pool.server_idle_timeout, 500ms);
  EXPECT_EQ(c.pool.query_wait_timeout, 2250ms);
  EXPECT_EQ(c.pool.client_idle_timeout, 1ms);  // rounded up: never turned into "off"
  EXPECT_EQ(c.pool.server_lifetime, 1h);
  EXPECT_EQ(c.pool.server_connect_timeout, 15s);
  EXPECT_EQ(c.pool.idle_transaction_timeout, 90s);
  EXPECT_EQ(c.proxy.client_login_timeout, 750ms);
  EXPECT_EQ(c.pool.reserve_timeout, 3s);
  EXPECT_TRUE(contains(r.toml, "server_lifetime = \"1h\"")) << r.toml;
  EXPECT_TRUE(contains(r.toml, "idle_transaction_timeout = \"90s\"")) << r.toml;
  EXPECT_TRUE(contains(r.toml, "server_idle_timeout = \"500ms\"")) << r.toml;
}

TEST(PgbouncerImport, ZeroThatMeansSomethingElseInPgwardenIsListed) {
  auto r = convert(std::string(minimal_db) +
                   "[pgbouncer]\n"
                   "server_lifetime = 0\n"
                   "server_connect_timeout = 0\n"
                   "client_login_timeout = 0\n"
                   "query_wait_timeout = 0\n"
                   "reserve_pool_size = 5\n"
                   "reserve_pool_timeout = 0\n");
  Config c = parsed(r);
  EXPECT_EQ(c.pool.server_lifetime, 1h);  // pgwarden's default: PgBouncer's 0 ("use once") has no equivalent
  EXPECT_EQ(c.pool.query_wait_timeout, 0ms);  // 0 = wait forever in both
  EXPECT_EQ(c.pool.reserve_size, 0u);
  EXPECT_TRUE(
      contains(note_for(r, "pgbouncer.ini:4: server_lifetime:"), "use a server connection only once"));
  EXPECT_FALSE(note_for(r, "pgbouncer.ini:5: server_connect_timeout:").empty());
  EXPECT_FALSE(note_for(r, "pgbouncer.ini:6: client_login_timeout:").empty());
  EXPECT_FALSE(note_for(r, "pgbouncer.ini:9: reserve_pool_timeout:").empty());
}

TEST(PgbouncerImport, BadNumbersAreErrorsWithTheirColumn) {
  auto r = convert(
      "[pgbouncer]\n"
      "max_client_conn = lots\n"
      "default_pool_size = 010\n"
      "server_idle_timeout = 10s\n"
      "query_wait_timeout = -5\n"
      "listen_port = 70000\n"
      "min_pool_size = 99999999999\n"
      "max_client_conn2 = x\n"
      "[databases]\n"
      "app = host=db port=abc\n"
      "two = host=db pool_size=1e3\n");
  EXPECT_EQ(
      errors(r),
      (std::vector<std::string>{
          "pgbouncer.ini:2:19: max_client_conn: invalid value \"lots\": expected a whole number",
          "pgbouncer.ini:3:21: default_pool_size: invalid value \"010\": PgBouncer reads a number with a "
          "leading 0 as octal; write it without the 0",
          "pgbouncer.ini:4:23: server_idle_timeout: invalid value \"10s\": expected seconds, such as 15 or "
          "0.5 "
          "(PgBouncer takes no unit)",
          "pgbouncer.ini:5:22: query_wait_timeout: invalid value \"-5\": expected seconds, such as 15 or 0.5 "
          "(PgBouncer takes no unit)",
          "pgbouncer.ini:6:15: listen_port: 70000 is not a TCP port (1-65535)",
          "pgbouncer.ini:7:17: min_pool_size: invalid value \"99999999999\": expected a whole number",
          "pgbouncer.ini:10:15: [databases] app port: invalid value \"abc\": expected a whole number",
          "pgbouncer.ini:11:15: [databases] two pool_size: invalid value \"1e3\": expected a whole number",
      }));
  EXPECT_TRUE(r.toml.empty());
  EXPECT_TRUE(r.notes.empty());
}

TEST(PgbouncerImport, OutOfPgwardensRangeIsListedNotAnError) {
  auto r = convert(std::string(minimal_db) +
                   "[pgbouncer]\n"
                   "default_pool_size = 0\n"
                   "max_client_conn = 20000000\n"
                   "max_packet_size = 2147483647\n");
  Config c = parsed(r);
  EXPECT_EQ(c.pool.default_size, 20u);
  EXPECT_EQ(c.proxy.max_client_conn, 1000u);  // not converted, so not PgBouncer's 100 either
  EXPECT_EQ(c.proxy.max_packet_size, 0x3fffffffu);
  EXPECT_TRUE(contains(note_for(r, "pgbouncer.ini:4: default_pool_size:"), "outside pgwarden's range"));
  EXPECT_TRUE(contains(note_for(r, "pgbouncer.ini:5: max_client_conn:"), "outside pgwarden's range"));
  EXPECT_TRUE(contains(note_for(r, "pgbouncer.ini:6: max_packet_size:"), "1073741823 is written"));
}

TEST(PgbouncerImport, UnknownSectionsAndKeysAreListed) {
  auto r = convert(std::string(minimal_db) +
                   "[pgbouncer]\n"
                   "pool_mdoe = session\n"
                   "shutdown_timeout = 30\n"
                   "[ pgbouncer ]\n"
                   "a = 1\n"
                   "b = 2\n"
                   "[stats]\n");
  parsed(r);
  EXPECT_EQ(note_for(r, "pgbouncer.ini:4:"),
            "pgbouncer.ini:4: pool_mdoe: not a PgBouncer setting (did you mean 'pool_mode'?): not converted");
  EXPECT_EQ(note_for(r, "pgbouncer.ini:5:"),
            "pgbouncer.ini:5: shutdown_timeout: not a PgBouncer setting: not converted");
  EXPECT_EQ(note_for(r, "pgbouncer.ini:6:"),
            "pgbouncer.ini:6: [ pgbouncer ]: not a PgBouncer section (PgBouncer takes no blanks inside the "
            "brackets): its 2 keys are not converted");
  EXPECT_EQ(note_for(r, "pgbouncer.ini:9:"),
            "pgbouncer.ini:9: [stats]: not a PgBouncer section: its 0 keys are not converted");
}

TEST(PgbouncerImport, EmptyValues) {
  auto r = convert(
      "[databases]\n"
      "foodb =\n"
      "[pgbouncer]\n"
      "logfile =\n"
      "listen_addr =\n"
      "server_reset_query =\n");
  Config c = parsed(r);
  ASSERT_EQ(c.databases.size(), 1u);
  EXPECT_EQ(c.databases[0].host, "127.0.0.1");  // PgBouncer used its Unix socket
  EXPECT_EQ(c.pool.server_reset_query, "");
  EXPECT_FALSE(note_for(r, "pgbouncer.ini:2: [databases] foodb: no host").empty());
  EXPECT_FALSE(note_for(r, "pgbouncer.ini:4: logfile: pgwarden logs to stderr").empty());
  EXPECT_FALSE(note_for(r, "pgbouncer.ini:5: listen_addr: empty").empty());
  auto bad = convert("[pgbouncer]\nmax_client_conn =\n[databases]\napp = host=db password=\nb = host=\n");
  EXPECT_EQ(errors(bad),
            (std::vector<std::string>{
                "pgbouncer.ini:2:18: max_client_conn: invalid value \"\": expected a whole number",
                "pgbouncer.ini:4:24: [databases] app: password has an empty value",
                "pgbouncer.ini:5:10: [databases] b: host has an empty value",
            }));
}

TEST(PgbouncerImport, LongLines) {
  std::string query =
      "SELECT usename, passwd FROM pg_shadow WHERE usename = $1 AND " + std::string(200'000, 'x');
  std::string dbs = "[databases]\n";
  std::string params = "host=db";
  for (int i = 0; i < 2000; ++i)
    params += " dbname=d" + std::to_string(i);
  dbs += "big = " + params + "\n";
  auto r = convert(dbs + "[pgbouncer]\nauth_user = a\nauth_query = " + query + "\n");
  Config c = parsed(r);
  EXPECT_EQ(c.auth.query, query);
  EXPECT_EQ(c.databases.at(0).dbname, "d1999");
}

TEST(PgbouncerImport, IncludeReadsFilesInPlace) {
  Files f;
  f.includes["common.ini"] =
      "max_client_conn = 300\n%include  deeper.ini  \n[databases]\nfrominc = host=inc\n";
  f.includes["deeper.ini"] = "logfile = /var/log/pgbouncer.log\n";
  // The section goes on across %include, both ways, as in PgBouncer.
  auto r = convert(
      "[pgbouncer]\n%include common.ini\n[pgbouncer]\npool_mode = session\n[databases]\nmain = host=m\n", f);
  Config c = parsed(r);
  EXPECT_EQ(c.proxy.max_client_conn, 300u);
  EXPECT_EQ(c.pool.mode, PoolMode::session);
  ASSERT_EQ(c.databases.size(), 2u);
  EXPECT_EQ(c.databases[0].name, "frominc");
  EXPECT_EQ(c.databases[1].name, "main");
  EXPECT_TRUE(contains(r.toml, "(and from the files it includes: common.ini, deeper.ini)")) << r.toml;
  EXPECT_TRUE(contains(r.toml, "max_client_conn (common.ini line 1)")) << r.toml;
  EXPECT_FALSE(note_for(r, "deeper.ini:1: logfile:").empty()) << testing::PrintToString(notes(r));
}

TEST(PgbouncerImport, IncludeProblemsAreErrors) {
  Files f;
  f.includes["loop.ini"] = "%include loop.ini\n";
  f.includes["broken.ini"] = "[pgbouncer\n";
  auto r =
      convert("[pgbouncer]\n%include missing.ini\n%include loop.ini\n%include broken.ini\n%include \t\n", f);
  auto e = errors(r);
  ASSERT_EQ(e.size(), 4u) << testing::PrintToString(e);
  EXPECT_EQ(e[0], "pgbouncer.ini:2:10: cannot read the included file missing.ini: No such file or directory");
  EXPECT_EQ(e[1], "loop.ini:1:10: %include nested more than 10 deep (does a file include itself?)");
  EXPECT_EQ(e[2], "broken.ini:1:1: section header without its closing ']'");
  EXPECT_EQ(e[3], "pgbouncer.ini:5:1: %include needs a file name");
  PgbouncerImportOptions no_reader;
  no_reader.ini_name = "x.ini";
  EXPECT_EQ(import_pgbouncer("[pgbouncer]\n%include a.ini\n", no_reader).errors.size(), 1u);
}

TEST(PgbouncerImport, SyntaxErrors) {
  std::string nul = "[pgbouncer]\nlogfile = a";
  nul += '\0';
  nul += "b\n";
  auto r = convert(
      "max_client_conn = 5\n[pgbouncer]\nmax client conn = 5\npool_mode\n'unterminated = 1\n'' = 2\n"
      "[databases]\napp = host='db\n" +
      nul);
  EXPECT_EQ(errors(r),
            (std::vector<std::string>{
                "pgbouncer.ini:1:1: \"max_client_conn\" comes before any [section]",
                "pgbouncer.ini:3:5: expected '=' after the key \"max\"",
                "pgbouncer.ini:4:10: expected '=' after the key \"pool_mode\"",
                "pgbouncer.ini:5:1: quoted key without its closing quote",
                "pgbouncer.ini:6:1: empty key",
                "pgbouncer.ini:8:12: [databases] app: quoted value of host without its closing quote",
                "pgbouncer.ini:10:12: NUL byte in the file",
            }));
}

TEST(PgbouncerImport, InvalidUtf8IsAnError) {
  auto r = convert("[databases]\napp = host=db password=\xff\xfe\n");
  EXPECT_EQ(errors(r),
            std::vector<std::string>{"pgbouncer.ini:2:15: [databases] app password: the value is not "
                                     "valid UTF-8, which a TOML file cannot hold"});
  auto ok = convert("[databases]\napp = host=db password=gr\xc3\xbc\xc3\x9f\n");
  EXPECT_EQ(parsed(ok).databases.at(0).password, "gr\xc3\xbc\xc3\x9f");
}

TEST(PgbouncerImport, ListenAddresses) {
  auto r = convert(std::string(minimal_db) +
                   "[pgbouncer]\nlisten_addr = *, 10.0.0.5 ,::1, pooler.internal\n"
                   "listen_port = 6543\n");
  Config c = parsed(r);
  std::vector<std::string> got;
  for (const auto& l : c.proxy.listen)
    got.push_back(l.to_string());
  EXPECT_EQ(got, (std::vector<std::string>{"0.0.0.0:6543", "[::]:6543", "10.0.0.5:6543", "[::1]:6543",
                                           "pooler.internal:6543"}));
  EXPECT_TRUE(contains(r.toml, "# listen_addr (line 4), listen_port (line 5)")) << r.toml;
}

TEST(PgbouncerImport, TlsSettings) {
  auto r = convert(std::string(minimal_db) +
                   "[pgbouncer]\n"
                   "client_tls_sslmode = VERIFY-FULL\n"
                   "client_tls_cert_file = /etc/pgbouncer/server.crt\n"
                   "client_tls_key_file = /etc/pgbouncer/server.key\n"
                   "client_tls_ca_file = clients.crt\n"
                   "client_tls_protocols = tlsv1.3\n"
                   "client_tls_ciphers = fast\n"
                   "client_tls13_ciphers = TLS_AES_256_GCM_SHA384\n"
                   "client_tls_ecdhcurve = auto\n"
                   "server_tls_sslmode = require\n"
                   "server_tls_ca_file = root.crt\n"
                   "server_tls_protocols = tlsv1.1,tlsv1.2\n"
                   "server_tls_ciphers = ECDHE+AESGCM\n"
                   "server_tls_cert_file = client.crt\n");
  Config c = parsed(r);
  EXPECT_EQ(c.client_tls.mode, TlsMode::verify_ca);
  EXPECT_TRUE(contains(r.toml, "pgwarden's verify-full also requires its CN to equal the user name"))
      << r.toml;
  EXPECT_EQ(c.client_tls.cert, "/etc/pgbouncer/server.crt");
  EXPECT_EQ(c.client_tls.ca, "/etc/pgwarden/clients.crt");
  EXPECT_EQ(c.client_tls.min_version, "TLSv1.3");
  EXPECT_EQ(c.client_tls.ciphers, "HIGH:!aNULL:!MD5");
  EXPECT_EQ(c.client_tls.ciphersuites, "TLS_AES_256_GCM_SHA384");
  EXPECT_EQ(c.server_tls.mode, TlsMode::require);
  EXPECT_EQ(c.server_tls.min_version, "TLSv1.2");
  EXPECT_EQ(c.server_tls.ciphers, "ECDHE+AESGCM");
  EXPECT_TRUE(c.server_tls.cert.empty());
  EXPECT_TRUE(contains(r.toml, "pgwarden verifies PostgreSQL's certificate chain in \"require\" too"))
      << r.toml;
  EXPECT_FALSE(note_for(r, "pgbouncer.ini:9: client_tls_ciphers: \"fast\"").empty());
  EXPECT_FALSE(note_for(r, "pgbouncer.ini:11: client_tls_ecdhcurve:").empty());
  EXPECT_FALSE(
      note_for(r, "pgbouncer.ini:14: server_tls_protocols: pgwarden refuses TLS 1.0 and 1.1").empty());
  EXPECT_FALSE(
      note_for(r,
               "pgbouncer.ini:16: server_tls_cert_file: server_tls_cert_file and server_tls_key_file "
               "go together")
          .empty());
  auto bad = convert(std::string(minimal_db) +
                     "[pgbouncer]\nserver_tls_sslmode = verify\n"
                     "client_tls_protocols = sslv3\n");
  EXPECT_EQ(errors(bad).size(), 2u);
}

TEST(PgbouncerImport, VerifyModesWithoutCaGetPlaceholders) {
  auto r = convert(std::string(minimal_db) +
                   "[pgbouncer]\nclient_tls_sslmode = verify-ca\nserver_tls_sslmode = verify-full\n");
  Config c = parsed(r);
  EXPECT_EQ(c.client_tls.ca, "/etc/pgwarden/client-ca.crt");
  EXPECT_EQ(c.server_tls.ca, "/etc/pgwarden/root.crt");
  EXPECT_FALSE(
      note_for(r, "pgbouncer.ini:4: client_tls_sslmode: \"verify-ca\" checks client certificates").empty())
      << testing::PrintToString(notes(r));
  EXPECT_FALSE(note_for(r, "pgbouncer.ini:5: server_tls_sslmode: \"verify-full\" verifies").empty());
}

TEST(PgbouncerImport, AuthTypes) {
  auto type = [](std::string_view t) {
    return convert(std::string(minimal_db) +
                   "[pgbouncer]\nauth_file = users.txt\nauth_type = " + std::string(t) +
                   "\nauth_hba_file = hba.conf\nclient_tls_sslmode = require\nclient_tls_cert_file = s.crt\n"
                   "client_tls_key_file = s.key\n");
  };
  auto plain = type("plain");
  EXPECT_EQ(parsed(plain).auth.type, AuthMethod::password);
  EXPECT_FALSE(note_for(plain, "pgbouncer.ini:6: auth_hba_file: PgBouncer reads it only with auth_type = hba")
                   .empty());
  EXPECT_EQ(parsed(type("scram-sha-256")).auth.type, AuthMethod::scram_sha_256);
  auto trust = type("trust");
  EXPECT_EQ(parsed(trust).auth.type, AuthMethod::trust);
  EXPECT_FALSE(note_for(trust, "pgbouncer.ini:5: auth_type: pgwarden's trust lets in any user name").empty());
  auto hba = type("hba");
  Config h = parsed(hba);
  EXPECT_EQ(h.auth.hba_file, "/etc/pgwarden/hba.conf");
  EXPECT_EQ(h.auth.type, AuthMethod::scram_sha_256);
  auto cert = type("cert");
  EXPECT_EQ(parsed(cert).auth.type, AuthMethod::cert);
  EXPECT_EQ(parsed(cert).client_tls.ca, "/etc/pgwarden/client-ca.crt");
  EXPECT_FALSE(note_for(cert, "pgbouncer.ini:5: auth_type: \"cert\" checks client certificates").empty());
  for (std::string_view t : {"any", "pam", "ldap"}) {
    auto r = type(t);
    EXPECT_EQ(parsed(r).auth.type, AuthMethod::scram_sha_256);
    EXPECT_FALSE(note_for(r, "pgbouncer.ini:5: auth_type: pgwarden has no").empty()) << t;
  }
  EXPECT_EQ(errors(type("kerberos")).size(), 1u);
}

TEST(PgbouncerImport, AuthQueryNeedsAuthUser) {
  auto r = convert(std::string(minimal_db) + "[pgbouncer]\nauth_user = pgbouncer\nauth_file = u.txt\n");
  Config c = parsed(r);
  EXPECT_EQ(c.auth.query_user, "pgbouncer");
  EXPECT_EQ(c.auth.query, "SELECT usename, passwd FROM pg_shadow WHERE usename=$1");
  auto alone = convert(std::string(minimal_db) + "[pgbouncer]\nauth_query = SELECT 1\nauth_file = u.txt\n");
  EXPECT_TRUE(parsed(alone).auth.query.empty());
  EXPECT_FALSE(note_for(alone, "pgbouncer.ini:4: auth_query: PgBouncer runs auth_query only").empty());
}

TEST(PgbouncerImport, UserlistFromTheCommandLine) {
  Files f;
  f.userlist = {"/etc/pgbouncer/userlist.txt",
                "\"alice\" \"SCRAM-SHA-256$4096:c2FsdA==$c3RvcmVk:c2VydmVy\"\n"};
  auto r =
      convert(std::string(minimal_db) + "[pgbouncer]\nauth_file = other.txt\nauth_type = scram-sha-256\n", f);
  Config c = parsed(r);
  EXPECT_EQ(c.auth.file, "/etc/pgbouncer/userlist.txt");
  EXPECT_TRUE(contains(r.toml, "pgbouncer.ini names other.txt (line 4)")) << r.toml;
  f.userlist = {"userlist.txt", "\"alice\" \"pw\"\nbob secret\n"};
  auto bad = convert(std::string(minimal_db), f);
  EXPECT_EQ(errors(bad),
            std::vector<std::string>{"userlist.txt:2:1: expected a double-quoted user name: \"user\" "
                                     "\"secret\""});
}

TEST(PgbouncerImport, DatabaseParameters) {
  auto r = convert(
      "[pgbouncer]\n"
      "default_pool_size = 10\n"
      "min_pool_size = 4\n"
      "auth_user = lookup\n"
      "[databases]\n"
      "a = host=10.0.0.1 port=5433 dbname=real user=svc password=pw pool_size=5 min_pool_size=8 "
      "reserve_pool=2 "
      "max_db_connections=30 pool_mode=STATEMENT server_lifetime=600 query_wait_timeout=30\n"
      "b = host=/var/run/postgresql auth_user=other client_encoding=UTF8 connect_query='SELECT 1' "
      "max_db_client_connections=9 application_name=x target_session_attrs=any frobnicate=1 "
      "auth_user=lookup\n"
      "c = host=h1,h2 pool_size=2 server_lifetime=0 query_wait_timeout=-1\n"
      "* = host=fallback\n"
      "pgbouncer = host=x\n");
  Config c = parsed(r);
  ASSERT_EQ(c.databases.size(), 3u);
  const auto& a = c.databases[0];
  EXPECT_EQ(a.host, "10.0.0.1");
  EXPECT_EQ(a.port, 5433);
  EXPECT_EQ(a.dbname, "real");
  EXPECT_EQ(a.user, "svc");
  EXPECT_EQ(a.password, "pw");
  EXPECT_EQ(a.pool.default_size, 5u);
  EXPECT_EQ(a.pool.min_size, 5u);  // capped at the pool size, as PgBouncer does
  EXPECT_EQ(a.pool.reserve_size, 2u);
  EXPECT_EQ(a.pool.max_db_connections, 30u);
  EXPECT_EQ(a.pool.mode, PoolMode::statement);
  EXPECT_EQ(a.pool.server_lifetime, 10min);
  EXPECT_EQ(a.pool.query_wait_timeout, 30s);
  EXPECT_EQ(c.databases[1].host, "127.0.0.1");
  EXPECT_EQ(c.databases[2].host, "h1");
  EXPECT_EQ(c.databases[2].pool.min_size, 2u);  // the global 4 capped at this database's 2
  EXPECT_EQ(c.databases[2].pool.server_lifetime, 1h);
  auto n = notes(r);
  for (std::string_view expected : {
           "pgbouncer.ini:7: [databases] b host: a Unix socket",
           "pgbouncer.ini:7: [databases] b client_encoding: pgwarden sets no server parameters per database",
           "pgbouncer.ini:7: [databases] b connect_query:",
           "pgbouncer.ini:7: [databases] b max_db_client_connections:",
           "pgbouncer.ini:7: [databases] b application_name:",
           "pgbouncer.ini:7: [databases] b target_session_attrs:",
           "pgbouncer.ini:7: [databases] b frobnicate: not a [databases] parameter",
           "pgbouncer.ini:7: [databases] b auth_user: set twice",
           "pgbouncer.ini:8: [databases] c host: pgwarden connects to one host per database",
           "pgbouncer.ini:8: [databases] c server_lifetime: 0 means not set here",
           "pgbouncer.ini:8: [databases] c query_wait_timeout: -1 means not set",
           "pgbouncer.ini:9: [databases] *: pgwarden has no fallback database",
           "pgbouncer.ini:10: [databases] pgbouncer: the name is reserved",
       }) {
    EXPECT_TRUE(
        std::any_of(n.begin(), n.end(), [&](const std::string& s) { return s.starts_with(expected); }))
        << expected << "\n"
        << testing::PrintToString(n);
  }
  // auth_user=lookup (the last one) equals the global auth_user: nothing to list.
  EXPECT_TRUE(note_for(r, "pgbouncer.ini:7: [databases] b auth_user: pgwarden has one").empty());
}

TEST(PgbouncerImport, UsersAreListed) {
  auto r = convert(std::string(minimal_db) +
                   "[users]\n"
                   "alice = pool_mode=session max_user_connections=5\n"
                   "bob =\n");
  parsed(r);
  EXPECT_EQ(
      note_for(r, "pgbouncer.ini:4: [users] alice pool_mode:"),
      "pgbouncer.ini:4: [users] alice pool_mode: pgwarden sets the pool mode per database ([[database]] "
      "pool_mode), not per user: not converted");
  EXPECT_FALSE(note_for(r, "pgbouncer.ini:4: [users] alice max_user_connections:").empty());
  EXPECT_FALSE(note_for(r, "pgbouncer.ini:5: [users] bob: no settings").empty());
  auto bad = convert("[users]\nalice = pool_mode\n");
  EXPECT_EQ(errors(bad), std::vector<std::string>{"pgbouncer.ini:2:9: [users] alice: expected key=value"});
}

// How many notes are about [peers] or peer_id.
std::size_t peer_notes(const PgbouncerImportResult& r) {
  return static_cast<std::size_t>(std::count_if(r.notes.begin(), r.notes.end(), [](const ImportNote& n) {
    return n.key.starts_with("[peers]") || n.key == "peer_id";
  }));
}

TEST(PgbouncerImport, PeersBecomePeerTablesInIdOrder) {
  auto r = convert(std::string(minimal_db) +
                   "[peers]\n"
                   "3 = host=10.0.0.3 port=6433 pool_size=4\n"
                   "1 = host=/tmp/pgbouncer1\n"
                   "02 = host=peer2.internal,peer2b.internal\n"
                   "4 =\n"
                   "7 = host=peer7.internal frobnicate=1 port=6440 port=6441\n"
                   "[pgbouncer]\n"
                   "peer_id = 1\n");
  Config c = parsed(r);
  EXPECT_EQ(c.proxy.peer_id, 1u);
  ASSERT_EQ(c.peers.size(), 5u);
  std::vector<unsigned> ids;
  for (const auto& p : c.peers)
    ids.push_back(p.id);
  EXPECT_EQ(ids, (std::vector<unsigned>{1, 2, 3, 4, 7}));
  EXPECT_EQ(c.peers[0].host, "127.0.0.1");  // a Unix socket
  EXPECT_EQ(c.peers[0].port, 6432);
  EXPECT_EQ(c.peers[1].host, "peer2.internal");
  EXPECT_EQ(c.peers[2].host, "10.0.0.3");
  EXPECT_EQ(c.peers[2].port, 6433);
  EXPECT_EQ(c.peers[3].host, "127.0.0.1");  // no host=
  EXPECT_EQ(c.peers[4].host, "peer7.internal");
  EXPECT_EQ(c.peers[4].port, 6441);
  EXPECT_TRUE(contains(r.toml, "peer_id = 1  # peer_id (line 10)")) << r.toml;
  EXPECT_TRUE(
      contains(r.toml,
               "[[peer]]\n"
               "id = 1  # [peers] line 5\n"
               "# TODO: PgBouncer reached this peer over the Unix socket /tmp/pgbouncer1; pgwarden connects "
               "over TCP\n"
               "host = \"127.0.0.1\"\n"
               "port = 6432\n"))
      << r.toml;
  EXPECT_TRUE(contains(r.toml, "[[peer]]\nid = 3  # [peers] line 4\nhost = \"10.0.0.3\"\nport = 6433\n"))
      << r.toml;
  EXPECT_TRUE(contains(r.toml, "# TODO: PgBouncer reached this peer over its Unix socket (no host=)"))
      << r.toml;
  // The tables come after the databases, in id order whatever the file's order.
  EXPECT_LT(r.toml.find("[[database]]"), r.toml.find("[[peer]]"));
  EXPECT_LT(r.toml.find("id = 2 "), r.toml.find("id = 3 "));
  auto n = notes(r);
  for (std::string_view expected : {
           "pgbouncer.ini:4: [peers] 3 pool_size: pgwarden forwards only cancel requests to a peer",
           "pgbouncer.ini:5: [peers] 1 host: a Unix socket: pgwarden connects over TCP only",
           "pgbouncer.ini:6: [peers] 02 host: pgwarden sends a peer's cancel requests to one host: the "
           "first, "
           "peer2.internal, is written",
           "pgbouncer.ini:7: [peers] 4: no host: PgBouncer reached the peer over its Unix socket",
           "pgbouncer.ini:8: [peers] 7 frobnicate: not a [peers] parameter PgBouncer knows",
           "pgbouncer.ini:8: [peers] 7 port: set twice in the entry",
       }) {
    EXPECT_TRUE(
        std::any_of(n.begin(), n.end(), [&](const std::string& s) { return s.starts_with(expected); }))
        << expected << "\n"
        << testing::PrintToString(n);
  }
  EXPECT_EQ(peer_notes(r), 6u) << testing::PrintToString(n);  // peer_id is set: peering is on
  // The same [peers] converts to the same TOML, byte for byte.
  EXPECT_EQ(convert(std::string(minimal_db) + "[peers]\n"
                                              "3 = host=10.0.0.3 port=6433 pool_size=4\n"
                                              "1 = host=/tmp/pgbouncer1\n"
                                              "02 = host=peer2.internal,peer2b.internal\n"
                                              "4 =\n"
                                              "7 = host=peer7.internal frobnicate=1 port=6440 port=6441\n"
                                              "[pgbouncer]\n"
                                              "peer_id = 1\n")
                .toml,
            r.toml);
}

TEST(PgbouncerImport, PeerIdsOutsideTheRangeAreListed) {
  auto r = convert(std::string(minimal_db) +
                   "[peers]\n"
                   "0 = host=a\n"
                   "16384 = host=b\n"
                   "abc = host=c\n"
                   "99999999999 = host=d\n"
                   "1 = host=e\n"
                   "01 = host=f\n"
                   "16383 = host=g port=1\n"
                   "[pgbouncer]\n"
                   "peer_id = 16384\n");
  Config c = parsed(r);
  EXPECT_EQ(c.proxy.peer_id, 0u);
  ASSERT_EQ(c.peers.size(), 2u);
  EXPECT_EQ(c.peers[0].id, 1u);
  EXPECT_EQ(c.peers[0].host, "f");  // "01" is peer 1 too: the last entry wins, as in PgBouncer
  EXPECT_EQ(c.peers[1].id, 16383u);
  EXPECT_EQ(c.peers[1].port, 1);
  EXPECT_EQ(
      note_for(r, "pgbouncer.ini:4:"),
      "pgbouncer.ini:4: [peers] 0: 0 is outside pgwarden's range for peer ids [1, 16383]: not converted");
  EXPECT_FALSE(note_for(r, "pgbouncer.ini:5: [peers] 16384: 16384 is outside pgwarden's range").empty());
  EXPECT_EQ(
      note_for(r, "pgbouncer.ini:6:"),
      "pgbouncer.ini:6: [peers] abc: not a peer id (a number, the peer's peer_id, 1-16383): not converted");
  EXPECT_FALSE(note_for(r, "pgbouncer.ini:7: [peers] 99999999999: 99999999999 is outside").empty());
  EXPECT_EQ(
      note_for(r, "pgbouncer.ini:8:"),
      "pgbouncer.ini:8: [peers] 1: peer 1 again at line 9: PgBouncer uses the last entry, and so does the "
      "import");
  EXPECT_EQ(note_for(r, "pgbouncer.ini:12:"),
            "pgbouncer.ini:12: peer_id: 16384 is outside pgwarden's range for proxy.peer_id [0, 16383]: not "
            "converted");
  EXPECT_EQ(peer_notes(r), 6u) << testing::PrintToString(notes(r));
}

TEST(PgbouncerImport, PeersWithoutPeerIdAreListed) {
  const std::string peers = std::string(minimal_db) + "[peers]\n1 = host=a\n";
  auto r = convert(peers);
  Config c = parsed(r);
  EXPECT_EQ(c.proxy.peer_id, 0u);
  EXPECT_EQ(c.peers.size(), 1u);
  EXPECT_EQ(
      note_for(r, "pgbouncer.ini: peer_id:"),
      "pgbouncer.ini: peer_id: not set, which turns peering off, in PgBouncer as in pgwarden: the [[peer]] "
      "tables are written, but no cancel request is forwarded until proxy.peer_id gives this instance "
      "its id");
  auto zero = convert(peers + "[pgbouncer]\npeer_id = 0\n");
  EXPECT_EQ(parsed(zero).peers.size(), 1u);
  EXPECT_TRUE(contains(zero.toml, "peer_id = 0  # peer_id (line 6)")) << zero.toml;
  EXPECT_TRUE(note_for(zero, "pgbouncer.ini:6: peer_id: 0 turns peering off, in PgBouncer as in pgwarden")
                  .starts_with("pgbouncer.ini:6:"))
      << testing::PrintToString(notes(zero));
  EXPECT_EQ(peer_notes(zero), 1u) << testing::PrintToString(notes(zero));
  // peer_id = 0 without [peers] is simply converted.
  auto alone = convert(std::string(minimal_db) + "[pgbouncer]\npeer_id = 0\n");
  parsed(alone);
  EXPECT_EQ(peer_notes(alone), 0u) << testing::PrintToString(notes(alone));
}

TEST(PgbouncerImport, BadPeerValuesAreErrors) {
  EXPECT_EQ(errors(convert("[peers]\n1 = host=a port=x\n")),
            std::vector<std::string>{
                "pgbouncer.ini:2:12: [peers] 1 port: invalid value \"x\": expected a whole number"});
  EXPECT_EQ(
      errors(convert("[peers]\n1 = host=a port=70000\n")),
      std::vector<std::string>{"pgbouncer.ini:2:12: [peers] 1 port: 70000 is not a TCP port (1-65535)"});
  EXPECT_EQ(errors(convert("[peers]\n1 = host\n")),
            std::vector<std::string>{"pgbouncer.ini:2:5: [peers] 1: expected key=value"});
  EXPECT_EQ(errors(convert("[peers]\n1 = host='a\n")),
            std::vector<std::string>{
                "pgbouncer.ini:2:10: [peers] 1: quoted value of host without its closing quote"});
}

TEST(PgbouncerImport, AdminUsersFollowWhatThisBuildSupports) {
  auto r = convert(std::string(minimal_db) + "[pgbouncer]\nadmin_users = ops, dba\nstats_users = grafana\n");
  Config c = parsed(r);
  bool supported = false;
  for (const auto& k : key_reference()) {
    if (k.section == "proxy" && k.name == "admin_users") supported = k.supported;
  }
  if (supported) {
    EXPECT_EQ(c.proxy.admin_users, (std::vector<std::string>{"ops", "dba"}));
    EXPECT_TRUE(note_for(r, "pgbouncer.ini:4:").empty());
  } else {
    EXPECT_EQ(
        note_for(r, "pgbouncer.ini:4:"),
        "pgbouncer.ini:4: admin_users: pgwarden's proxy.admin_users is not supported yet by this build: not "
        "converted");
  }
  EXPECT_FALSE(note_for(r, "pgbouncer.ini:5: stats_users:").empty());
}

TEST(PgbouncerImport, OtherSpecialKeys) {
  auto r = convert(std::string(minimal_db) +
                   "[pgbouncer]\n"
                   "verbose = 2\n"
                   "track_extra_parameters = IntervalStyle, search_path\n"
                   "max_prepared_statements = 0\n"
                   "max_packet_size = 65536\n"
                   "max_db_client_connections = 50\n"
                   "max_user_client_connections = 60\n"
                   "max_user_connections = 7\n"
                   "max_db_connections = 8\n"
                   "reserve_pool_size = 3\n");
  Config c = parsed(r);
  EXPECT_EQ(c.log.level, LogLevel::trace);
  EXPECT_EQ(c.pool.track_extra_parameters, std::vector<std::string>{"search_path"});
  EXPECT_EQ(c.pool.max_prepared_statements, 0u);
  EXPECT_EQ(c.proxy.max_packet_size, 65536u);
  EXPECT_TRUE(contains(r.toml, "max_packet_size = \"64kB\"")) << r.toml;
  EXPECT_EQ(c.proxy.max_db_client_connections, 50u);
  EXPECT_EQ(c.proxy.max_user_client_connections, 60u);
  EXPECT_EQ(c.pool.max_user_connections, 7u);
  EXPECT_EQ(c.pool.max_db_connections, 8u);
  EXPECT_EQ(c.pool.reserve_size, 3u);
}

// Every [pgbouncer] key of PgBouncer 1.18 (and the ones later versions added) ends up in the TOML or in a
// note naming its line: none is dropped silently.
TEST(PgbouncerImport, EveryKeyIsConvertedOrListed) {
  const std::vector<std::pair<std::string_view, std::string_view>> keys{
      {"logfile", "pgbouncer.log"},
      {"pidfile", "pgbouncer.pid"},
      {"listen_addr", "127.0.0.1"},
      {"listen_port", "6432"},
      {"unix_socket_dir", "/tmp"},
      {"unix_socket_mode", "0777"},
      {"unix_socket_group", "postgres"},
      {"user", "postgres"},
      {"pool_mode", "session"},
      {"max_client_conn", "100"},
      {"default_pool_size", "20"},
      {"min_pool_size", "0"},
      {"reserve_pool_size", "0"},
      {"reserve_pool_timeout", "5"},
      {"max_db_connections", "0"},
      {"max_db_client_connections", "0"},
      {"max_user_connections", "0"},
      {"max_user_client_connections", "0"},
      {"server_round_robin", "0"},
      {"track_extra_parameters", "search_path"},
      {"ignore_startup_parameters", "extra_float_digits"},
      {"peer_id", "0"},
      {"disable_pqexec", "0"},
      {"application_name_add_host", "0"},
      {"conffile", "x.ini"},
      {"service_name", "pgbouncer"},
      {"job_name", "pgbouncer"},
      {"stats_period", "60"},
      {"max_prepared_statements", "200"},
      {"scram_iterations", "4096"},
      {"auth_type", "md5"},
      {"auth_hba_file", "hba.conf"},
      {"auth_ident_file", "ident.conf"},
      {"auth_file", "userlist.txt"},
      {"auth_user", "pgbouncer"},
      {"auth_query", "SELECT 1"},
      {"auth_dbname", "postgres"},
      {"auth_ldap_options", "ldapurl=x"},
      {"syslog", "0"},
      {"syslog_ident", "pgbouncer"},
      {"syslog_facility", "daemon"},
      {"log_connections", "1"},
      {"log_disconnections", "1"},
      {"log_pooler_errors", "1"},
      {"log_stats", "1"},
      {"verbose", "0"},
      {"admin_users", "ops"},
      {"stats_users", "stats"},
      {"server_reset_query", "DISCARD ALL"},
      {"server_reset_query_always", "0"},
      {"server_check_delay", "30"},
      {"server_check_query", "select 1"},
      {"server_fast_close", "0"},
      {"server_lifetime", "3600"},
      {"server_idle_timeout", "600"},
      {"server_connect_timeout", "15"},
      {"server_login_retry", "15"},
      {"client_login_timeout", "60"},
      {"autodb_idle_timeout", "3600"},
      {"pool_idle_timeout", "0"},
      {"dns_max_ttl", "15"},
      {"dns_nxdomain_ttl", "15"},
      {"dns_zone_check_period", "0"},
      {"resolv_conf", "/etc/resolv.conf"},
      {"query_wait_notify", "5"},
      {"login_notify_message", "hello"},
      {"client_tls_sslmode", "disable"},
      {"client_tls_key_file", "s.key"},
      {"client_tls_cert_file", "s.crt"},
      {"client_tls_ca_file", "ca.crt"},
      {"client_tls_protocols", "secure"},
      {"client_tls_ciphers", "HIGH"},
      {"client_tls13_ciphers", "TLS_AES_128_GCM_SHA256"},
      {"client_tls_ecdhcurve", "auto"},
      {"client_tls_dheparams", "auto"},
      {"server_tls_sslmode", "prefer"},
      {"server_tls_ca_file", "root.crt"},
      {"server_tls_key_file", "c.key"},
      {"server_tls_cert_file", "c.crt"},
      {"server_tls_protocols", "secure"},
      {"server_tls_ciphers", "HIGH"},
      {"server_tls13_ciphers", "TLS_AES_128_GCM_SHA256"},
      {"query_timeout", "0"},
      {"query_wait_timeout", "120"},
      {"cancel_wait_timeout", "10"},
      {"client_idle_timeout", "0"},
      {"idle_transaction_timeout", "0"},
      {"transaction_timeout", "0"},
      {"suspend_timeout", "10"},
      {"pkt_buf", "4096"},
      {"max_packet_size", "2147483647"},
      {"listen_backlog", "128"},
      {"sbuf_loopcnt", "5"},
      {"so_reuseport", "0"},
      {"tcp_defer_accept", "1"},
      {"tcp_socket_buffer", "0"},
      {"tcp_keepalive", "1"},
      {"tcp_keepcnt", "0"},
      {"tcp_keepidle", "0"},
      {"tcp_keepintvl", "0"},
      {"tcp_user_timeout", "0"},
  };
  for (const auto& [key, value] : keys) {
    auto r = convert("[pgbouncer]\n" + std::string(key) + " = " + std::string(value) + "\n" +
                     std::string(minimal_db));
    ASSERT_TRUE(r.ok()) << key << ": " << testing::PrintToString(errors(r));
    std::string prefix = "pgbouncer.ini:2: " + std::string(key) + ":";
    bool listed = !note_for(r, prefix).empty();
    bool converted = contains(r.toml, std::string(key) + " (line 2)");
    EXPECT_TRUE(listed || converted) << key << "\n" << r.toml << testing::PrintToString(notes(r));
    for (const auto& n : r.notes)
      EXPECT_NE(n.key, "converted TOML") << key << ": " << n.to_string();
  }
}

}  // namespace
}  // namespace pgw::config
