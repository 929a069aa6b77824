// A logged-in connection to PostgreSQL, and the coroutine that makes one: resolve, connect, TLS per sslmode,
// authenticate, read the server's parameters and backend key.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "pgw/pool/statements.hpp"
#include "pgw/pool/tracker.hpp"
#include "pgw/protocol/messages.hpp"
#include "pgw/protocol/server_login.hpp"
#include "pgw/tls/context.hpp"
#include "pgw/tls/stream.hpp"

namespace pgw::pool {

namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;

// A deadline that closes whatever it guards when it passes. The closer must hold only weak references: the
// timer's handler may run after the guarded object is gone.
class Deadline {
 public:
  explicit Deadline(const asio::any_io_executor& executor)
      : timer_(executor), fired_(std::make_shared<bool>(false)) {}
  ~Deadline() {
    try {
      timer_.cancel();
    } catch (...) {  // cancel() reports failure by throwing; a destructor must not
    }
  }
  void arm(std::chrono::milliseconds after, std::function<void()> closer);
  void cancel() { timer_.cancel(); }
  bool fired() const noexcept { return *fired_; }

 private:
  asio::steady_timer timer_;
  std::shared_ptr<bool> fired_;
};

struct ServerConnection {
  explicit ServerConnection(tls::tcp::socket socket) : stream(std::move(socket)) {}

  tls::Stream stream;
  std::string host;             // as configured (for logs and TLS name checks)
  tls::tcp::endpoint endpoint;  // the address actually connected, for cancel requests
  std::string address;          // endpoint as text, for logs and audit records (made once, not per attach)
  std::vector<std::pair<std::string, std::string>> parameters;  // ParameterStatus, latest values
  // ParameterStatus at login: what a new client is told and gets, whatever earlier clients SET.
  std::vector<std::pair<std::string, std::string>> initial_parameters;
  protocol::CancelRequest backend_key;
  protocol::backend::TransactionStatus status = protocol::backend::TransactionStatus::idle;
  Clock::time_point created = Clock::now();
  Clock::time_point last_used = Clock::now();
  std::uint64_t id = 0;
  std::uint64_t generation = 0;  // the pool's server settings it was opened with (Pool::set_connect_request)
  Tracker tracker;               // what this connection still owes whoever is attached
  ServerStatements statements;   // protocol-level statements prepared here (transaction pooling)
  // Settings pgwarden SET on this connection that PostgreSQL does not report with ParameterStatus.
  std::vector<std::pair<std::string, std::string>> applied;
  // The settings (as ClientSession::settings_key) of the client this connection was last brought in line
  // with; empty once a ParameterStatus or a DISCARD ALL may have changed them since. A client whose key is
  // equal needs no SET on attach.
  std::string settings_key;
  std::atomic<int> cancels_in_flight{0};  // a cancel request for this backend is on its way
  // A NotificationResponse came in transaction or statement pooling: a LISTEN is active here, so the
  // connection closes at release rather than serve another client.
  bool listening = false;

  std::string describe() const;  // "host:port (pid N)"
  std::string_view parameter(std::string_view name) const noexcept;
  void set_parameter(std::string_view name, std::string_view value);
};

struct ConnectRequest {
  std::string host;
  std::uint16_t port = 5432;
  std::vector<std::pair<std::string, std::string>> startup;  // user, database and the client's settings
  protocol::ServerLogin::Credentials credentials;
  tls::ContextPtr tls_context;  // null when server_tls.mode = disable
  tls::ServerLegPolicy policy;
  std::chrono::milliseconds timeout{15000};
  std::uint32_t max_message = 1 << 20;  // largest login-phase message accepted from the server
};

// Why a connection could not be made. message is pgwarden's own text and never holds a secret; server_error
// holds what PostgreSQL itself said, when it said something after TLS was settled.
struct ConnectError {
  enum class Kind : std::uint8_t {
    none,
    resolve,         // the host name does not resolve
    unreachable,     // TCP connect failed
    timeout,         // server_connect_timeout passed
    tls_refused,     // TLS required but the server said 'N' or sent an error to SSLRequest
    tls_failed,      // handshake or certificate verification failed
    login_rejected,  // PostgreSQL refused the login (server_error set)
    credentials,     // no usable secret for what the server asks
    protocol,        // the server broke the protocol
  } kind = Kind::none;
  std::string message;
  protocol::ServerError server_error;
};

struct ConnectResult {
  std::shared_ptr<ServerConnection> connection;
  ConnectError error;
};

asio::awaitable<ConnectResult> connect(asio::any_io_executor executor, const ConnectRequest& request);

// A one-shot CancelRequest to the backend of a server connection (PostgreSQL docs 55.2.7), over TLS when the
// server leg uses it. Returns once the server has closed the connection or the timeout passed.
asio::awaitable<void> send_cancel(asio::any_io_executor executor, tls::tcp::endpoint endpoint,
                                  std::string host, protocol::CancelRequest key, tls::ContextPtr tls_context,
                                  tls::ServerLegPolicy policy, std::chrono::milliseconds timeout);

}  // namespace pgw::pool
