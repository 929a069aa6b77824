// The running proxy: worker threads (one io_context each), listeners, signals, reload and staged shutdown.
#pragma once

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>

#include <atomic>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <thread>
#include <vector>

#include "auth_query.hpp"
#include "cancel_registry.hpp"
#include "client_limits.hpp"
#include "event_counters.hpp"
#include "handover.hpp"
#include "log.hpp"
#include "login_backoff.hpp"
#include "pgw/audit/classify.hpp"
#include "pgw/audit/log.hpp"
#include "pgw/pool/pool.hpp"
#include "runtime.hpp"
#include "session_info.hpp"

namespace pgw::proxy {

namespace asio = boost::asio;
class ClientSession;
class MetricsEndpoint;

// One thread, one io_context: a session and everything it touches live here, so the data path takes no lock.
class Worker {
 public:
  explicit Worker(std::size_t index) : index_(index), guard_(asio::make_work_guard(io_)) {}
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;
  ~Worker();
  asio::io_context& io() noexcept { return io_; }
  std::size_t index() const noexcept { return index_; }

  // Called on this worker's thread only.
  std::list<ClientSession*>::iterator add(ClientSession* s) { return sessions_.insert(sessions_.end(), s); }
  void remove(std::list<ClientSession*>::iterator it) { sessions_.erase(it); }
  const std::list<ClientSession*>& sessions() const noexcept { return sessions_; }
  // The audit classifier's cache is per thread: no lock on the data path.
  audit::Classifier& classifier() noexcept { return classifier_; }
  // True once the io_context is being destroyed with sessions still in it (a forced exit): their frames are
  // destroyed without being resumed, and must not reach into each other.
  bool tearing_down() const noexcept { return tearing_down_; }

  void start();
  void stop();
  void join();
  // Every second: client_idle_timeout and idle_transaction_timeout of this worker's sessions.
  void start_janitor();

 private:
  void janitor_step();

  std::size_t index_;
  std::thread thread_;
  // What the sessions' frames reach when the io_context destroys them outlives it: declared before it.
  std::list<ClientSession*> sessions_;
  audit::Classifier classifier_;
  bool tearing_down_ = false;
  std::unique_ptr<asio::steady_timer> janitor_;  // reset before the io_context goes (~Worker)
  asio::io_context io_{1};
  asio::executor_work_guard<asio::io_context::executor_type> guard_;
};

// SIGHUP held pending (blocked) on the calling thread, or let through: main() holds it until Server::run has
// its handler in place, so one that comes during a rolling restart's wait is a reload, not the end.
void hold_sighup(bool held) noexcept;

class Server {
 public:
  // `taken`: listening sockets and held connections taken over from the previous process (rolling restart).
  explicit Server(std::shared_ptr<const Runtime> runtime, handover::Taken taken = {});
  ~Server();

  // Binds the listeners (throws with a clear message if it cannot), runs until shut down; returns the exit
  // code.
  int run();

  // Read by sessions (any thread).
  std::shared_ptr<const Runtime> runtime() const;
  CancelRegistry& cancels() noexcept { return cancels_; }
  pool::PoolManager& pools() noexcept { return *pools_; }
  // The audit log (nullptr with audit.enabled = false) and the settings it was opened with (restart only).
  audit::AuditLog* audit() noexcept { return audit_.get(); }
  const config::AuditSettings& audit_settings() const noexcept { return audit_settings_; }
  bool draining() const noexcept { return draining_.load(std::memory_order_acquire); }
  // Draining because a new process took the listeners over: logins in progress finish, and each client is
  // closed after its next transaction or once idle for a second.
  bool handing_over() const noexcept { return handing_over_.load(std::memory_order_acquire); }
  // Sessions that exist (from accept to close): the process exits only when none is left.
  void session_created() noexcept { sessions_alive_.fetch_add(1, std::memory_order_acq_rel); }
  void session_destroyed();
  LoginBackoff& login_backoff() noexcept { return backoff_; }
  AuthQuery& auth_query() noexcept { return auth_query_; }
  std::string next_session_id();

  // Admission: false when max_client_conn is reached.
  bool try_admit_client();
  void client_left();

  // What a client's address alone decides, before TLS: the [[access]] rules that can be decided without the
  // user and database, and the per-address rate.
  struct AddressVerdict {
    bool admitted = true;
    std::string sqlstate;
    std::string message;  // what the client is told
    std::string reason;   // for the log and the audit record
  };
  AddressVerdict admit_address(const config::IpAddress& address, const Runtime& rt);
  AddressLimits& address_limits() noexcept { return address_limits_; }
  NameLimits& name_limits() noexcept { return name_limits_; }
  // A refusal before any session exists: logged and recorded as a refused audit event.
  void record_refusal(const std::string& address, std::uint16_t port, const AddressVerdict& verdict);

  // ---- Operations: the admin console, /metrics, reload (any thread unless said otherwise).
  EventCounters& events() noexcept { return events_; }
  int client_count() const noexcept { return clients_.load(std::memory_order_acquire); }
  // Re-reads the config file and every file it names; an empty result means it was applied. A config that
  // fails validation is refused whole and the running one stays.
  std::vector<config::Diagnostic> reload();
  // The admin console's SET: the running config with one key changed, applied like a reload.
  std::vector<config::Diagnostic> set_key(std::string_view key, std::string_view value);
  // Copies of every session's state, taken on each worker's own thread.
  asio::awaitable<std::vector<SessionInfo>> session_snapshot();
  // Per database: the pools' counters summed, and the rates of the last stats period (PgBouncer's avg_*:
  // per second for counts and bytes, mean microseconds for times).
  std::map<std::string, pool::CounterValues> database_totals() const;
  std::map<std::string, std::array<std::uint64_t, 7>> database_averages() const;
  // PAUSE [db] / KILL db / SUSPEND: new transactions of the database (all: nullopt) wait for RESUME.
  void pause(const std::optional<std::string>& database);
  void suspend();
  bool resume(const std::optional<std::string>& database);  // false when nothing was paused
  bool paused(std::string_view database) const noexcept;
  // Until every server connection of the database (all: nullopt) is back in its pool; false if RESUME came
  // first.
  asio::awaitable<bool> wait_servers_released(std::optional<std::string> database);
  void close_idle_servers(const std::optional<std::string>& database);
  void kill_database(const std::string& database);
  struct PauseState {
    bool paused_all = false;
    bool suspended = false;
    std::vector<std::string> paused_databases;
  };
  PauseState pause_state() const;
  // A CancelRequest for one of this process's clients: the backend serving it gets the cancel, or the request
  // it still waits with for a server connection is abandoned (answered 57014). False for a key this process
  // did not hand out. `log` says who asked.
  asio::awaitable<bool> cancel_local(protocol::CancelRequest key, asio::any_io_executor executor,
                                     const log::SessionLog& log);
  // SHUTDOWN from the console: the same drain as SIGTERM.
  void shutdown();
  // /metrics in the Prometheus text format 0.0.4.
  asio::awaitable<std::string> render_metrics();

 private:
  asio::awaitable<void> accept_loop(asio::ip::tcp::acceptor& acceptor);
  // Rolling restart, old side: hands the listeners to the process that asks, then drains.
  asio::awaitable<void> handover_loop();
  asio::awaitable<void> cancel_for_successor(protocol::CancelRequest key);
  // A new client connection (accepted, or held through a handover with `initial` bytes already read).
  void start_session(Worker& w, tls::tcp::socket socket, std::vector<std::uint8_t> initial);
  void bind_listeners(const config::Config& cfg);
  void on_signal(int signal);
  std::vector<config::Diagnostic> apply_config(std::shared_ptr<const config::Config> config,
                                               std::string_view what);
  void stats_period_step();
  void revoke_refused_clients();
  void begin_shutdown();
  void force_close_all();
  void maybe_finish();
  void stop_all();

  std::vector<std::unique_ptr<Worker>> workers_;
  std::unique_ptr<pool::PoolManager> pools_;
  config::AuditSettings audit_settings_;
  std::unique_ptr<audit::AuditLog> audit_;
  std::atomic<std::size_t> next_worker_{0};
  mutable std::mutex runtime_mutex_;
  std::mutex reload_mutex_;
  std::shared_ptr<const Runtime> runtime_;
  CancelRegistry cancels_;
  LoginBackoff backoff_;
  AddressLimits address_limits_;
  NameLimits name_limits_;
  AuthQuery auth_query_;
  std::vector<std::unique_ptr<asio::ip::tcp::acceptor>> acceptors_;
  std::unique_ptr<asio::signal_set> signals_;
  std::unique_ptr<asio::steady_timer> shutdown_timer_;
  std::atomic<bool> draining_{false};
  std::atomic<bool> handing_over_{false};
  std::atomic<int> sessions_alive_{0};
  std::atomic<int> accept_loops_{0};
  std::vector<int> inherited_listeners_;
  std::vector<handover::HeldConnection> held_connections_;
  std::unique_ptr<asio::local::stream_protocol::acceptor> handover_acceptor_;
  std::unique_ptr<asio::local::stream_protocol::socket> handover_peer_;  // open until exit: the new one waits
  std::atomic<bool> stopped_{false};
  std::atomic<int> clients_{0};
  std::atomic<std::uint64_t> session_counter_{0};
  std::string id_prefix_;
  EventCounters events_;
  // PAUSE / SUSPEND: the fast path reads only any_paused_.
  std::atomic<bool> any_paused_{false};
  mutable std::mutex pause_mutex_;
  bool paused_all_ = false;
  bool suspended_ = false;
  std::set<std::string, std::less<>> paused_databases_;
  void update_any_paused_locked();
  // SHOW STATS averages: the totals at the start of the last period and the rates over it.
  mutable std::mutex stats_mutex_;
  std::map<std::string, pool::CounterValues> period_start_;
  std::chrono::steady_clock::time_point period_started_at_ = std::chrono::steady_clock::now();
  std::map<std::string, std::array<std::uint64_t, 7>> averages_;
  std::unique_ptr<asio::steady_timer> stats_timer_;
  std::unique_ptr<MetricsEndpoint> metrics_;
  std::chrono::system_clock::time_point started_at_ = std::chrono::system_clock::now();
};

}  // namespace pgw::proxy
