// One client connection from accept to close: negotiation (TLS, startup, cancel), authentication, then the
// relay to whichever server connection the pool lends it (for the whole session, for each transaction, or for
// each statement), as child coroutines on the worker's thread.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/steady_timer.hpp>

#include <deque>
#include <list>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "cancel_registry.hpp"
#include "log.hpp"
#include "parking.hpp"
#include "pgw/pool/pool.hpp"
#include "pgw/pool/server_connection.hpp"
#include "pgw/pool/statements.hpp"
#include "pgw/protocol/buffer.hpp"
#include "pgw/protocol/encoder.hpp"
#include "pgw/protocol/scanner.hpp"
#include "runtime.hpp"
#include "server.hpp"
#include "session_audit.hpp"
#include "session_end.hpp"
#include "session_info.hpp"
#include "settings.hpp"

namespace pgw::proxy {

namespace asio = boost::asio;
class Server;
class Worker;

class ClientSession : public std::enable_shared_from_this<ClientSession> {
 public:
  // via_proxy: the peer is a trusted load balancer that sends a PROXY header first.
  // `initial`: bytes already read from the client (a connection held through a rolling restart).
  ClientSession(Server& server, Worker& worker, tls::tcp::socket socket, bool via_proxy,
                std::vector<std::uint8_t> initial = {});
  ~ClientSession();

  // Starts the whole life of the connection on the worker's thread. The coroutine frame owns the session
  // through `self` from the moment it is created, so no other owner is needed while it runs.
  static void start(std::shared_ptr<ClientSession> session);

  // Called on the worker's thread by the shutdown sequence and the janitor.
  void drain();        // close with 57P01 at the next point where no transaction is open
  void force_close();  // close now with 57P01 (shutdown_timeout passed)
  void check_timeouts(pool::Clock::time_point now);
  // After a reload: closes the client with 28000 if the new access rules no longer allow it.
  void revoke_if_refused(const Runtime& rt);
  // Admin KILL of this client's database: closed now with 57P01.
  void kill() { force_close(); }
  // A forced exit, before the io_context goes: a parked server side can never be woken. Its frames (which own
  // this session) go to the io_context to be destroyed with the rest.
  void drop_parked_backend() noexcept { backend_park_.drop(); }
  // For SHOW CLIENTS / SERVERS.
  SessionInfo info() const;
  const std::string& database() const noexcept { return database_; }

 private:
  static asio::awaitable<void> run(std::shared_ptr<ClientSession> self);
  asio::awaitable<void> run_session();
  // Login phase: each returns false once the connection has been answered and must close.
  asio::awaitable<bool> negotiate();
  // Behind a trusted load balancer: reads the PROXY header, takes the client's address from it and applies
  // the address checks that the accept loop could not.
  asio::awaitable<bool> read_proxy_header();
  // The [[access]] rule for this client (address, TLS, database, user); nullptr when refused.
  const config::AccessRule* access_rule(const Runtime& rt) const;
  asio::awaitable<bool> authenticate();
  // Runs the exchange of a method that has one (SCRAM, md5, password) against `secret`.
  asio::awaitable<bool> run_auth_exchange(config::AuthMethod method,
                                          std::optional<protocol::UserSecret> secret);
  // A failed login: counts towards the address's back-off, audited as auth_failed, answered with sqlstate.
  asio::awaitable<bool> login_failed(std::string_view sqlstate, std::string message, std::string log_reason,
                                     std::string detail = {});
  asio::awaitable<bool> join_pool();
  asio::awaitable<bool> login_to_server();
  asio::awaitable<void> handle_cancel(protocol::CancelRequest key);
  // A CancelRequest that belongs to another instance of the fleet ([[peer]]), passed on as received.
  asio::awaitable<void> forward_cancel(const config::PeerSettings& peer, protocol::CancelRequest key);
  // An admin user on the virtual database "pgwarden": the console instead of a pool (admin.cpp).
  asio::awaitable<void> admin_loop();
  // Waits for a server connection of the pool, counting the wait; paused databases wait for RESUME first.
  asio::awaitable<pool::AcquireResult> acquire_server();

  // Relay phase. The client side runs in the session's own coroutine; the server side runs in a coroutine of
  // its own from an attach until the client has been without a server connection for a second (it parks
  // between transactions, so the next attach wakes it rather than spawning one), so an idle client is one
  // chain of frames waiting for its socket.
  asio::awaitable<SessionEnd> relay();
  asio::awaitable<SessionEnd> frontend_loop();
  asio::awaitable<SessionEnd> frontend_batch();  // reads what the client sent and relays it
  // Ends the relay with `reason` (the first reason wins): interrupts whatever the client side awaits.
  void stop_relay(SessionEnd reason);
  // Starts the server side, or wakes it where it is parked: server_conn_ is attached and its requests are on
  // the tracker.
  void start_backend();
  static asio::awaitable<void> backend_task(std::shared_ptr<ClientSession> self);
  asio::awaitable<SessionEnd> backend_pump();
  // Stops the server side, if it runs, and waits until it has.
  asio::awaitable<void> join_backend();
  // A server connection for the batch at hand: attach_idle() takes one idle now without a coroutine frame
  // (the common case), else attach() waits for one; attached() then sets the connection up for this client.
  bool attach_idle();
  // Returns with no connection attached (and SessionEnd::none) when the client cancelled while it waited.
  asio::awaitable<SessionEnd> attach();
  void wake_cancelled_wait();  // a CancelRequest came while attach() waits: it ends the wait now
  // The request attach() waited with (a message of `type`) was cancelled: answered 57014, and what PostgreSQL
  // would skip after an error is discarded.
  void abandon_request(char type);
  // A cancel came during attach()'s wait (the slot's verdict is per wait: false outside one).
  bool cancelled_in_queue() const { return cancel_slot_ && cancel_slot_->cancelled_in_queue(); }
  void attached(std::shared_ptr<pool::ServerConnection> connection);
  void detach_and_release(bool reusable);
  void aim_cancels();  // the client's CancelRequest goes to the attached server connection
  // A ReadyForQuery on its way to the client: a request answered, perhaps a transaction ended.
  void count_ready(protocol::Bytes body, bool nothing_pending);
  asio::awaitable<void> finish(SessionEnd end);

  // Sends pgwarden's own requests (settings, reset, rollback) and reads the answers, swallowed, until the
  // connection is clean again. Returns the server's error text if one of them failed, "" on success, and sets
  // `broken` if the connection cannot be reused.
  asio::awaitable<std::string> settle(std::shared_ptr<pool::ServerConnection> conn, bool& broken);
  // The SET / RESET statements that bring `conn` in line with this client's settings; "" if nothing differs.
  // `keyable` (if given) turns false when a tracked setting is one the server does not report: a change to it
  // would not show, so the connection must not carry this client's settings key.
  std::string settings_diff(const pool::ServerConnection& conn, bool* keyable = nullptr) const;
  void note_applied(pool::ServerConnection& conn);

  // Frontend translation of one client message into what goes to the server.
  bool translate(char type, protocol::Bytes body, protocol::Bytes wire);
  // Without a server connection: answers what needs none (a standalone prepare, a statement Close, Sync).
  bool answer_locally(char type, protocol::Bytes body);
  // SQL "DEALLOCATE name" of one of this client's protocol-level statements: sent for the server's name.
  bool rewrite_deallocate(std::string_view sql, pool::Request request);
  void emit_wire(protocol::Bytes wire);
  void emit_replaced();  // the current message is not forwarded as is
  void ensure_prepared(const pool::PreparedStatement& statement);
  // A request the server failed or skipped: its statement leaves the connection's cache, and a named Parse
  // of the client's leaves its name free.
  void failed_request(pool::ServerConnection& conn, std::uint64_t tag);
  // The client sends faster than it reads: see max_pending_requests.
  bool backlogged() const noexcept;
  // The access rule's clientcert holds for this connection's certificate.
  bool client_cert_satisfies(config::ClientCert required, const config::AuthSettings& auth) const;
  // The login back-off holds for this address: the 53300 message and detail.
  std::optional<std::pair<std::string, std::string>> backed_off() const;
  // Prepares it on the attached server connection under pgwarden's name, whatever its cache says.
  // The Parse's tracker tag is `tag`, or the statement's own (0).
  void prepare_on_server(const pool::PreparedStatement& statement, pool::Answer answer,
                         std::uint64_t tag = 0);
  void refuse_request(pool::Request request, std::string_view sqlstate, std::string_view message,
                      std::string_view hint);

  // Client output: one writer at a time, in the tracker's order.
  asio::awaitable<bool> flush_outbox();
  asio::awaitable<bool> write_client_direct(std::span<const std::uint8_t> bytes);
  bool client_write_failed(const boost::system::error_code& ec);  // logs; false

  // Reads one startup-family packet (bounded by 10000 bytes) into client_in_.
  asio::awaitable<protocol::FrameResult> read_startup_packet();
  // Reads one whole typed message of at most `max` bytes into client_in_ (login messages are tiny; the
  // console's commands get proxy.max_packet_size).
  asio::awaitable<protocol::FrameResult> read_login_message(std::uint32_t max);
  asio::awaitable<bool> write_client(std::span<const std::uint8_t> bytes);
  // Sends a FATAL ErrorResponse made by pgwarden and returns false (the session ends).
  asio::awaitable<bool> refuse(std::string_view sqlstate, std::string message, std::string detail = {},
                               std::string hint = {});
  void send_fatal_best_effort(std::string_view sqlstate, std::string_view message,
                              std::string_view detail = {});
  bool idle_point() const noexcept;

  // What only the login needs: freed once the session is ready, so an idle client does not carry it.
  struct LoginState {
    explicit LoginState(const asio::any_io_executor& executor)
        : login_deadline(executor), handshake_deadline(executor) {}
    pool::Deadline login_deadline;
    pool::Deadline handshake_deadline;  // until the startup packet is in
    // Behind a load balancer: refused on its address, answered at the first packet.
    std::optional<Server::AddressVerdict> early_refusal;
    std::optional<protocol::scram::Client::Keys> passthrough;  // the SCRAM keys the client proved
    std::optional<std::string> client_password;                // sent in clear (password method)
  };

  Server& server_;
  Worker& worker_;
  std::shared_ptr<const Runtime> rt_;
  std::list<ClientSession*>::iterator registration_;
  tls::Stream client_;
  log::SessionLog log_;
  bool admitted_ = false;

  // Who the client is and what it asked for.
  std::string user_;
  std::string server_user_;
  std::string database_;
  SettingList settings_;  // desired values; tracked ones follow the server's ParameterStatus
  const config::DatabaseSettings* db_ = nullptr;
  config::PoolMode mode_ = config::PoolMode::session;
  std::string peer_address_;   // the client's address without port (back-off, logs)
  bool auth_failure_ = false;  // the refusal being sent is a failed authentication
  config::IpAddress peer_ip_;  // the client's address, for access rules and limits
  bool via_proxy_ = false;
  std::optional<config::IpAddress> counted_address_;  // counted against its address's limits
  bool names_counted_ = false;                        // counted against its database's and user's limits
  config::ClientCert rule_client_cert_ = config::ClientCert::none;  // the matching rule's clientcert
  std::optional<config::AuthMethod> rule_method_;                   // the matching access rule's method

  bool admin_ = false;       // on the admin console
  bool admin_idle_ = false;  // the console waits for the next command
  std::chrono::system_clock::time_point connect_time_ = std::chrono::system_clock::now();
  std::uint16_t peer_port_ = 0;
  std::string local_addr_;  // the listener's address the client reached
  std::uint16_t local_port_ = 0;
  std::optional<pool::Clock::time_point> waiting_since_;  // waiting for a server connection

  std::shared_ptr<pool::Pool> pool_;
  pool::CounterShard* counters_ = nullptr;               // this worker's shard of the pool's counters
  pool::Clock::time_point query_started_{};              // the oldest request not yet answered; {} = none
  pool::Clock::time_point xact_started_{};               // the transaction's first request; {} = none open
  std::shared_ptr<pool::ServerConnection> server_conn_;  // attached now
  std::shared_ptr<pool::Pool::Ticket> ticket_;
  // After a request cancelled while queued: the client's messages that PostgreSQL would skip after an error.
  enum class Discard : std::uint8_t {
    none,
    until_sync,       // extended protocol: everything up to the next Sync, which is answered ReadyForQuery
    rest_of_message,  // the rest of a long CopyData that no COPY takes
  };
  Discard discard_ = Discard::none;
  pool::ClientStatements statements_;
  bool rename_statements_ = false;

  std::shared_ptr<CancelSlot> cancel_slot_;
  std::optional<protocol::CancelRequest> client_key_;

  protocol::Buffer client_in_;
  protocol::Buffer server_in_;
  protocol::Scanner client_scan_;
  protocol::Scanner server_scan_;
  std::vector<std::uint8_t> out_;         // login-phase messages
  std::vector<std::uint8_t> server_out_;  // a rewritten frontend batch
  std::size_t range_start_ = 0;           // start of the unrewritten run of client bytes in this batch
  std::size_t range_end_ = 0;
  bool rewriting_ = false;
  std::vector<std::uint8_t> outbox_;  // client-bound bytes waiting for the writer
  std::vector<std::uint8_t> due_;
  std::vector<std::uint64_t> failed_tags_;
  // The client's named Parses that may still await their answer, each under a tracker tag of its own: one
  // that fails, or that the server skips after an earlier error, leaves the name free again, as PostgreSQL
  // does. Cleared whenever the connection owes nothing (they all succeeded), and never more than the requests
  // a client may have pending.
  struct PendingParse {
    std::string name;
    std::uint64_t statement_tag = 0;
    std::uint64_t tag = 0;
    bool sent = false;  // to the server (else answered by pgwarden: the server has the statement)
  };
  std::deque<PendingParse> pending_parses_;
  std::uint64_t parse_seq_ = 0;
  std::vector<std::uint8_t> scratch_;
  bool client_writing_ = false;
  bool frontend_writing_ = false;
  bool streaming_to_client_ = true;  // verdict for the rest of a long server message

  bool draining_ = false;
  SessionEnd stop_reason_ = SessionEnd::none;        // why the relay ends, once something decided it
  asio::cancellation_signal* relay_stop_ = nullptr;  // owned by run()'s completion handler, which outlives us
  asio::cancellation_signal* backend_stop_ = nullptr;  // owned by backend_task's completion handler
  asio::steady_timer* backend_joined_ = nullptr;       // join_backend() waits on it
  Parking backend_park_{worker_.io()};                 // the server side waits here between transactions
  bool backend_parked_ = false;                        // ... or has been woken there and not yet resumed
  bool backend_running_ = false;
  bool backend_stopping_ = false;
  std::unique_ptr<LoginState> login_;  // null once logged in
  bool in_relay_ = false;
  pool::Clock::time_point last_activity_ = pool::Clock::now();  // the client's last bytes
  pool::Clock::time_point last_ready_{};                        // the last ReadyForQuery sent to it
  std::string violation_;
  std::string end_detail_;

  std::unique_ptr<SessionAudit> audit_;  // null with audit.enabled = false
  bool connected_ = false;               // login finished: the connect record is written
  bool audit_refused_ = false;           // translate() refused a message the audit log could not take
};

}  // namespace pgw::proxy
