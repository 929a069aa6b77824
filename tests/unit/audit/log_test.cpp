// Unit tests of the audit log: JSON lines, the hash chain, the writer (rotation, restart, torn tail, group
// commit, failure policies) and verify (changed, deleted, swapped lines, cut tail, deleted file, HMAC).
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "pgw/audit/log.hpp"

namespace pgw::audit {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

// A fresh directory per test, removed afterwards.
class TempDir {
 public:
  TempDir() {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    path_ = fs::temp_directory_path() /
            (std::string("pgw_audit_") + info->name() + "_" + std::to_string(::getpid()));
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  fs::path operator/(std::string_view name) const { return path_ / name; }

 private:
  fs::path path_;
};

std::string read_all(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void write_all(const fs::path& p, std::string_view text) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out << text;
}

std::vector<std::string> lines_of(const fs::path& p) {
  std::vector<std::string> out;
  std::istringstream in(read_all(p));
  for (std::string l; std::getline(in, l);)
    out.push_back(l);
  return out;
}

void write_lines(const fs::path& p, const std::vector<std::string>& lines) {
  std::string text;
  for (const auto& l : lines)
    text += l + "\n";
  write_all(p, text);
}

config::AuditSettings settings(const fs::path& file) {
  config::AuditSettings s;
  s.path = file;
  s.instance = "unit";
  s.rotate_size = 0;
  s.fsync = config::AuditFsync::off;
  s.checkpoint_interval = 0ms;
  s.retry_interval = 20ms;
  return s;
}

Record statement(int i) {
  Record r;
  r.session = "sess-" + std::to_string(i);
  r.client_addr = "10.0.1.5";
  r.client_port = 51234;
  r.user = "jheuser";
  r.database = "jhe_production";
  r.command = "INSERT";
  r.statement_class = "mod";
  r.objects = {"public.obs"};
  r.statement = "INSERT INTO obs VALUES (" + std::to_string(i) + ")";
  r.params.kind = Params::Kind::redacted;
  r.outcome = "ok";
  return r;
}

// Appends n statements and waits (bounded) until every callback ran; returns how many said ok.
int append_n(AuditLog& log, int n, int from = 0) {
  std::atomic<int> ok{0};
  for (int i = 0; i < n; ++i) {
    auto r = log.append(statement(from + i), [&](bool good) { ok += good ? 1 : 0; });
    EXPECT_TRUE(r.ok()) << to_string(r.status);
  }
  EXPECT_TRUE(log.flush(10s));
  return ok.load();
}

VerifyResult verify_files(const std::vector<fs::path>& files, VerifyOptions o = {}) {
  return verify(files, o);
}

std::string problem(const VerifyResult& r) {
  return r.problem ? r.problem->to_string() : std::string("(no problem)");
}

// verify failed, naming this file and line, with a message that says `text`.
void expect_problem(const VerifyResult& r, const fs::path& file, std::uint64_t line, std::string_view text) {
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.problem->file, file);
  EXPECT_EQ(r.problem->line, line);
  EXPECT_NE(r.problem->message.find(text), std::string::npos) << problem(r);
}

// ---------------------------------------------------------------------------------------------------------------
// Records

TEST(AuditRecord, StatementFieldsInTheSpecOrder) {
  Record r = statement(1);
  r.ts = std::chrono::system_clock::time_point(std::chrono::microseconds(1'795'370'400'123'456));
  r.seq = 42;
  r.instance = "pooler-1";
  r.tls = TlsInfo{"TLSv1.3", "TLS_AES_256_GCM_SHA384", std::nullopt};
  r.server = "127.0.0.1:5432";
  r.backend_pid = 4242;
  r.protocol = "simple";
  r.application_name = "django";
  r.in_transaction = true;
  r.tag = "INSERT 0 1";
  r.rows = 1;
  r.duration_us = 512;
  EXPECT_EQ(record_body(r),
            R"j({"ts":"2026-11-22T18:00:00.123456Z","seq":42,"event":"statement","session":"sess-1",)j"
            R"j("client_addr":"10.0.1.5","client_port":51234,"user":"jheuser","database":"jhe_production",)j"
            R"j("application_name":"django","tls":{"version":"TLSv1.3","cipher":"TLS_AES_256_GCM_SHA384",)j"
            R"j("client_cert":null},"server":"127.0.0.1:5432","backend_pid":4242,"protocol":"simple",)j"
            R"j("command":"INSERT","class":"mod","objects":["public.obs"],)j"
            R"j("statement":"INSERT INTO obs VALUES (1)","params":"redacted","instance":"pooler-1",)j"
            R"j("in_transaction":true,"outcome":"ok","tag":"INSERT 0 1","rows":1,"sqlstate":null,)j"
            R"j("duration_us":512)j");
}

TEST(AuditRecord, PreRenderedIdentityIsByteForByteWhatTheFieldsWouldGive) {
  Record full = statement(7);
  full.seq = 9;
  full.session = "s\"1\\\n\xff";
  full.application_name = "caf\xc3\xa9 \x01";
  full.tls = TlsInfo{"TLSv1.3", "TLS_AES_128_GCM_SHA256", std::string("CN=\"x\",O=y")};
  full.server = "[::1]:5432";
  full.backend_pid = -3;
  Record bare = full;  // no client address, port or TLS: nulls
  bare.client_addr.reset();
  bare.client_port.reset();
  bare.tls.reset();
  bare.user.reset();
  Record detached = bare;  // no server connection yet: nulls
  detached.server.reset();
  detached.backend_pid.reset();
  for (const Record* source : {&full, &bare, &detached}) {
    const std::string members = identity_members(*source);
    EXPECT_EQ(members.rfind(",\"session\":", 0), 0u) << members;
    // In two parts (a session whose server connection changes at each attach), the same bytes.
    std::string parts = "kept:";
    append_client_identity_members(parts, *source);
    append_server_identity_members(parts, source->server, source->backend_pid);
    EXPECT_EQ(parts, "kept:" + members);
    for (Event e : {Event::statement, Event::transaction}) {
      Record expected = *source;
      expected.event = e;
      Record lean = expected;
      lean.session.clear();
      lean.client_addr = "wrong";
      lean.client_port.reset();
      lean.user.reset();
      lean.database = "wrong";
      lean.application_name.reset();
      lean.tls.reset();
      lean.server.reset();
      lean.backend_pid = 1;
      lean.identity_members = members;
      EXPECT_EQ(record_body(lean), record_body(expected));
    }
  }
  // Events without all of those members ignore the text and write their own fields.
  for (Event e : {Event::outcome, Event::connect, Event::disconnect}) {
    Record r = full;
    r.event = e;
    const std::string expected = record_body(r);
    r.identity_members = ",\"bogus\":1";
    EXPECT_EQ(record_body(r), expected);
  }
}

TEST(AuditRecord, TimestampsMatchGmtime) {
  // format_ts does its own calendar arithmetic; gmtime_r + strftime is the reference.
  auto reference = [](long long us) {
    long long secs = us / 1'000'000, frac = us % 1'000'000;
    if (frac < 0) {
      frac += 1'000'000;
      --secs;
    }
    const auto t = static_cast<std::time_t>(secs);
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[40];
    std::size_t n = std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
    std::snprintf(buf + n, sizeof buf - n, ".%06lldZ", frac);
    return std::string(buf);
  };
  std::vector<long long> cases = {0,
                                  1,
                                  999'999,
                                  -1,
                                  1'709'164'800'000'000,   // 2024-02-29T00:00:00
                                  1'709'251'199'999'999,   // 2024-02-29T23:59:59.999999
                                  951'782'400'000'000,     // 2000-02-29
                                  4'102'444'799'999'999,   // 2099-12-31T23:59:59.999999
                                  1'795'370'400'123'456};  // the SPEC's example
  std::uint64_t x = 88172645463325252ULL;
  for (int i = 0; i < 2000; ++i) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    cases.push_back(static_cast<long long>(x % 4'102'444'800'000'000ULL));
  }
  for (long long us : cases) {
    const auto t = std::chrono::system_clock::time_point(std::chrono::microseconds(us));
    EXPECT_EQ(format_ts(t), reference(us)) << us;
  }
}

TEST(AuditRecord, EachEventHasAFixedFieldSet) {
  EXPECT_EQ(fields_of_event(Event::outcome),
            (std::vector<std::string_view>{"ts", "seq", "event", "ref", "session", "instance", "outcome",
                                           "tag", "rows", "sqlstate", "duration_us"}));
  EXPECT_EQ(fields_of_event(Event::records_dropped),
            (std::vector<std::string_view>{"ts", "seq", "event", "instance", "dropped"}));
  EXPECT_EQ(fields_of_event(Event::statement), fields_of_event(Event::transaction));
  // Unset optional fields of the event are null; fields of other events are absent.
  Record c;
  c.event = Event::connect;
  c.session = "s";
  const std::string body = record_body(c);
  EXPECT_NE(body.find(R"("user":null)"), std::string::npos) << body;
  EXPECT_NE(body.find(R"("tls":null)"), std::string::npos) << body;
  EXPECT_EQ(body.find("statement"), std::string::npos) << body;
  EXPECT_EQ(body.find("ref"), std::string::npos) << body;
  Record o;
  o.event = Event::outcome;
  o.ref = 41;
  o.sqlstate = "23505";
  EXPECT_NE(record_body(o).find(R"("event":"outcome","ref":41,)"), std::string::npos);
}

TEST(AuditRecord, NastyStringsAreEscapedByteExactly) {
  auto json = [](std::string_view s) {
    std::string out;
    append_json_string(out, s);
    return out;
  };
  EXPECT_EQ(json("plain"), R"("plain")");
  EXPECT_EQ(json("q\"b\\s/"), R"("q\"b\\s/")");
  EXPECT_EQ(json("\b\f\n\r\t"), R"("\b\f\n\r\t")");
  EXPECT_EQ(json(std::string_view("a\0b", 3)), R"("a\u0000b")");
  EXPECT_EQ(json("\x01\x1f\x7f"), R"("\u0001\u001f\u007f")");
  // Valid UTF-8 as is (2, 3, 4 bytes; U+2028 too), invalid bytes as \u00XX of the byte.
  EXPECT_EQ(json("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xe2\x80\xa8"),
            "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xe2\x80\xa8\"");
  EXPECT_EQ(json("\xff\xfe"), R"("\u00ff\u00fe")");
  EXPECT_EQ(json("\xc3"), R"("\u00c3")");                                // truncated sequence
  EXPECT_EQ(json("\xc0\xaf"), R"("\u00c0\u00af")");                      // overlong '/'
  EXPECT_EQ(json("\xed\xa0\x80"), R"("\u00ed\u00a0\u0080")");            // surrogate
  EXPECT_EQ(json("\xf4\x90\x80\x80"), R"("\u00f4\u0090\u0080\u0080")");  // above U+10FFFF
  EXPECT_EQ(json("\xe2\x82"), R"("\u00e2\u0082")");
  // Plain runs are found 8 bytes at a time: a byte that needs escaping is seen at every offset of a word,
  // and escaped as it is alone.
  for (int b = 0; b < 256; ++b) {
    const auto c = static_cast<char>(b);
    const bool plain = b >= 0x20 && b < 0x7F && c != '"' && c != '\\';
    const std::string alone = json(std::string(1, c));
    const std::string escaped = alone.substr(1, alone.size() - 2);
    if (plain) continue;
    for (std::size_t at = 0; at < 20; ++at) {
      const std::string before(at, 'a');
      const std::string after(19 - at, 'z');
      EXPECT_EQ(json(before + c + after), "\"" + before + escaped + after + "\"")
          << "byte " << b << " at " << at;
    }
  }
  // Every byte value round-trips through the verify reader into a well-formed line.
  std::string all;
  for (int b = 0; b < 256; ++b)
    all += static_cast<char>(b);
  Record r;
  r.seq = 1;
  r.statement = all;
  r.session = all;
  r.objects = {all, ""};
  r.params.kind = Params::Kind::values;
  r.params.values = {all, std::nullopt};
  Chain chain{Hasher{}};
  auto line = chain.seal(record_body(r), 1);
  ASSERT_TRUE(line);
  EXPECT_EQ(line->find('\n'), line->size() - 1);
  for (char c : *line)
    EXPECT_TRUE(static_cast<unsigned char>(c) >= 0x20 || c == '\n');
  TempDir dir;
  write_all(dir / "a.jsonl", *line);
  EXPECT_TRUE(verify_files({dir / "a.jsonl"}).ok()) << problem(verify_files({dir / "a.jsonl"}));
}

// ---------------------------------------------------------------------------------------------------------------
// Chain

TEST(AuditChain, FirstPrevIsZerosAndEachPrevIsTheLastHash) {
  Chain chain{Hasher{}};
  auto a = chain.seal(R"({"x":1)", 1);
  ASSERT_TRUE(a);
  EXPECT_NE(a->find(R"(,"prev":")" + std::string(64, '0') + R"(","hash":")"), std::string::npos);
  const std::string h1 = to_hex(chain.last_hash());
  auto b = chain.seal(R"({"x":2)", 2);
  ASSERT_TRUE(b);
  EXPECT_NE(b->find(R"("prev":")" + h1 + "\""), std::string::npos);
  EXPECT_EQ(chain.last_seq(), 2U);
  // The hash covers the bytes before ,"hash": exactly: SHA-256 of them.
  const std::string covered = b->substr(0, b->find(R"(,"hash":)"));
  Digest d{};
  ASSERT_TRUE(Hasher{}.hash(covered, d));
  EXPECT_EQ(b->substr(b->size() - 67, 64), to_hex(d));
  // Known answer: SHA-256("abc"), also from a Hasher that hashed something before.
  ASSERT_TRUE(Hasher{}.hash("abc", d));
  EXPECT_EQ(to_hex(d), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  Hasher reused;
  ASSERT_TRUE(reused.hash(covered, d));
  ASSERT_TRUE(reused.hash("abc", d));
  EXPECT_EQ(to_hex(d), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(AuditChain, HmacKnownAnswerAndKeyMatters) {
  // RFC 4231 test case 2.
  Digest d{};
  ASSERT_TRUE(Hasher("Jefe").hash("what do ya want for nothing?", d));
  EXPECT_EQ(to_hex(d), "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  Digest other{};
  ASSERT_TRUE(Hasher("Jeff").hash("what do ya want for nothing?", other));
  EXPECT_NE(d, other);
  // One Hasher reuses its context for every record: the key must survive each restart, and a copy (or an
  // assignment) must hash alone.
  Hasher reused("Jefe");
  for (int i = 0; i < 3; ++i) {
    Digest again{};
    ASSERT_TRUE(reused.hash("what do ya want for nothing?", again));
    EXPECT_EQ(again, d);
    ASSERT_TRUE(reused.hash("something else", again));
    EXPECT_NE(again, d);
  }
  Hasher copy = reused;
  Hasher assigned;
  assigned = copy;
  Digest from_copy{}, from_assigned{};
  ASSERT_TRUE(copy.hash("what do ya want for nothing?", from_copy));
  ASSERT_TRUE(assigned.hash("what do ya want for nothing?", from_assigned));
  EXPECT_EQ(from_copy, d);
  EXPECT_EQ(from_assigned, d);
  EXPECT_TRUE(assigned.keyed());
  EXPECT_EQ(from_hex(to_hex(d)), d);
  EXPECT_FALSE(from_hex("ABCD"));
}

// ---------------------------------------------------------------------------------------------------------------
// Writer

TEST(AuditWriter, WritesAChainThatVerifies) {
  TempDir dir;
  {
    AuditLog log(settings(dir / "a.jsonl"));
    EXPECT_EQ(append_n(log, 50), 50);
    const Stats s = log.stats();
    EXPECT_EQ(s.written, 50U);
    EXPECT_EQ(s.last_seq, 50U);
    EXPECT_FALSE(s.failing);
  }
  auto lines = lines_of(dir / "a.jsonl");
  ASSERT_EQ(lines.size(), 50U);
  EXPECT_NE(lines[0].find(R"("seq":1,)"), std::string::npos);
  EXPECT_NE(lines[0].find(R"("instance":"unit")"), std::string::npos);
  auto r = verify_files({dir / "a.jsonl"});
  ASSERT_TRUE(r.ok()) << problem(r);
  ASSERT_EQ(r.chains.size(), 1U);
  EXPECT_EQ(r.chains[0].records, 50U);
  EXPECT_EQ(r.chains[0].instance, "unit");
}

TEST(AuditWriter, HmacChainNeedsTheKeyToVerify) {
  TempDir dir;
  write_all(dir / "key", "0123456789abcdef0123456789abcdef\n");
  auto s = settings(dir / "a.jsonl");
  s.hmac_key_file = dir / "key";
  {
    AuditLog log(s);
    EXPECT_EQ(append_n(log, 5), 5);
  }
  VerifyOptions with_key;
  with_key.hmac_key = "0123456789abcdef0123456789abcdef";  // the trailing newline is not part of the key
  auto ok = verify_files({dir / "a.jsonl"}, with_key);
  EXPECT_TRUE(ok.ok()) << problem(ok);
  auto no_key = verify_files({dir / "a.jsonl"});
  ASSERT_FALSE(no_key.ok());
  EXPECT_EQ(no_key.problem->line, 1U);
  EXPECT_NE(no_key.problem->message.find("--hmac-key-file"), std::string::npos) << problem(no_key);
  VerifyOptions wrong;
  wrong.hmac_key = "not the key";
  EXPECT_FALSE(verify_files({dir / "a.jsonl"}, wrong).ok());
  // A missing key file stops start-up.
  s.hmac_key_file = dir / "missing";
  EXPECT_THROW(AuditLog{s}, std::runtime_error);
}

TEST(AuditWriter, RotationKeepsTheChain) {
  TempDir dir;
  auto s = settings(dir / "a.jsonl");
  s.rotate_size = 2000;
  s.rotate_keep = 100;
  std::uint64_t rotations = 0;
  {
    AuditLog log(s);
    EXPECT_EQ(append_n(log, 60), 60);
    rotations = log.stats().rotations;
  }
  EXPECT_GT(rotations, 5U);
  std::vector<fs::path> files{dir / "a.jsonl"};
  for (std::uint64_t i = 1; i <= rotations; ++i)
    files.push_back(dir / ("a.jsonl." + std::to_string(i)));
  for (const auto& f : files) {
    EXPECT_TRUE(fs::exists(f)) << f;
    EXPECT_LE(fs::file_size(f), 2000U) << f;
  }
  // Any order of files: verify orders them by their first seq.
  std::reverse(files.begin(), files.end());
  auto r = verify_files(files);
  ASSERT_TRUE(r.ok()) << problem(r);
  EXPECT_EQ(r.chains[0].records, 60U);
  EXPECT_EQ(r.chains[0].files.size(), files.size());
  EXPECT_FALSE(r.chains[0].starts_after_rotation);
}

TEST(AuditWriter, RotateKeepDeletesOldFilesAndVerifyAcceptsTheOldestKept) {
  TempDir dir;
  auto s = settings(dir / "a.jsonl");
  s.rotate_size = 2000;
  s.rotate_keep = 2;
  {
    AuditLog log(s);
    EXPECT_EQ(append_n(log, 60), 60);
  }
  EXPECT_FALSE(fs::exists(dir / "a.jsonl.3"));
  auto r = verify_files({dir / "a.jsonl", dir / "a.jsonl.1", dir / "a.jsonl.2"});
  ASSERT_TRUE(r.ok()) << problem(r);
  EXPECT_TRUE(r.chains[0].starts_after_rotation);
  EXPECT_EQ(r.chains[0].last_seq, 60U);
  // A middle file missing is a gap, not a rotation.
  expect_problem(verify_files({dir / "a.jsonl", dir / "a.jsonl.2"}), dir / "a.jsonl", 1,
                 "rotated file was deleted");
}

TEST(AuditWriter, RestartContinuesSeqAndPrev) {
  TempDir dir;
  auto s = settings(dir / "a.jsonl");
  for (int run = 0; run < 3; ++run) {
    AuditLog log(s);
    EXPECT_EQ(append_n(log, 10, run * 10), 10);
    EXPECT_EQ(log.stats().last_seq, static_cast<std::uint64_t>(run * 10 + 10));
  }
  // After a rotation that left the current file empty, the chain continues from path.1.
  s.rotate_size = 1;  // every record in a file of its own
  {
    AuditLog log(s);
    EXPECT_EQ(append_n(log, 2, 30), 2);
  }
  // As if the process stopped right after a rotation: the current file exists and is empty.
  for (int i = 9; i >= 1; --i) {
    if (fs::exists(dir / ("a.jsonl." + std::to_string(i))))
      fs::rename(dir / ("a.jsonl." + std::to_string(i)), dir / ("a.jsonl." + std::to_string(i + 1)));
  }
  fs::rename(dir / "a.jsonl", dir / "a.jsonl.1");
  write_all(dir / "a.jsonl", "");
  {
    AuditLog log(s);
    EXPECT_EQ(append_n(log, 1, 32), 1);
  }
  std::vector<fs::path> files{dir / "a.jsonl"};
  for (int i = 1; i <= 10; ++i) {
    if (fs::exists(dir / ("a.jsonl." + std::to_string(i))))
      files.push_back(dir / ("a.jsonl." + std::to_string(i)));
  }
  auto r = verify_files(files);
  ASSERT_TRUE(r.ok()) << problem(r);
  EXPECT_EQ(r.chains[0].first_seq, 1U);
  EXPECT_EQ(r.chains[0].last_seq, 33U);
}

TEST(AuditWriter, AWholeLastRecordWithoutItsNewlineIsKept) {
  TempDir dir;
  auto s = settings(dir / "a.jsonl");
  {
    AuditLog log(s);
    EXPECT_EQ(append_n(log, 5), 5);
  }
  const std::string all = read_all(dir / "a.jsonl");
  write_all(dir / "a.jsonl", all.substr(0, all.size() - 1));  // only the final '\n' gone
  std::vector<std::string> alarms;
  {
    AuditLog log(s, {[&](std::string_view m) { alarms.emplace_back(m); }, {}, "/dev/log"});
    ASSERT_EQ(alarms.size(), 1U);
    EXPECT_NE(alarms[0].find("kept, newline added"), std::string::npos) << alarms[0];
    EXPECT_EQ(read_all(dir / "a.jsonl"), all);  // record 5 is still there
    EXPECT_EQ(append_n(log, 2, 5), 2);
  }
  auto r = verify_files({dir / "a.jsonl"});
  ASSERT_TRUE(r.ok()) << problem(r);
  EXPECT_EQ(r.chains[0].records, 7U);
}

TEST(AuditWriter, TornTailIsCutOffWithAnAlarm) {
  TempDir dir;
  auto s = settings(dir / "a.jsonl");
  {
    AuditLog log(s);
    EXPECT_EQ(append_n(log, 5), 5);
  }
  const std::string good = read_all(dir / "a.jsonl");
  {
    std::ofstream out(dir / "a.jsonl", std::ios::binary | std::ios::app);
    out << R"({"ts":"2026-11-22T18:00:00.000000Z","seq":6,"event":"statem)";  // crash mid-write
  }
  EXPECT_FALSE(verify_files({dir / "a.jsonl"}).ok());  // verify names the torn line until the next start
  std::vector<std::string> alarms;
  {
    AuditLog log(s, {[&](std::string_view m) { alarms.emplace_back(m); }, {}, "/dev/log"});
    ASSERT_EQ(alarms.size(), 1U);
    EXPECT_NE(alarms[0].find("torn"), std::string::npos) << alarms[0];
    EXPECT_EQ(read_all(dir / "a.jsonl"), good);
    EXPECT_EQ(append_n(log, 3), 3);
  }
  auto r = verify_files({dir / "a.jsonl"});
  ASSERT_TRUE(r.ok()) << problem(r);
  EXPECT_EQ(r.chains[0].last_seq, 8U);
  // A last complete line that is not a record (or was edited) stops start-up: never chain onto garbage.
  write_all(dir / "b.jsonl", "garbage\n");
  EXPECT_THROW(AuditLog{settings(dir / "b.jsonl")}, std::runtime_error);
  auto lines = lines_of(dir / "a.jsonl");
  lines.back()[lines.back().find("INSERT")] = 'X';
  write_lines(dir / "a.jsonl", lines);
  EXPECT_THROW(AuditLog{s}, std::runtime_error);
}

TEST(AuditWriter, GroupCommitFromManyThreads) {
  TempDir dir;
  auto s = settings(dir / "a.jsonl");
  s.fsync = config::AuditFsync::every;
  constexpr int threads = 8, per_thread = 250;
  std::mutex mu;
  std::vector<int> calls(threads * per_thread + 1, 0);
  std::set<std::uint64_t> seqs;
  std::uint64_t fsyncs = 0;
  {
    AuditLog log(s);
    std::vector<std::thread> workers;
    for (int t = 0; t < threads; ++t) {
      workers.emplace_back([&, t] {
        for (int i = 0; i < per_thread; ++i) {
          auto slot = std::make_shared<std::uint64_t>(0);
          auto r = log.append(statement(t * per_thread + i), [&, slot](bool ok) {
            std::lock_guard lk(mu);
            EXPECT_TRUE(ok);
            ++calls[*slot];
          });
          ASSERT_TRUE(r.ok());
          {
            std::lock_guard lk(mu);
            *slot = r.seq;
            EXPECT_TRUE(seqs.insert(r.seq).second) << r.seq;
          }
        }
      });
    }
    for (auto& w : workers)
      w.join();
    ASSERT_TRUE(log.flush(30s));
    fsyncs = log.stats().fsyncs;
  }
  // Seq is dense and unique; every callback ran exactly once (slot 0 would mean "ran before its seq was set",
  // which cannot be told apart here, so it is counted as well).
  ASSERT_EQ(seqs.size(), static_cast<std::size_t>(threads * per_thread));
  EXPECT_EQ(*seqs.begin(), 1U);
  EXPECT_EQ(*seqs.rbegin(), static_cast<std::uint64_t>(threads * per_thread));
  int total = 0;
  for (int c : calls)
    total += c;
  EXPECT_EQ(total, threads * per_thread);
  EXPECT_GE(fsyncs, 1U);
  EXPECT_LE(fsyncs, static_cast<std::uint64_t>(threads * per_thread));
  auto r = verify_files({dir / "a.jsonl"});
  ASSERT_TRUE(r.ok()) << problem(r);
  EXPECT_EQ(r.chains[0].records, static_cast<std::uint64_t>(threads * per_thread));
}

TEST(AuditWriter, WriteDelayGathersRecordsButNeverHoldsBackWhatIsWaitedFor) {
  TempDir dir;
  auto s = settings(dir / "a.jsonl");
  s.fsync = config::AuditFsync::batch;
  s.write_delay = std::chrono::minutes(10);  // far longer than this test may take
  AuditLog log(s);
  // Nobody waits for these: they gather, and flush() cuts the delay short.
  for (int i = 0; i < 20; ++i)
    ASSERT_TRUE(log.append(statement(i)).ok());
  ASSERT_TRUE(log.flush(10s));
  EXPECT_EQ(log.stats().written, 20U);
  EXPECT_EQ(lines_of(dir / "a.jsonl").size(), 20U);
  // A record whose session waits for it (a callback) is written at once, with the records gathered before it.
  ASSERT_TRUE(log.append(statement(20)).ok());
  std::mutex mu;
  std::condition_variable cv;
  bool called = false;
  ASSERT_TRUE(log.append(statement(21),
                         [&](bool ok) {
                           EXPECT_TRUE(ok);
                           std::lock_guard lk(mu);
                           called = true;
                           cv.notify_all();
                         })
                  .ok());
  std::unique_lock lk(mu);
  EXPECT_TRUE(cv.wait_for(lk, 10s, [&] { return called; }));
  lk.unlock();
  // The callback runs once the batch is written, just before the counters move.
  ASSERT_TRUE(log.flush(10s));
  EXPECT_EQ(log.stats().written, 22U);
}

// A fault that holds the writer until released, then fails `fail_count` attempts.
struct Gate {
  std::mutex mu;
  std::condition_variable cv;
  bool open = false;
  bool arrived = false;  // the writer has reached the gate with a batch
  int failures = 0;
  std::error_code operator()(std::string_view op) {
    std::unique_lock lk(mu);
    if (op != "file") return {};
    arrived = true;
    cv.notify_all();
    cv.wait_for(lk, 10s, [&] { return open; });
    if (failures > 0) {
      --failures;
      return std::make_error_code(std::errc::no_space_on_device);
    }
    return {};
  }
  void release() {
    {
      std::lock_guard lk(mu);
      open = true;
    }
    cv.notify_all();
  }
  bool wait_arrived() {
    std::unique_lock lk(mu);
    return cv.wait_for(lk, 10s, [&] { return arrived; });
  }
};

TEST(AuditWriter, QueueFullWithBlockRefuses) {
  TempDir dir;
  auto s = settings(dir / "a.jsonl");
  s.queue_records = 4;
  auto gate = std::make_shared<Gate>();
  std::atomic<int> durable{0};
  {
    AuditLog log(s, {{}, [gate](std::string_view op) { return (*gate)(op); }, "/dev/log"});
    // The writer takes the first record and blocks on the gate; 4 more fill the queue.
    std::vector<AppendStatus> got;
    for (int i = 0; i < 10; ++i)
      got.push_back(log.append(statement(i), [&](bool ok) { durable += ok ? 1 : 0; }).status);
    EXPECT_EQ(std::count(got.begin(), got.end(), AppendStatus::queued), 4);
    EXPECT_EQ(std::count(got.begin(), got.end(), AppendStatus::queue_full), 6);
    EXPECT_EQ(log.stats().refused, 6U);
    gate->release();
    ASSERT_TRUE(log.flush(10s));
    EXPECT_EQ(log.append(statement(99)).status, AppendStatus::queued);
    ASSERT_TRUE(log.flush(10s));
  }
  EXPECT_EQ(durable.load(), 4);
  auto r = verify_files({dir / "a.jsonl"});
  ASSERT_TRUE(r.ok()) << problem(r);
  EXPECT_EQ(r.chains[0].records, 5U);
}

// A record refused for its size must not leave its size behind: the thread's next records are rendered into
// a buffer of their own size and fit.
TEST(AuditWriter, ARefusedLargeRecordDoesNotCrowdOutTheNextOnes) {
  TempDir dir;
  auto s = settings(dir / "a.jsonl");
  s.queue_size = 64 * 1024;
  auto gate = std::make_shared<Gate>();
  {
    AuditLog log(s, {{}, [gate](std::string_view op) { return (*gate)(op); }, "/dev/log"});
    ASSERT_EQ(log.append(statement(0)).status,
              AppendStatus::queued);  // held by the gate: the queue is not empty
    Record large = statement(1);
    large.statement = std::string(200 * 1024, 'x');
    EXPECT_EQ(log.append(large).status, AppendStatus::queue_full);
    for (int i = 2; i < 6; ++i)
      EXPECT_EQ(log.append(statement(i)).status, AppendStatus::queued) << i;
    gate->release();
    ASSERT_TRUE(log.flush(10s));
  }
  auto r = verify_files({dir / "a.jsonl"});
  ASSERT_TRUE(r.ok()) << problem(r);
  EXPECT_EQ(r.chains[0].records, 5U);
}

TEST(AuditWriter, QueueFullWithDropCountsAndRecordsTheDrop) {
  TempDir dir;
  auto s = settings(dir / "a.jsonl");
  s.queue_records = 4;
  s.on_failure = config::AuditOnFailure::drop;
  auto gate = std::make_shared<Gate>();
  std::vector<std::string> alarms;
  std::mutex alarm_mu;
  {
    AuditLog log(s, {[&](std::string_view m) {
                       std::lock_guard lk(alarm_mu);
                       alarms.emplace_back(m);
                     },
                     [gate](std::string_view op) { return (*gate)(op); }, "/dev/log"});
    std::vector<AppendStatus> got;
    for (int i = 0; i < 10; ++i)
      got.push_back(log.append(statement(i)).status);
    EXPECT_EQ(std::count(got.begin(), got.end(), AppendStatus::dropped), 6);
    EXPECT_EQ(log.stats().dropped, 6U);
    gate->release();
    ASSERT_TRUE(log.flush(10s));
    ASSERT_TRUE(log.flush(10s));  // the records_dropped record the writer queued after the batch
  }
  {
    std::lock_guard lk(alarm_mu);
    ASSERT_EQ(alarms.size(), 1U);
    EXPECT_NE(alarms[0].find("dropping"), std::string::npos);
  }
  auto lines = lines_of(dir / "a.jsonl");
  ASSERT_EQ(lines.size(), 5U);
  EXPECT_NE(lines[4].find(R"("event":"records_dropped","instance":"unit","dropped":6,)"), std::string::npos)
      << lines[4];
  EXPECT_TRUE(verify_files({dir / "a.jsonl"}).ok());
}

TEST(AuditWriter, WriteFailureBlocksThenRecovers) {
  TempDir dir;
  auto s = settings(dir / "a.jsonl");
  auto gate = std::make_shared<Gate>();
  gate->failures = 3;
  std::vector<std::string> alarms;
  std::mutex alarm_mu;
  std::atomic<int> ok{0}, failed{0};
  int sneaked_in = 0;
  {
    AuditLog log(s, {[&](std::string_view m) {
                       std::lock_guard lk(alarm_mu);
                       alarms.emplace_back(m);
                     },
                     [gate](std::string_view op) { return (*gate)(op); }, "/dev/log"});
    gate->release();
    auto first = log.append(statement(0), [&](bool good) { (good ? ok : failed) += 1; });
    ASSERT_TRUE(first.ok());
    ASSERT_TRUE(log.flush(10s));
    EXPECT_EQ(failed.load(), 1);  // the callback said false; the record stays queued
    // While failing, block refuses new records; after the retries the queued record is written.
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    bool refused = false;
    // sneaked_in: appended just as the writer recovered
    while (log.failing() && std::chrono::steady_clock::now() < deadline) {
      const AppendStatus st = log.append(statement(1), [&](bool good) { (good ? ok : failed) += 1; }).status;
      refused = refused || st == AppendStatus::failing;
      sneaked_in += st == AppendStatus::queued ? 1 : 0;
      std::this_thread::sleep_for(5ms);
    }
    EXPECT_TRUE(refused);
    EXPECT_FALSE(log.failing());
    EXPECT_EQ(log.append(statement(2)).status, AppendStatus::queued);
    ASSERT_TRUE(log.flush(10s));
    EXPECT_GE(log.stats().write_errors, 3U);
  }
  EXPECT_EQ(ok.load(), sneaked_in);
  {
    std::lock_guard lk(alarm_mu);
    ASSERT_GE(alarms.size(), 2U);
    EXPECT_NE(alarms.front().find("No space left on device"), std::string::npos) << alarms.front();
    EXPECT_NE(alarms.back().find("works again"), std::string::npos) << alarms.back();
  }
  auto r = verify_files({dir / "a.jsonl"});
  ASSERT_TRUE(r.ok()) << problem(r);
  EXPECT_EQ(r.chains[0].records, 2U + sneaked_in);  // seq 1 (retried), then the rest: dense, nothing lost
}

// Records queued while a batch is being written stay behind it when the write fails: they fail with it (their
// sessions hear at once) and are all written, in order, once writing works again.
TEST(AuditWriter, RecordsQueuedBehindAFailedBatchAreWrittenAfterIt) {
  TempDir dir;
  auto s = settings(dir / "a.jsonl");
  s.write_delay = 0ms;
  auto gate = std::make_shared<Gate>();
  gate->failures = 1;
  std::atomic<int> ok{0}, failed{0};
  {
    AuditLog log(s, {{}, [gate](std::string_view op) { return (*gate)(op); }, "/dev/log"});
    auto count = [&](bool good) { (good ? ok : failed) += 1; };
    ASSERT_TRUE(log.append(statement(0), count).ok());
    ASSERT_TRUE(gate->wait_arrived());  // the writer holds record 0 alone at the gate
    for (int i = 1; i < 5; ++i)
      ASSERT_TRUE(log.append(statement(i), count).ok()) << i;
    gate->release();
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while ((failed.load() < 5 || log.failing()) && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(5ms);
    EXPECT_EQ(failed.load(), 5);  // each heard of the failure once
    EXPECT_FALSE(log.failing());
    ASSERT_TRUE(log.flush(10s));
    EXPECT_EQ(log.stats().written, 5U);
  }
  EXPECT_EQ(ok.load(), 0);
  auto r = verify_files({dir / "a.jsonl"});
  ASSERT_TRUE(r.ok()) << problem(r);
  EXPECT_EQ(r.chains[0].records, 5U);  // seq 1..5, dense, in order
}

// A write the kernel takes only in part (here: the file size limit, RLIMIT_FSIZE, falls inside a batch) is
// cut back to the last whole line, the log fails, and once writing works the whole batch is written again:
// the file never holds half a line, and the chain stays dense.
TEST(AuditWriter, AShortWriteIsCutBackToWholeLinesAndRetried) {
  TempDir dir;
  auto s = settings(dir / "a.jsonl");
  s.write_delay = 0ms;
  rlimit saved{};
  ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &saved), 0);
  // Restored however the test ends: the tests after it run in this process.
  struct Restore {
    rlimit limit;
    void (*handler)(int);
    ~Restore() {
      ::setrlimit(RLIMIT_FSIZE, &limit);
      std::signal(SIGXFSZ, handler);
    }
  } restore{saved, std::signal(SIGXFSZ, SIG_IGN)};  // SIG_IGN: the write fails with EFBIG instead
  std::uintmax_t before = 0;
  {
    AuditLog log(s);
    ASSERT_TRUE(log.append(statement(0)).ok());
    ASSERT_TRUE(log.flush(10s));
    before = fs::file_size(dir / "a.jsonl");
    ASSERT_GT(before, 100U);
    rlimit limited = saved;
    limited.rlim_cur = before + before / 2;  // room for half of the next record
    ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &limited), 0);
    ASSERT_TRUE(log.append(statement(1)).ok());  // the limit falls in the middle of its line
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (log.stats().write_errors == 0 && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(2ms);
    EXPECT_GE(log.stats().write_errors, 1U);
    EXPECT_EQ(fs::file_size(dir / "a.jsonl"), before);  // cut back: no partial line
    ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &saved), 0);
    while (log.stats().written < 2 && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(2ms);
    EXPECT_EQ(log.stats().written, 2U);
  }
  auto lines = lines_of(dir / "a.jsonl");
  ASSERT_EQ(lines.size(), 2U);
  auto r = verify_files({dir / "a.jsonl"});
  ASSERT_TRUE(r.ok()) << problem(r);
  EXPECT_EQ(r.chains[0].records, 2U);
}

TEST(AuditWriter, WriteFailureWithDropWritesRecordsDropped) {
  TempDir dir;
  auto s = settings(dir / "a.jsonl");
  s.on_failure = config::AuditOnFailure::drop;
  auto gate = std::make_shared<Gate>();
  gate->failures = 2;
  {
    AuditLog log(s, {{}, [gate](std::string_view op) { return (*gate)(op); }, "/dev/log"});
    gate->release();
    ASSERT_TRUE(log.append(statement(0)).ok());
    ASSERT_TRUE(log.flush(10s));
    int dropped = 0, sneaked_in = 0;
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (log.failing() && std::chrono::steady_clock::now() < deadline) {
      const AppendStatus st = log.append(statement(1)).status;
      dropped += st == AppendStatus::dropped ? 1 : 0;
      sneaked_in += st == AppendStatus::queued ? 1 : 0;
      std::this_thread::sleep_for(5ms);
    }
    ASSERT_FALSE(log.failing());
    ASSERT_GT(dropped, 0);
    EXPECT_EQ(log.stats().dropped, static_cast<std::uint64_t>(dropped));
    const auto wait_until = std::chrono::steady_clock::now() + 10s;
    const std::uint64_t want = 2 + static_cast<std::uint64_t>(sneaked_in);
    while (log.stats().written < want && std::chrono::steady_clock::now() < wait_until)
      std::this_thread::sleep_for(5ms);
    auto lines = lines_of(dir / "a.jsonl");
    ASSERT_EQ(lines.size(), want);
    EXPECT_NE(lines[1].find(R"("dropped":)" + std::to_string(dropped) + ","), std::string::npos) << lines[1];
  }
  EXPECT_TRUE(verify_files({dir / "a.jsonl"}).ok());
}

// A Unix datagram socket bound at `path`, standing in for /dev/log; reads time out after `timeout`. -1 on
// failure.
int syslog_capture(const fs::path& path, timeval timeout) {
  const int sock = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (sock < 0) return -1;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path.c_str());
  if (::bind(sock, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(sock);
    return -1;
  }
  ::setsockopt(sock, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  return sock;
}

TEST(AuditWriter, SyslogGetsRfc5424AndCheckpoints) {
  TempDir dir;
  const fs::path sock_path = dir / "log.sock";
  const int sock = syslog_capture(sock_path, {5, 0});
  ASSERT_GE(sock, 0);
  auto s = settings(dir / "a.jsonl");
  s.sinks = {config::AuditSink::file, config::AuditSink::syslog};
  {
    AuditLog log(s, {{}, {}, sock_path});
    EXPECT_EQ(append_n(log, 3), 3);
  }  // the final checkpoint goes to syslog only
  std::vector<std::string> got;
  for (int i = 0; i < 4; ++i) {
    char buf[65536];
    const ssize_t n = ::recv(sock, buf, sizeof buf, 0);
    ASSERT_GT(n, 0);
    got.emplace_back(buf, static_cast<std::size_t>(n));
  }
  ::close(sock);
  const auto file_lines = lines_of(dir / "a.jsonl");
  ASSERT_EQ(file_lines.size(), 3U);
  for (int i = 0; i < 3; ++i) {
    EXPECT_TRUE(got[i].starts_with("<86>1 ")) << got[i];
    EXPECT_NE(got[i].find(" pgwarden "), std::string::npos);
    EXPECT_TRUE(got[i].ends_with(file_lines[i])) << got[i];  // the same chained line
  }
  EXPECT_NE(got[3].find(R"("seq":3,"event":"checkpoint")"), std::string::npos) << got[3];
  // The syslog capture serves as checkpoints for the file.
  const fs::path capture = dir / "syslog.txt";
  write_lines(capture, got);
  VerifyOptions o;
  o.checkpoints = {capture};
  auto r = verify_files({dir / "a.jsonl"}, o);
  ASSERT_TRUE(r.ok()) << problem(r);
  EXPECT_EQ(r.chains[0].checkpoints_matched, 4U);
}

TEST(AuditWriter, CheckpointsTellRotationFromDeletedFilesAndLines) {
  TempDir dir;
  const fs::path sock_path = dir / "log.sock";
  const int sock = syslog_capture(sock_path, {0, 100'000});
  ASSERT_GE(sock, 0);
  // Drained as it comes: a Unix datagram socket queues only a few messages (net.unix.max_dgram_qlen).
  std::vector<std::string> got;
  std::atomic<bool> done{false};
  std::thread reader([&] {
    for (;;) {
      char buf[65536];
      const ssize_t n = ::recv(sock, buf, sizeof buf, 0);
      if (n > 0) {
        got.emplace_back(buf, static_cast<std::size_t>(n));
      } else if (done.load()) {
        return;
      }
    }
  });
  auto s = settings(dir / "a.jsonl");
  s.sinks = {config::AuditSink::file, config::AuditSink::syslog};
  s.rotate_size = 2000;
  s.rotate_keep = 2;
  {
    AuditLog log(s, {{}, {}, sock_path});
    for (int i = 0; i < 60; ++i)  // one at a time: rotations fall between batches and inside them
      ASSERT_EQ(append_n(log, 1, i), 1) << i;
  }
  done = true;
  reader.join();
  ::close(sock);
  const fs::path capture = dir / "syslog.txt";
  write_lines(capture, got);
  ASSERT_TRUE(fs::exists(dir / "a.jsonl.2"));
  const std::vector<fs::path> kept{dir / "a.jsonl", dir / "a.jsonl.1", dir / "a.jsonl.2"};
  VerifyOptions o;
  o.checkpoints = {capture};
  auto r = verify_files(kept, o);
  ASSERT_TRUE(r.ok()) << problem(r);
  EXPECT_TRUE(r.chains[0].starts_after_rotation);
  EXPECT_GT(r.chains[0].checkpoints_older, 0U);  // they named records in files rotation removed

  // The oldest kept file deleted by hand: without checkpoints it looks like one more rotation.
  EXPECT_TRUE(verify_files({dir / "a.jsonl", dir / "a.jsonl.1"}).ok());
  expect_problem(verify_files({dir / "a.jsonl", dir / "a.jsonl.1"}, o), dir / "a.jsonl.1", 1, "are missing");

  // The first lines of the oldest file deleted.
  auto oldest = lines_of(dir / "a.jsonl.2");
  ASSERT_GT(oldest.size(), 2U);
  oldest.erase(oldest.begin(), oldest.begin() + 2);
  write_lines(dir / "a.jsonl.2", oldest);
  EXPECT_TRUE(verify_files(kept).ok());
  expect_problem(verify_files(kept, o), dir / "a.jsonl.2", 1, "are missing");
}

TEST(AuditVerifyInput, CheckpointLinesInALogAreNoEvidenceAndOnlyRegularFilesAreRead) {
  TempDir dir;
  auto s = settings(dir / "a.jsonl");
  {
    AuditLog log(s);
    EXPECT_EQ(append_n(log, 5), 5);
  }
  auto lines = lines_of(dir / "a.jsonl");
  // A checkpoint written into the log by whoever edits it witnesses nothing (a stdout capture holds real
  // ones, and still verifies).
  auto cp = checkpoint_line(std::chrono::system_clock::now(), s.instance, 5,
                            *from_hex(lines[4].substr(lines[4].size() - 66, 64)));
  cp.pop_back();
  lines.push_back(cp);
  write_lines(dir / "a.jsonl", lines);
  auto r = verify_files({dir / "a.jsonl"});
  ASSERT_TRUE(r.ok()) << problem(r);
  EXPECT_EQ(r.chains[0].checkpoints_matched, 0U);
  // A FIFO or a device in a log's place is refused, not read for ever.
  ASSERT_EQ(::mkfifo((dir / "a.jsonl.1").c_str(), 0600), 0);
  auto fifo = verify_files({dir / "a.jsonl", dir / "a.jsonl.1"});
  ASSERT_FALSE(fifo.ok());
  EXPECT_NE(fifo.problem->message.find("not a regular file"), std::string::npos) << problem(fifo);
  auto device = verify_files({"/dev/zero"});
  ASSERT_FALSE(device.ok());
  EXPECT_NE(device.problem->message.find("not a regular file"), std::string::npos) << problem(device);
}

TEST(AuditVerifyInput, ARenamedInstanceContinuesInTheSameFile) {
  TempDir dir;
  auto s = settings(dir / "a.jsonl");
  const std::string first_name = s.instance;
  {
    AuditLog log(s);
    EXPECT_EQ(append_n(log, 4), 4);
  }
  s.instance = "renamed";
  {
    AuditLog log(s);
    EXPECT_EQ(append_n(log, 3, 4), 3);
  }
  auto r = verify_files({dir / "a.jsonl"});
  ASSERT_TRUE(r.ok()) << problem(r);
  std::map<std::string, ChainSummary> by;
  for (const auto& c : r.chains)
    by[c.instance] = c;
  ASSERT_EQ(by.size(), 2U);
  EXPECT_EQ(by[first_name].records, 4U);
  EXPECT_EQ(by["renamed"].first_seq, 5U);
  EXPECT_EQ(by["renamed"].records, 3U);
}

TEST(AuditWriter, MissingSyslogSocketIsAFailure) {
  TempDir dir;
  auto s = settings(dir / "a.jsonl");
  s.sinks = {config::AuditSink::file, config::AuditSink::syslog};
  s.retry_interval = 10s;
  AuditLog log(s, {{}, {}, dir / "no-such.sock"});
  std::atomic<int> failed{0};
  ASSERT_TRUE(log.append(statement(0), [&](bool ok) { failed += ok ? 0 : 1; }).ok());
  ASSERT_TRUE(log.flush(10s));
  EXPECT_EQ(failed.load(), 1);
  EXPECT_TRUE(log.failing());
  EXPECT_EQ(log.append(statement(1)).status, AppendStatus::failing);
}

// ---------------------------------------------------------------------------------------------------------------
// Verify

class AuditVerify : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = settings(dir_ / "a.jsonl");
    s.sinks = {config::AuditSink::file};
    AuditLog log(s);
    EXPECT_EQ(append_n(log, 10), 10);
  }
  fs::path file() const { return dir_ / "a.jsonl"; }
  TempDir dir_;
};

TEST_F(AuditVerify, OneChangedByteNamesTheRecord) {
  auto lines = lines_of(file());
  lines[4][lines[4].find("VALUES (4)") + 8] = '7';
  write_lines(file(), lines);
  auto r = verify_files({file()});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.problem->line, 5U);
  EXPECT_EQ(r.problem->seq, 5U);
  EXPECT_EQ(r.problem->to_string(), file().string() +
                                        ":5: seq 5: hash does not match the record: the line was "
                                        "changed (no --hmac-key-file given: checked as a SHA-256 "
                                        "chain)");
}

TEST_F(AuditVerify, AChangedHashOrPrevNamesTheRecord) {
  auto lines = lines_of(file());
  const auto at = lines[2].rfind("\"}");
  lines[2][at - 1] = lines[2][at - 1] == '0' ? '1' : '0';
  write_lines(file(), lines);
  auto r = verify_files({file()});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.problem->line, 3U);
}

TEST_F(AuditVerify, ADeletedLineNamesWhereItWas) {
  auto lines = lines_of(file());
  lines.erase(lines.begin() + 6);
  write_lines(file(), lines);
  auto r = verify_files({file()});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.problem->line, 7U);
  EXPECT_EQ(r.problem->seq, 7U);
  EXPECT_NE(r.problem->message.find("expected seq 7, found 8"), std::string::npos) << problem(r);
}

TEST_F(AuditVerify, TwoSwappedLinesNameTheFirst) {
  auto lines = lines_of(file());
  std::swap(lines[3], lines[4]);
  write_lines(file(), lines);
  auto r = verify_files({file()});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.problem->line, 4U);
  EXPECT_EQ(r.problem->seq, 4U);
}

TEST_F(AuditVerify, ACutTailNeedsCheckpoints) {
  const auto all = lines_of(file());
  write_all(dir_ / "checkpoints.txt", "<86>1 2026-11-22T18:00:00Z host pgwarden 1 audit - " +
                                          checkpoint_line(std::chrono::system_clock::now(), "unit", 10,
                                                          *from_hex(all[9].substr(all[9].size() - 66, 64))));
  auto cut = all;
  cut.resize(7);
  write_lines(file(), cut);
  EXPECT_TRUE(verify_files({file()}).ok());  // without checkpoints a cut tail looks like a shorter log
  VerifyOptions o;
  o.checkpoints = {dir_ / "checkpoints.txt"};
  auto r = verify_files({file()}, o);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.problem->file, file());
  EXPECT_EQ(r.problem->line, 8U);
  EXPECT_EQ(r.problem->seq, 8U);
  EXPECT_NE(r.problem->message.find("the chain ends at seq 7"), std::string::npos) << problem(r);
  write_lines(file(), all);
  EXPECT_TRUE(verify_files({file()}, o).ok()) << problem(verify_files({file()}, o));
}

TEST_F(AuditVerify, ARewrittenChainDiffersFromTheCheckpoint) {
  const auto all = lines_of(file());
  write_all(dir_ / "checkpoints.txt", all[5] + "\n");  // a chained line from another sink is a witness too
  // Rewrite seq 6 and re-hash from there on, as someone without an HMAC key could.
  Chain chain{Hasher{}, 5, *from_hex(all[4].substr(all[4].size() - 66, 64))};
  std::vector<std::string> forged(all.begin(), all.begin() + 5);
  for (int i = 5; i < 10; ++i) {
    std::string body = all[i].substr(0, all[i].find(",\"prev\":"));
    if (i == 5) body.replace(body.find("VALUES (5)"), 10, "VALUES (9)");
    auto line = chain.seal(body, static_cast<std::uint64_t>(i + 1));
    forged.push_back(line->substr(0, line->size() - 1));
  }
  write_lines(file(), forged);
  EXPECT_TRUE(verify_files({file()}).ok());
  VerifyOptions o;
  o.checkpoints = {dir_ / "checkpoints.txt"};
  auto r = verify_files({file()}, o);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.problem->line, 6U);
  EXPECT_NE(r.problem->message.find("rewritten"), std::string::npos) << problem(r);
}

TEST_F(AuditVerify, SeveralInstancesAreSeparateChains) {
  auto s = settings(dir_ / "b.jsonl");
  s.instance = "other";
  {
    AuditLog log(s);
    EXPECT_EQ(append_n(log, 3), 3);
  }
  auto r = verify_files({dir_ / "b.jsonl", file()});
  ASSERT_TRUE(r.ok()) << problem(r);
  ASSERT_EQ(r.chains.size(), 2U);
  EXPECT_EQ(r.chains[0].instance, "other");
  EXPECT_EQ(r.chains[0].records, 3U);
  EXPECT_EQ(r.chains[1].records, 10U);
}

TEST_F(AuditVerify, GarbageAndTornLinesAreNamed) {
  auto lines = lines_of(file());
  lines[2] = "{\"not\":\"a record\"}";
  write_lines(file(), lines);
  auto r = verify_files({file()});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.problem->line, 3U);
  write_all(file(), lines_of(file())[0] + "\n" + lines_of(file())[1]);
  r = verify_files({file()});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.problem->line, 2U);
  EXPECT_NE(r.problem->message.find("torn"), std::string::npos);
}

}  // namespace
}  // namespace pgw::audit
