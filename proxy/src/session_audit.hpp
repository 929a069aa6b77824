// One client session's side of the audit log: classifies what the client sends, keeps the statements that
// await their outcome in the order the server answers them, and turns the answers into records. With fsync =
// "every" the session waits on durable() before a modifying statement goes to the server and before its
// result goes to the client, so nothing is committed unaudited and "acknowledged" implies "audited".
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/circular_buffer.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "pgw/audit/classify.hpp"
#include "pgw/audit/log.hpp"
#include "pgw/config/config.hpp"
#include "pgw/protocol/messages.hpp"

namespace pgw::proxy {

namespace asio = boost::asio;

// Who the client is, copied into every record of its session.
struct AuditIdentity {
  std::string session;
  std::optional<std::string> client_addr;
  std::optional<std::uint16_t> client_port;
  std::optional<std::string> user;
  std::optional<std::string> database;
  std::optional<audit::TlsInfo> tls;
};

class SessionAudit {
 public:
  // `sql_prepared_per_session`: SQL-level PREPAREs stay with this client (session pooling). Otherwise they
  // live on whichever server connection ran them, and every EXECUTE is recorded as a possible write.
  SessionAudit(audit::AuditLog& log, audit::Classifier& classifier, const config::AuditSettings& settings,
               asio::any_io_executor executor, bool sql_prepared_per_session = true);
  ~SessionAudit();
  SessionAudit(const SessionAudit&) = delete;
  SessionAudit& operator=(const SessionAudit&) = delete;

  AuditIdentity& identity() noexcept {
    client_identity_.clear();
    return identity_;
  }
  void set_sql_prepared_per_session(bool v) noexcept { sql_prepared_per_session_ = v; }
  // Transaction and statement pooling without pgwarden's renaming (max_prepared_statements = 0):
  // protocol-level statement names are the server connection's, not this client's.
  void set_named_per_session(bool v) noexcept { named_per_session_ = v; }
  void set_application_name(std::string_view name) {
    if (application_name_ == name) return;
    application_name_ = std::string(name);
    client_identity_.clear();
  }
  void set_server(std::string_view server, std::int32_t backend_pid);

  // Session events.
  void connected();
  void login_refused(std::string_view sqlstate, std::string_view reason, bool auth_failure);
  void disconnected(std::string_view reason);
  // An admin console command that changed something (or tried to): RELOAD, SET, PAUSE, KILL, SHUTDOWN...
  void admin_command(std::string_view command, std::string_view text, std::string_view sqlstate,
                     std::string_view reason);

  // Frontend, in message order. `in_transaction`: the server's last ReadyForQuery said T or E. False means
  // the statement must not reach the server: the audit log cannot take its record (on_failure = "block").
  bool on_query(std::string_view sql, bool in_transaction);
  void on_parse(std::string_view statement, std::string_view sql);
  void on_bind(const protocol::frontend::Bind& bind);
  bool on_execute(std::string_view portal, bool in_transaction);
  void on_close(char target, std::string_view name);
  void on_function_call(protocol::Bytes body);
  void on_sync();
  void on_copy_message();  // CopyData / CopyDone / CopyFail from the client
  // A parameter the server reported: standard_conforming_strings and client_encoding decide whether the
  // classifier can read this client's SQL as PostgreSQL will.
  void on_parameter(std::string_view name, std::string_view value);
  // Transaction pooling: the unnamed statement and the portals now belong to another client's connection.
  void detached();

  // Backend: a message the client sees (or pgwarden's error in place of the server's), in stream order.
  void on_backend(char type, protocol::Bytes body);
  // No more answers will come from this server connection (lost, discarded or the session ends): what still
  // waits for an outcome is recorded as "unknown".
  void abandon(std::string_view why);

  // Records could not be written and on_failure = "block": the session must end with 58030.
  bool broken() const noexcept { return broken_; }
  // fsync = "every": records appended that are not on disk yet.
  bool must_wait() const noexcept;
  // Waits until every record appended so far is durable; false when one could not be written.
  asio::awaitable<bool> durable();

 private:
  struct Durability;
  // statements: answers to count off; query_end: the ReadyForQuery of a Query or FunctionCall; sync: of a
  // Sync; copy: the first client copy message after a COPY's Execute (a Sync before it is never answered).
  enum class Kind : std::uint8_t { statements, query_end, sync, copy };
  enum class Control : std::uint8_t { none, commit, rollback, prepare_transaction };
  struct Pending {
    Kind kind = Kind::sync;
    std::uint32_t unaudited = 0;            // Kind::statements without records: answers to count off
    std::unique_ptr<audit::Record> record;  // an audited statement (a single one), until written
    // An audited statement: its record waits here, or was written as "pending" (pending_seq).
    bool audited() const noexcept { return record != nullptr || pending_seq != 0; }
    std::shared_ptr<const std::string> identity;  // record->identity_members points into it
    std::uint64_t pending_seq = 0;                // fsync = "every": its "pending" record
    std::chrono::steady_clock::time_point started{};
    // PREPARE / DEALLOCATE: remembered once the server completes it (rare, so kept out of line).
    std::unique_ptr<audit::Statement> effect;
    Control control = Control::none;  // COMMIT / ROLLBACK (not ROLLBACK TO) / PREPARE TRANSACTION
    bool extended = false;
    bool rows_from_tag = true;  // false: a FETCH ran it, whose tag counts rows fetched
    std::size_t bytes = 0;      // statement text held until the outcome
  };
  struct Portal {
    std::string sql;                               // from the unnamed statement
    std::shared_ptr<const std::string> named_sql;  // a named statement's text, shared, not copied per Bind
    bool known = false;
    bool ran = false;  // its audited statement was recorded: PostgreSQL ran it at that first Execute or FETCH
    audit::Params params;
    const std::string& text() const noexcept { return named_sql ? *named_sql : sql; }
  };

  bool audited(const audit::Statement& s) const noexcept;
  audit::Record base(audit::Event event) const;
  // The identity members of this session's statement and transaction records, rendered once per change (a
  // new attach, application_name) rather than per record; shared with the records still waiting for their
  // outcome, which keep the identity they were sent under. The client's part is rendered again only when it
  // changes, and the text goes into the same storage unless a waiting record still holds it: in transaction
  // pooling nearly every transaction lands on another server connection.
  const std::shared_ptr<std::string>& identity_text();
  // Queues one statement awaiting its answer; false when the log refuses it (on_failure = "block").
  bool push_statement(std::string_view text, const audit::Statement& s, bool in_transaction, bool extended,
                      audit::Params params);
  void push_unaudited(std::uint32_t n, bool extended);
  void push_end(Kind kind);
  void enqueue(Pending&& p);
  bool in_transaction_for(const audit::Statement& s, std::string_view text);
  void complete(Pending& p, std::string_view outcome, std::string_view tag, std::string_view sqlstate);
  // A statement record: the one the last completed statement left, else a new one.
  std::unique_ptr<audit::Record> take_record();
  void keep_record(std::unique_ptr<audit::Record> r);
  void pop_front();
  void skip_to_sync(bool extended);
  void forget_named_statements();
  // A FETCH or MOVE that may read a portal bound by the extended protocol (else an SQL cursor's, read-only).
  bool reads_bound_portal(const audit::Statement& s) const noexcept {
    return (s.command == "FETCH" || s.command == "MOVE") && (!named_portals_.empty() || portals_overflowed_);
  }
  // Such a FETCH or MOVE; false as push_statement().
  bool push_fetch(std::string_view text, const audit::Statement& fetch, bool extended);
  // A statement pgwarden cannot tell (an Execute of a portal it did not see): recorded as a possible write.
  bool push_possible_write(std::string_view text, bool extended);
  void transaction_ended(std::string_view command, std::string_view outcome);
  void statement_completed(const Pending& p, bool ok);
  const audit::SqlPrepared* sql_prepared_for(const std::vector<audit::Statement>& statements) const;
  // Classifies `sql` into statements_, resolving EXECUTE as sql_prepared_for() says.
  void classify(std::string_view sql);
  // Appends; with fsync = "every" and `wait`, the session waits for it. Returns false when on_failure =
  // "block" refuses it.
  bool append(const audit::Record& record, bool wait, std::uint64_t* seq = nullptr);

  audit::AuditLog& log_;
  audit::Classifier& classifier_;
  const config::AuditSettings& settings_;
  asio::any_io_executor executor_;
  std::shared_ptr<Durability> durability_;
  AuditIdentity identity_;
  std::optional<std::string> application_name_;
  std::optional<std::string> server_;
  std::optional<std::int32_t> backend_pid_;
  std::string client_identity_;                 // empty: render again
  std::shared_ptr<std::string> identity_text_;  // see identity_text()
  bool identity_stale_ = true;
  std::chrono::steady_clock::time_point connected_at_{};
  bool connect_recorded_ = false;
  bool sql_prepared_per_session_ = true;
  bool named_per_session_ = true;
  // The server reads strings differently from the classifier: record everything.
  bool lexing_unsafe_ = false;
  bool strings_unsafe_ = false;   // standard_conforming_strings = off
  bool encoding_unsafe_ = false;  // a client_encoding whose characters may hold a backslash byte

  audit::SqlPrepared sql_prepared_;
  std::vector<audit::Statement> statements_;  // scratch for classify()
  // A ring, so that a session in steady state queues and answers without allocating; it shrinks back
  // when it empties after a deep pipeline.
  boost::circular_buffer<Pending> pending_;
  // One completed statement's record, kept for the next: its statement text and objects keep their storage,
  // so a session that runs one statement at a time builds its records without allocating.
  std::unique_ptr<audit::Record> spare_record_;
  std::size_t pending_bytes_ = 0;
  std::size_t prepare_effects_in_flight_ = 0;
  std::string unnamed_statement_;
  bool unnamed_known_ = false;
  struct Named {
    // Shared with the portals bound from it, and charged against max_named_bytes until the last of them goes
    // (a portal outlives its statement's Close: pgwarden answers that Close itself). Null: beyond the budget.
    std::shared_ptr<const std::string> sql;
    bool known = true;  // false: pgwarden cannot tell which text the server holds under this name
  };
  // Looked up by the names in the client's messages (string_view) without building a string per message.
  struct NameHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
  };
  template <class T>
  using NameMap = std::unordered_map<std::string, T, NameHash, std::equal_to<>>;
  // Declared before the maps whose texts' deleters give their bytes back to it.
  std::size_t named_bytes_ = 0;
  NameMap<Named> named_statements_;
  Portal unnamed_portal_;
  NameMap<Portal> named_portals_;
  bool portals_overflowed_ = false;  // a portal may be open that is not in named_portals_ (max_named_portals)
  bool bound_since_end_ = false;     // a named portal was bound after the last Sync or Query
  // Frontend view, ahead of the server's answers: a BEGIN went out without its COMMIT/ROLLBACK yet, and the
  // statements since the last Sync or Query (one implicit transaction). Only for the in_transaction flag.
  bool frontend_in_block_ = false;
  std::uint32_t statements_in_unit_ = 0;
  // Backend view, from the answers: an audited statement completed in the transaction now open (explicit or
  // implicit), how many results it had, whether one was extended, and an ErrorResponse since ReadyForQuery.
  bool transaction_audited_ = false;
  std::uint32_t results_in_transaction_ = 0;
  bool extended_in_transaction_ = false;
  bool error_since_ready_ = false;
  bool broken_ = false;
};

}  // namespace pgw::proxy
