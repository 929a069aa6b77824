// The running proxy: worker threads (one io_context each), listeners, signals, reload and staged shutdown.
#pragma once

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>

#include <atomic>
#include <list>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "auth_query.hpp"
#include "cancel_registry.hpp"
#include "client_limits.hpp"
#include "login_backoff.hpp"
#include "pgw/audit/classify.hpp"
#include "pgw/audit/log.hpp"
#include "pgw/pool/pool.hpp"
#include "runtime.hpp"

namespace pgw::proxy {

namespace asio = boost::asio;
class ClientSession;

// One thread, one io_context: a session and everything it touches live here, so the data path takes no lock.
class Worker {
 public:
  explicit Worker(std::size_t index) : index_(index), guard_(asio::make_work_guard(io_)) {}
  asio::io_context& io() noexcept { return io_; }
  std::size_t index() const noexcept { return index_; }

  // Called on this worker's thread only.
  std::list<ClientSession*>::iterator add(ClientSession* s) { return sessions_.insert(sessions_.end(), s); }
  void remove(std::list<ClientSession*>::iterator it) { sessions_.erase(it); }
  const std::list<ClientSession*>& sessions() const noexcept { return sessions_; }
  // The audit classifier's cache is per thread: no lock on the data path.
  audit::Classifier& classifier() noexcept { return classifier_; }

  void start();
  void stop();
  void join();
  // Every second: client_idle_timeout and idle_transaction_timeout of this worker's sessions.
  void start_janitor();

 private:
  void janitor_step();

  std::size_t index_;
  asio::io_context io_{1};
  asio::executor_work_guard<asio::io_context::executor_type> guard_;
  std::thread thread_;
  std::list<ClientSession*> sessions_;
  std::unique_ptr<asio::steady_timer> janitor_;
  audit::Classifier classifier_;
};

class Server {
 public:
  explicit Server(std::shared_ptr<const Runtime> runtime);
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
  const std::string& mock_seed() const noexcept { return mock_seed_; }
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

 private:
  asio::awaitable<void> accept_loop(asio::ip::tcp::acceptor& acceptor);
  void on_signal(int signal);
  void reload();
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
  std::atomic<bool> stopped_{false};
  std::atomic<int> clients_{0};
  std::atomic<std::uint64_t> session_counter_{0};
  std::string mock_seed_;
  std::string id_prefix_;
};

}  // namespace pgw::proxy
