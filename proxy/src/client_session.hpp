// One client connection from accept to close: negotiation (TLS, startup, cancel), authentication, a server
// connection, and the relay between the two as two child coroutines on the worker's thread.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>

#include <list>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "cancel_registry.hpp"
#include "log.hpp"
#include "pgw/pool/server_connection.hpp"
#include "pgw/protocol/buffer.hpp"
#include "pgw/protocol/encoder.hpp"
#include "pgw/protocol/scanner.hpp"
#include "runtime.hpp"
#include "session_end.hpp"

namespace pgw::proxy {

namespace asio = boost::asio;
class Server;
class Worker;

class ClientSession : public std::enable_shared_from_this<ClientSession> {
 public:
  ClientSession(Server& server, Worker& worker, tls::tcp::socket socket);
  ~ClientSession();

  // The whole life of the connection; runs on the worker's thread. The coroutine frame owns the session
  // through `self` from the moment it is created, so no other owner is needed while it runs.
  static asio::awaitable<void> run(std::shared_ptr<ClientSession> self);

  // Called on the worker's thread by the shutdown sequence.
  void drain();        // close with 57P01 at the next point where no transaction is open
  void force_close();  // close now with 57P01 (shutdown_timeout passed)

 private:
  asio::awaitable<void> run_session();
  // Login phase: each returns false once the connection has been answered and must close.
  asio::awaitable<bool> negotiate();
  asio::awaitable<bool> authenticate();
  asio::awaitable<bool> attach_server();
  asio::awaitable<void> handle_cancel(protocol::CancelRequest key);

  // Relay phase.
  asio::awaitable<SessionEnd> relay();
  asio::awaitable<SessionEnd> frontend_pump();
  asio::awaitable<SessionEnd> backend_pump();
  asio::awaitable<SessionEnd> wait_for_wake();
  void finish(SessionEnd end);

  // Reads one startup-family packet (bounded by 10000 bytes) into client_in_.
  asio::awaitable<protocol::FrameResult> read_startup_packet();
  // Reads one typed message during login (bounded by max_login_message).
  asio::awaitable<protocol::FrameResult> read_login_message();
  asio::awaitable<bool> write_client(std::span<const std::uint8_t> bytes);
  // Sends a FATAL ErrorResponse made by pgwarden and returns false (the session ends).
  asio::awaitable<bool> refuse(std::string_view sqlstate, std::string message, std::string detail = {},
                               std::string hint = {});
  void send_fatal_best_effort(std::string_view sqlstate, std::string_view message,
                              std::string_view detail = {});
  bool idle() const noexcept;

  Server& server_;
  Worker& worker_;
  std::shared_ptr<const Runtime> rt_;
  std::list<ClientSession*>::iterator registration_;
  tls::Stream client_;
  std::shared_ptr<pool::ServerConnection> server_conn_;
  log::SessionLog log_;
  bool admitted_ = false;

  // Who the client is and what it asked for.
  std::string user_;
  std::string database_;
  std::vector<std::pair<std::string, std::string>> startup_parameters_;
  const config::DatabaseSettings* db_ = nullptr;
  std::optional<protocol::scram::Client::Keys> passthrough_;

  std::shared_ptr<CancelSlot> cancel_slot_;
  std::optional<protocol::CancelRequest> client_key_;

  protocol::Buffer client_in_;
  protocol::Buffer server_in_;
  protocol::Scanner client_scan_;
  protocol::Scanner server_scan_;
  std::vector<std::uint8_t> out_;

  // Protocol state shared by the two pumps (same thread, no lock).
  protocol::backend::TransactionStatus tx_status_ = protocol::backend::TransactionStatus::idle;
  std::uint32_t pending_syncs_ = 0;  // Query and Sync messages sent whose ReadyForQuery has not come back
  bool draining_ = false;
  SessionEnd wake_reason_ = SessionEnd::none;
  asio::steady_timer wake_;
  pool::Deadline login_deadline_;
  bool in_relay_ = false;
  bool client_writing_ = false;
  std::string violation_;
};

}  // namespace pgw::proxy
