// Unit tests of the [audit] section: defaults, every key's parsing, cross-key checks and the HMAC key file.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

#include "pgw/config/config.hpp"

namespace pgw::config {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Errors = std::vector<std::string>;

constexpr std::string_view base =
    "[client_tls]\nmode = \"disable\"\n[server_tls]\nmode = \"disable\"\n[auth]\nfile = \"u.txt\"\n"
    "[[database]]\nname = \"app\"\n";  // 8 lines: [audit] starts on line 9

Errors errors_of(std::string_view audit, const fs::path& file = "/etc/pgw/cfg.toml") {
  LoadResult r = parse(std::string(base) + std::string(audit), file);
  Errors out;
  for (const auto& d : r.diagnostics)
    out.push_back(d.to_string());
  EXPECT_EQ(r.config.has_value(), out.empty());
  return out;
}

AuditSettings accepted(std::string_view audit, const fs::path& file = "/etc/pgw/cfg.toml") {
  LoadResult r = parse(std::string(base) + std::string(audit), file);
  Errors out;
  for (const auto& d : r.diagnostics)
    out.push_back(d.to_string());
  EXPECT_EQ(out, Errors{}) << audit;
  return r.config ? r.config->audit : AuditSettings{};
}

TEST(AuditConfig, DefaultsAreTheSpecs) {
  const AuditSettings a = accepted("");
  EXPECT_TRUE(a.enabled);
  EXPECT_EQ(a.instance, "");
  EXPECT_EQ(a.path, fs::path("/etc/pgw/audit.jsonl"));  // next to the config file
  EXPECT_EQ(a.sinks, std::vector<AuditSink>{AuditSink::file});
  EXPECT_EQ(a.statements, AuditStatements::mod);
  EXPECT_EQ(a.parameters, AuditParameters::redact);
  EXPECT_EQ(a.rotate_size, 100U << 20);
  EXPECT_EQ(a.rotate_keep, 10U);
  EXPECT_EQ(a.fsync, AuditFsync::batch);
  EXPECT_TRUE(a.hmac_key_file.empty());
  EXPECT_EQ(a.checkpoint_interval, 1min);
  EXPECT_EQ(a.literals, AuditLiterals::keep);
  EXPECT_FALSE(a.routines);
  EXPECT_EQ(a.on_failure, AuditOnFailure::block);
  EXPECT_EQ(a.queue_records, 65536U);
  EXPECT_EQ(a.queue_size, 64U << 20);
  EXPECT_EQ(a.fsync_interval, 100ms);
  EXPECT_EQ(a.retry_interval, 1s);
  EXPECT_EQ(a.write_delay, 10ms);
}

TEST(AuditConfig, EveryKeyIsParsed) {
  const AuditSettings a = accepted(R"toml([audit]
enabled = true
instance = "pooler-1"
path = "logs/audit.jsonl"
sinks = ["file", "syslog", "stdout"]
statements = "all"
parameters = "log"
rotate_size = "10MB"
rotate_keep = 3
fsync = "every"
checkpoint_interval = "30s"
literals = "redact"
routines = true
on_failure = "drop"
queue_records = 100
queue_size = "1MB"
fsync_interval = "2ms"
retry_interval = "250ms"
write_delay = "0s"
)toml");
  EXPECT_EQ(a.instance, "pooler-1");
  EXPECT_EQ(a.path, fs::path("/etc/pgw/logs/audit.jsonl"));  // relative to the config file
  EXPECT_EQ(a.sinks,
            (std::vector<AuditSink>{AuditSink::file, AuditSink::syslog, AuditSink::standard_output}));
  EXPECT_EQ(a.statements, AuditStatements::all);
  EXPECT_EQ(a.parameters, AuditParameters::log);
  EXPECT_EQ(a.rotate_size, 10U << 20);
  EXPECT_EQ(a.rotate_keep, 3U);
  EXPECT_EQ(a.fsync, AuditFsync::every);
  EXPECT_EQ(a.checkpoint_interval, 30s);
  EXPECT_EQ(a.literals, AuditLiterals::redact);
  EXPECT_TRUE(a.routines);
  EXPECT_EQ(a.on_failure, AuditOnFailure::drop);
  EXPECT_EQ(a.queue_records, 100U);
  EXPECT_EQ(a.queue_size, 1U << 20);
  EXPECT_EQ(a.fsync_interval, 2ms);
  EXPECT_EQ(a.retry_interval, 250ms);
  EXPECT_EQ(a.write_delay, 0ms);
  EXPECT_EQ(accepted("[audit]\npath = \"/var/log/a.jsonl\"\n").path, fs::path("/var/log/a.jsonl"));
  EXPECT_EQ(accepted("[audit]\nrotate_size = 0\n").rotate_size, 0U);
  EXPECT_FALSE(accepted("[audit]\nenabled = false\n").enabled);
  EXPECT_EQ(to_string(AuditSink::standard_output), "stdout");
  EXPECT_EQ(to_string(AuditFsync::every), "every");
}

TEST(AuditConfig, BadValuesAreNamedAtTheirPosition) {
  EXPECT_EQ(
      errors_of("[audit]\nstatements = \"mods\"\n"),
      Errors{"/etc/pgw/cfg.toml:10:14: audit.statements: invalid value \"mods\": expected one of none, ddl, "
             "mod, all"});
  EXPECT_EQ(
      errors_of("[audit]\nfsync = \"always\"\n"),
      Errors{"/etc/pgw/cfg.toml:10:9: audit.fsync: invalid value \"always\": expected one of every, batch, "
             "off"});
  EXPECT_EQ(
      errors_of("[audit]\non_failure = \"ignore\"\n"),
      Errors{"/etc/pgw/cfg.toml:10:14: audit.on_failure: invalid value \"ignore\": expected one of block, "
             "drop"});
  EXPECT_EQ(
      errors_of("[audit]\nrotate_size = \"lots\"\n"),
      Errors{"/etc/pgw/cfg.toml:10:15: audit.rotate_size: invalid size \"lots\": use a number with B, kB, "
             "MB or GB"});
  EXPECT_EQ(errors_of("[audit]\ncheckpoint_interval = \"1 minute\"\n"),
            Errors{"/etc/pgw/cfg.toml:10:23: audit.checkpoint_interval: invalid duration \"1 minute\": use a "
                   "number with ms, s, m, h or d, such as \"500ms\" or \"15s\""});
  EXPECT_EQ(errors_of("[audit]\nrotate_keep = -1\n"),
            Errors{"/etc/pgw/cfg.toml:10:15: audit.rotate_keep: value -1 is out of range [0, 100000]"});
  EXPECT_EQ(errors_of("[audit]\nenabled = \"yes\"\n"),
            Errors{"/etc/pgw/cfg.toml:10:11: audit.enabled: expected true or false, found string"});
  EXPECT_EQ(errors_of("[audit]\nrotate = 1\n"),
            Errors{"/etc/pgw/cfg.toml:10:1: unknown key 'rotate' in [audit]"});
  EXPECT_EQ(errors_of("[audit]\nfsynk = \"off\"\n"),
            Errors{"/etc/pgw/cfg.toml:10:1: unknown key 'fsynk' in [audit] (did you mean 'fsync'?)"});
}

TEST(AuditConfig, SinksAreANonEmptySetOfKnownNames) {
  EXPECT_EQ(
      errors_of("[audit]\nsinks = []\n"),
      Errors{"/etc/pgw/cfg.toml:10:9: audit.sinks: sinks must name at least one of file, syslog, stdout"});
  EXPECT_EQ(
      errors_of("[audit]\nsinks = [\"file\", \"kafka\"]\n"),
      Errors{"/etc/pgw/cfg.toml:10:9: audit.sinks: unknown sink \"kafka\": expected file, syslog or stdout"});
  EXPECT_EQ(errors_of("[audit]\nsinks = [\"file\", \"file\"]\n"),
            Errors{"/etc/pgw/cfg.toml:10:9: audit.sinks: sink \"file\" is listed twice"});
  EXPECT_EQ(
      errors_of("[audit]\nsinks = \"file\"\n"),
      Errors{"/etc/pgw/cfg.toml:10:9: audit.sinks: expected an array of strings (file, syslog, stdout), "
             "found string"});
  EXPECT_EQ(accepted("[audit]\nsinks = [\"stdout\"]\npath = \"\"\n").sinks,
            std::vector<AuditSink>{AuditSink::standard_output});
}

TEST(AuditConfig, CrossKeyChecks) {
  EXPECT_EQ(
      errors_of("[audit]\npath = \"\"\n"),
      Errors{"/etc/pgw/cfg.toml:10:1: audit.path must name a file when \"file\" is one of audit.sinks"});
  EXPECT_EQ(errors_of("[audit]\nsinks = [\"syslog\"]\nfsync = \"every\"\n"),
            Errors{"/etc/pgw/cfg.toml:11:1: audit.fsync = \"every\" needs the file sink: only a file can be "
                   "fsynced"});
  // Disabled: the keys are still checked one by one, but nothing is opened.
  EXPECT_EQ(errors_of("[audit]\nenabled = false\nhmac_key_file = \"/nonexistent/key\"\n"), Errors{});
  EXPECT_EQ(errors_of("[audit]\nenabled = false\nfsync = \"sometimes\"\n").size(), 1U);
}

class AuditKeyFile : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("pgw_audit_config_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path write(std::string_view name, std::string_view text) {
    std::ofstream out(dir_ / name, std::ios::binary);
    out << text;
    return dir_ / name;
  }
  fs::path dir_;
};

TEST_F(AuditKeyFile, CheckedAndResolvedAgainstTheConfigFile) {
  write("key", "s3cret-key-material\n");
  const fs::path cfg = dir_ / "cfg.toml";
  const AuditSettings a = accepted("[audit]\nhmac_key_file = \"key\"\n", cfg);
  EXPECT_EQ(a.hmac_key_file, dir_ / "key");
  std::string why;
  EXPECT_EQ(read_key_file(dir_ / "key", why), std::optional<std::string>("s3cret-key-material"));

  EXPECT_EQ(errors_of("[audit]\nhmac_key_file = \"missing\"\n", cfg),
            Errors{cfg.string() + ":10:1: audit.hmac_key_file: cannot read the key file " +
                   (dir_ / "missing").string() + ": it does not exist"});
  write("empty", "\n");
  EXPECT_EQ(errors_of("[audit]\nhmac_key_file = \"empty\"\n", cfg),
            Errors{cfg.string() + ":10:1: audit.hmac_key_file: the key file " + (dir_ / "empty").string() +
                   " is empty: put at least 32 random bytes in it"});
  fs::create_directories(dir_ / "adir");
  EXPECT_EQ(errors_of("[audit]\nhmac_key_file = \"adir\"\n", cfg),
            Errors{cfg.string() + ":10:1: audit.hmac_key_file: cannot read the key file " +
                   (dir_ / "adir").string() + ": it is not a regular file"});
  if (::geteuid() != 0) {  // root reads anything
    const fs::path locked = write("locked", "key");
    fs::permissions(locked, fs::perms::none);
    const Errors e = errors_of("[audit]\nhmac_key_file = \"locked\"\n", cfg);
    ASSERT_EQ(e.size(), 1U);
    EXPECT_NE(e[0].find("unreadable"), std::string::npos) << e[0];
  }
}

TEST(AuditConfig, ReferenceListsEveryAuditKeyAsSupported) {
  int rows = 0;
  for (const auto& k : key_reference()) {
    if (k.section != "audit") continue;
    ++rows;
    EXPECT_TRUE(k.supported) << k.name;
    EXPECT_FALSE(k.description.empty()) << k.name;
  }
  EXPECT_EQ(rows, 19);
}

}  // namespace
}  // namespace pgw::config
