// What a server connection still owes its client, message by message (PostgreSQL docs 55.2.3 and 55.2.4), so
// that the connection goes back to the pool only when nothing is pending, and pgwarden's own requests and
// answers fall in the right place in the stream. Pure: no I/O.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "pgw/protocol/messages.hpp"

namespace pgw::pool {

// A request whose answer has not fully arrived.
enum class Request : std::uint8_t {
  parse,               // ParseComplete | ErrorResponse
  bind,                // BindComplete | ErrorResponse
  describe_statement,  // ParameterDescription then RowDescription | NoData
  describe_portal,     // RowDescription | NoData
  execute,  // DataRow* then CommandComplete | EmptyQueryResponse | PortalSuspended | copy | ErrorResponse
  close,    // CloseComplete
  sync,     // ReadyForQuery
  query,    // any results, then ReadyForQuery
  function_call,  // FunctionCallResponse, then ReadyForQuery
  copy_marker,    // the client's first copy message: no answer of its own (see on CopyInResponse)
};

// Who sees the answer.
enum class Answer : std::uint8_t {
  forward,    // the client's own request
  swallow,    // pgwarden's own request (SET, ROLLBACK, reset): the client never sees the answer
  hidden,     // pgwarden's own request on the client's behalf (a Parse it injected before a Bind): success is
              // silent, an ErrorResponse goes to the client, as the reason its next request fails
  quiet,      // pgwarden's own request whose failure is harmless (a Parse ahead of a rewritten DEALLOCATE):
              // neither its success nor its ErrorResponse reaches the client
  synthetic,  // not sent to the server: pgwarden's bytes go to the client when the entry reaches the head
  replace_error,  // sent so that the server fails where the client's request would have: the ErrorResponse is
                  // replaced by pgwarden's own
};

class Tracker {
 public:
  struct Entry {
    Request request = Request::sync;
    Answer answer = Answer::forward;
    std::uint32_t bytes_at = 0;  // synthetic / replace_error: offset of pgwarden's bytes in the side buffer
    std::uint32_t bytes_len = 0;
    std::uint64_t tag = 0;  // caller's data (a prepared statement a Parse made, to forget on error)
  };

  // What to do with one server message.
  struct Verdict {
    bool to_client = true;                  // forward it (false: swallow)
    std::span<const std::uint8_t> instead;  // replace_error: send these bytes instead of the message
    bool violation = false;  // the message does not fit what was asked: the stream is out of sync
    const char* why = "";
    bool ready = false;            // a ReadyForQuery: a sync point was answered
    bool copy_in_started = false;  // CopyInResponse: the client now streams copy data
    bool quiet = false;            // the message answers an Answer::quiet request
  };

  // Frontend side: the session sent (or, for synthetic, answered) a request.
  void push(Request r, Answer a = Answer::forward, std::uint64_t tag = 0);
  // A request pgwarden answers itself with these bytes (e.g. CloseComplete, ParseComplete of a statement the
  // server already has); its tag is reported like a sent request's if an error makes the server skip past it.
  void push_synthetic(Request r, std::span<const std::uint8_t> answer, std::uint64_t tag = 0);
  // A request whose server ErrorResponse is to be replaced by `error` (a complete ErrorResponse message).
  void push_replacing_error(Request r, std::span<const std::uint8_t> error);

  // Backend side: one complete server message (its type and body). Synthetic answers that became due before
  // it are appended to `due` first, in order. After an ErrorResponse, the tags of requests that failed or
  // that the server skipped (a Parse that created nothing) are appended to `failed_tags`.
  Verdict on_message(char type, protocol::Bytes body, std::vector<std::uint8_t>& due,
                     std::vector<std::uint64_t>& failed_tags);
  // Synthetic answers at the head with nothing pending before them (called after push()).
  void take_due(std::vector<std::uint8_t>& due);

  bool idle() const noexcept { return count_ == 0; }
  // Nothing owed, not in a transaction, not copying, no extended-protocol message since the last Sync: the
  // connection may serve another client.
  bool clean() const noexcept {
    return count_ == 0 && status_ == protocol::backend::TransactionStatus::idle && !copy_in_ && !copy_out_ &&
           !sync_owed_;
  }
  // The server got extended-protocol messages after the last Sync: it may hold an implicit transaction (or,
  // after an error, discard everything) until a Sync comes, whatever the last ReadyForQuery said.
  bool sync_owed() const noexcept { return sync_owed_; }
  bool in_copy_in() const noexcept { return copy_in_; }
  bool in_copy() const noexcept { return copy_in_ || copy_out_; }
  protocol::backend::TransactionStatus status() const noexcept { return status_; }
  void set_status(protocol::backend::TransactionStatus s) noexcept { status_ = s; }
  std::size_t pending() const noexcept { return count_; }
  // Forget everything (a new server connection).
  void reset() noexcept;

 private:
  Entry& at(std::size_t i) noexcept { return ring_[(head_ + i) & (ring_.size() - 1)]; }
  const Entry& at(std::size_t i) const noexcept { return ring_[(head_ + i) & (ring_.size() - 1)]; }
  void push_entry(const Entry& e);
  void note_sent(Request r) noexcept;
  void pop() noexcept;
  void erase_at(std::size_t i) noexcept;
  std::span<const std::uint8_t> bytes_of(const Entry& e) const noexcept {
    return {side_.data() + e.bytes_at, e.bytes_len};
  }
  std::uint32_t store(std::span<const std::uint8_t> bytes);
  void drain_synthetic(std::vector<std::uint8_t>& due);

  std::vector<Entry> ring_ = std::vector<Entry>(16);  // power of two
  std::size_t head_ = 0;
  std::size_t count_ = 0;
  std::vector<std::uint8_t> side_;  // pgwarden's answer bytes; starts over when a push finds nothing pending
  protocol::backend::TransactionStatus status_ = protocol::backend::TransactionStatus::idle;
  bool copy_in_ = false;
  bool copy_out_ = false;
  bool sync_owed_ = false;
  bool skipping_ = false;  // an extended-protocol error with no Sync queued: the server discards until one
};

}  // namespace pgw::pool
