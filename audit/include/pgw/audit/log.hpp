// The audit log: typed records, their JSON line with a hash chain, the writer thread with its sinks, and
// verify.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "pgw/config/config.hpp"

namespace pgw::audit {

// ---------------------------------------------------------------------------------------------------------------
// Records (SPEC "Audit record")

enum class Event : std::uint8_t {
  statement,        // an audited statement (outcome "pending" first with fsync = "every")
  connect,          // a client logged in
  disconnect,       // a client session ended
  auth_failed,      // bad password, unknown user, certificate refused
  refused,          // address, limit or TLS refusal
  transaction,      // COMMIT / ROLLBACK of a transaction that holds audited statements
  outcome,          // the outcome of an earlier "pending" statement record: `ref` is its seq
  records_dropped,  // on_failure = "drop": `dropped` records were lost before this one
  checkpoint,       // not chained: seq and hash of the last chained record, to the sinks other than file
  admin,            // an admin console command that changes something (RELOAD, SET, PAUSE, KILL, SHUTDOWN...)
};
std::string_view to_string(Event e) noexcept;
std::optional<Event> event_from_string(std::string_view s) noexcept;

struct TlsInfo {
  std::string version;                     // "TLSv1.3"
  std::string cipher;                      // "TLS_AES_256_GCM_SHA384"
  std::optional<std::string> client_cert;  // subject of the client certificate; nullopt = none (null)
};

// Bind parameters: "params":null (none), "params":"redacted", or an array of strings / nulls.
struct Params {
  enum class Kind : std::uint8_t { none, redacted, values };
  Kind kind = Kind::none;
  std::vector<std::optional<std::string>> values;  // Kind::values; nullopt = SQL NULL
};

// One audit record. nullopt is written as JSON null when the field belongs to the event (see
// fields_of_event), and the field is left out when it does not. Strings may hold any bytes.
struct Record {
  Event event = Event::statement;
  std::chrono::system_clock::time_point ts{};  // {} = stamped by AuditLog::append
  std::uint64_t seq = 0;                       // set by AuditLog::append
  std::optional<std::uint64_t> ref;            // outcome: seq of the statement record it completes
  std::string session;
  std::optional<std::string> client_addr;
  std::optional<std::uint16_t> client_port;
  std::optional<std::string> user;
  std::optional<std::string> database;
  std::optional<std::string> application_name;
  std::optional<TlsInfo> tls;  // nullopt = the client leg is not TLS ("tls":null)
  std::optional<std::string> server;
  std::optional<std::int32_t> backend_pid;
  // Optional: the members "session" through "backend_pid" as identity_members() rendered them, for a session
  // that writes many records with one identity. Where the event has all of them (statement, transaction),
  // this text is written in their place and the nine fields above are not read.
  std::string_view identity_members;
  std::optional<std::string> protocol;         // "simple" | "extended"
  std::optional<std::string> command;          // "INSERT", "COMMIT", ...
  std::optional<std::string> statement_class;  // "class": ddl | mod | routine | read | ...
  std::vector<std::string> objects;
  std::optional<std::string> statement;  // exactly as the client sent it
  Params params;
  std::string instance;  // set by AuditLog (audit.instance or the host name); ignored on input
  std::optional<bool> in_transaction;
  std::optional<std::string> outcome;  // "ok" | "error" | "pending" | ...
  std::optional<std::string> tag;      // CommandComplete tag
  std::optional<std::int64_t> rows;
  std::optional<std::string> sqlstate;
  std::optional<std::int64_t> duration_us;
  std::optional<std::string> reason;  // disconnect, auth_failed, refused: why (pgwarden's own words)
  std::uint64_t dropped = 0;          // records_dropped: how many records were lost
};

// The JSON keys a record of this event carries, in their fixed order, before "prev" and "hash".
std::vector<std::string_view> fields_of_event(Event e);

// The JSON text of a record up to (not including) ,"prev": `{"ts":"...","seq":42,...`. Invalid UTF-8 bytes
// are written as \u00XX (XX = the byte: valid UTF-8 is written as is, so \u0080-\u00ff only ever stand for
// raw bytes), control characters and DEL as \b \f \n \r \t or \u00XX, '"' and '\' as \" and \\.
std::string record_body(const Record& r);
// `,"session":...,"backend_pid":N`: those members of r exactly as record_body writes them, leading comma
// included (see Record::identity_members).
std::string identity_members(const Record& r);
// The same text in two parts, for a session whose server connection changes with every attach (transaction
// pooling) while its client stays: the client's members ("session" through "tls") appended to `out`, and the
// server connection's ("server", "backend_pid"). identity_members(r) == client part + server part.
void append_client_identity_members(std::string& out, const Record& r);
void append_server_identity_members(std::string& out, const std::optional<std::string>& server,
                                    std::optional<std::int32_t> backend_pid);
// Appends s as a JSON string literal (quotes included), escaped as above.
void append_json_string(std::string& out, std::string_view s);
// "2026-11-22T18:00:00.123456Z" (UTC, microseconds; no character that JSON escapes), as a string or appended.
std::string format_ts(std::chrono::system_clock::time_point t);
void append_ts(std::string& out, std::chrono::system_clock::time_point t);

// ---------------------------------------------------------------------------------------------------------------
// The hash chain

using Digest = std::array<unsigned char, 32>;
std::string to_hex(const Digest& d);
std::optional<Digest> from_hex(std::string_view hex);

// HMAC-SHA-256 with a key, plain SHA-256 without one (OpenSSL EVP). The algorithm is fetched once and its
// context reused for every record (an implicit fetch per call costs as much as hashing the record), so one
// Hasher must not be used by two threads at once; a copy has contexts of its own.
class Hasher {
 public:
  explicit Hasher(std::string key = {});
  Hasher(const Hasher& other);
  Hasher& operator=(const Hasher& other);
  Hasher(Hasher&&) noexcept;
  Hasher& operator=(Hasher&&) noexcept;
  ~Hasher();

  bool keyed() const noexcept { return !key_.empty(); }
  bool hash(std::string_view bytes, Digest& out) const noexcept;  // false: OpenSSL failed

 private:
  struct Contexts;
  std::string key_;
  std::unique_ptr<Contexts> contexts_;  // nullptr: OpenSSL could not set them up (hash() fails)
};

// Chains lines: line = body + ,"prev":"<hex>" + ,"hash":"<hex>"} where hash covers the bytes before ,"hash":
class Chain {
 public:
  explicit Chain(Hasher hasher, std::uint64_t last_seq = 0, Digest last_hash = {});
  // Returns the complete line (with '\n'), or nullopt when hashing failed; `seq` must be last_seq() + 1.
  std::optional<std::string> seal(std::string body, std::uint64_t seq);
  // The same in place: `body` grows by kSealBytes into the line; false (body unchanged) when hashing failed.
  bool seal_in_place(std::string& body, std::uint64_t seq);
  static constexpr std::size_t kSealBytes = 150;
  std::uint64_t last_seq() const noexcept { return last_seq_; }
  const Digest& last_hash() const noexcept { return last_hash_; }

 private:
  Hasher hasher_;
  std::uint64_t last_seq_;
  Digest last_hash_;
};

// A checkpoint line (not chained): {"ts":...,"seq":<last seq>,"event":"checkpoint","instance":...,
// "kept_from":<seq>,"hash":...}. `kept_from` (with a file sink): the oldest seq its files still hold, so that
// audit verify --checkpoints tells files deleted by rotation (rotate_keep) from files or lines deleted by
// hand.
std::string checkpoint_line(std::chrono::system_clock::time_point ts, std::string_view instance,
                            std::uint64_t last_seq, const Digest& last_hash,
                            std::optional<std::uint64_t> kept_from = std::nullopt);

// ---------------------------------------------------------------------------------------------------------------
// The writer

enum class AppendStatus : std::uint8_t {
  queued,      // on_durable will be called exactly once
  failing,     // on_failure = "block": records cannot be written now (refuse with 58030)
  queue_full,  // on_failure = "block": the writer is behind by queue_records / queue_size
  dropped,     // on_failure = "drop": counted, alarmed, and a records_dropped record follows later
  stopped,     // the log is shutting down
};
std::string_view to_string(AppendStatus s) noexcept;

struct Appended {
  AppendStatus status = AppendStatus::stopped;
  std::uint64_t seq = 0;  // when queued
  bool ok() const noexcept { return status == AppendStatus::queued; }
};

struct Stats {
  std::uint64_t appended = 0;      // records queued
  std::uint64_t written = 0;       // records written to every sink
  std::uint64_t dropped = 0;       // records lost under on_failure = "drop"
  std::uint64_t refused = 0;       // appends refused under on_failure = "block"
  std::uint64_t write_errors = 0;  // failed write / fsync / rotate attempts
  std::uint64_t fsyncs = 0;
  std::uint64_t rotations = 0;
  std::uint64_t checkpoints = 0;
  std::uint64_t queue_records = 0;  // waiting or being written
  std::uint64_t queue_bytes = 0;
  std::uint64_t last_seq = 0;        // last seq written
  std::string chain_head;            // hash of that record (the chain's head on disk)
  std::uint64_t fsync_us_total = 0;  // time spent in fsync
  std::uint64_t fsync_us_max = 0;
  std::uint64_t fsync_us_last = 0;
  bool failing = false;
  std::chrono::system_clock::time_point last_fsync{};
};

// Called on the writer thread once the record is durable as audit.fsync asks (every: fsynced; batch, off:
// written) with true, or with false when writing it failed (it stays queued and is written when writing works
// again: a queued record is never dropped, so seq stays dense). Called exactly once per queued record. Must
// not block: the proxy posts back to its own executor.
using OnDurable = std::function<void(bool ok)>;
// Problems the operator must see (write errors, drops, a torn tail cut off). Any thread; must not block.
using Alarm = std::function<void(std::string_view message)>;
// For tests: a fault injected before each write to a sink ("file", "syslog", "stdout"), each rotation
// ("rotate") and each fsync ("fsync"); a non-zero error code fails that operation. Runs on the writer thread.
using Fault = std::function<std::error_code(std::string_view operation)>;

struct AuditLogOptions {
  Alarm alarm;
  Fault fault;
  std::filesystem::path syslog_socket = "/dev/log";
};

class AuditLog {
 public:
  using Options = AuditLogOptions;

  // Opens the sinks, reads the key and continues the chain from the newest file (a torn last line is cut off,
  // with an alarm). Throws std::runtime_error when it cannot (start-up only).
  explicit AuditLog(const config::AuditSettings& settings, Options options = {});
  ~AuditLog();  // writes what is queued (bounded by one retry), a final checkpoint, fsyncs, joins
  AuditLog(const AuditLog&) = delete;
  AuditLog& operator=(const AuditLog&) = delete;

  // Thread-safe, never does I/O: stamps ts (unless set), renders the record's line on the calling thread,
  // assigns the next seq and queues the line. The record itself is not kept.
  Appended append(const Record& record, OnDurable on_durable = {});

  // Blocks until every record queued before the call was handled (written or failed), or the timeout.
  bool flush(std::chrono::milliseconds timeout);

  Stats stats() const;
  bool failing() const noexcept;
  const std::string& instance() const noexcept;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// ---------------------------------------------------------------------------------------------------------------
// Verification (`pgwarden audit verify`)

struct VerifyOptions {
  std::optional<std::string> hmac_key;  // the chain is an HMAC chain: recompute with this key
  std::vector<std::filesystem::path>
      checkpoints;  // files holding checkpoint (or chained) lines of other sinks
};

struct ChainSummary {
  std::string instance;
  std::uint64_t records = 0;
  std::uint64_t first_seq = 0;
  std::uint64_t last_seq = 0;
  std::vector<std::filesystem::path> files;  // in chain order
  std::uint64_t checkpoints_matched = 0;     // witnesses whose seq and hash were found in the chain
  std::uint64_t checkpoints_older = 0;       // witnesses older than the oldest kept record
  bool starts_after_rotation = false;        // first kept record is not seq 1 (older files rotated away)
};

struct VerifyProblem {
  std::filesystem::path file;
  std::uint64_t line = 0;  // 1-based; 0 = the file as a whole
  std::optional<std::uint64_t> seq;
  std::string message;
  std::string to_string() const;  // "FILE:LINE: seq N: message"
};

struct VerifyResult {
  std::vector<ChainSummary> chains;  // ordered by instance
  std::optional<VerifyProblem> problem;
  bool ok() const noexcept { return !problem; }
};

// Reads the files (a rotated set, several instances' logs), groups records into chains by instance, orders a
// chain's files by the seq of their first record, recomputes every hash, checks seq and prev, then checks the
// checkpoints. Reports the first broken record in chain order.
VerifyResult verify(const std::vector<std::filesystem::path>& files, const VerifyOptions& options);

}  // namespace pgw::audit
