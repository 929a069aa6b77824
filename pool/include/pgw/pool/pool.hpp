// Pools of server connections shared by all worker threads: one budget per (database, user), FIFO waiters,
// connections opened on the waiter's own thread and handed across threads when needed, a janitor for
// lifetimes, idle timeouts, min_size and reserve.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "pgw/config/config.hpp"
#include "pgw/pool/counters.hpp"
#include "pgw/pool/pool_core.hpp"
#include "pgw/pool/server_connection.hpp"

namespace pgw::pool {

// A shared limit (max_db_connections, max_user_connections); 0 = unlimited.
class CountedSlots final : public SharedSlots {
 public:
  explicit CountedSlots(unsigned limit) : limit_(limit) {}
  bool try_take() override;
  void give_back() override { used_.fetch_sub(1, std::memory_order_acq_rel); }
  void set_limit(unsigned limit) { limit_.store(limit, std::memory_order_release); }
  unsigned used() const noexcept { return used_.load(std::memory_order_acquire); }

 private:
  std::atomic<unsigned> limit_;
  std::atomic<unsigned> used_{0};
};

// Both shared limits a pool is subject to.
class SlotPair final : public SharedSlots {
 public:
  SlotPair(CountedSlots& db, CountedSlots& user) : db_(db), user_(user) {}
  bool try_take() override;
  void give_back() override {
    db_.give_back();
    user_.give_back();
  }

 private:
  CountedSlots& db_;
  CountedSlots& user_;
};

struct AcquireResult {
  enum class Status : std::uint8_t { ok, timeout, failed, cancelled } status = Status::ok;
  std::shared_ptr<ServerConnection> connection;
  std::string
      error;  // failed: why the server could not be reached (pgwarden's words; server's in server_error)
  protocol::ServerError server_error;
};

class PoolManager;

class Pool : public std::enable_shared_from_this<Pool> {
 public:
  struct Stats {
    unsigned active = 0, idle = 0, connecting = 0, waiting = 0, total = 0;
    std::int64_t max_wait_ms = 0;
  };
  // A pending acquire that the session can abandon (client gone, shutdown).
  struct Ticket {
    std::weak_ptr<Pool> pool;
    WaiterId id = 0;
  };

  Pool(PoolManager& manager, std::string database, std::string user, PoolLimits limits, SharedSlots* slots);

  // Waits, FIFO, for a clean connection; it arrives bound to `executor` (the caller's worker).
  asio::awaitable<AcquireResult> acquire(std::size_t worker, asio::any_io_executor executor,
                                         std::shared_ptr<Ticket> ticket = {});
  // acquire()'s common case without its coroutine frame: a clean connection idle now, with nobody waiting
  // before the caller; nullptr otherwise (then acquire()).
  std::shared_ptr<ServerConnection> try_acquire(std::size_t worker, const asio::any_io_executor& executor);
  void cancel(const Ticket& ticket);
  // The client is done: reusable = clean (ReadyForQuery 'I', nothing pending, state reset as the mode needs).
  void release(std::shared_ptr<ServerConnection> connection, std::size_t worker, bool reusable);
  // A connection died while attached (or failed its liveness check).
  void discard(std::shared_ptr<ServerConnection> connection);

  // How connections of this pool are opened (credentials may change: passthrough keys learnt from a client).
  // When the server itself changes (host, port, dbname, server user, TLS policy: a reload after a failover),
  // idle connections close now and busy ones when their client releases them; none is handed out again.
  void set_connect_request(ConnectRequest request);
  // A login's credentials (SCRAM passthrough keys, a password): the rest of the request stays the reload's.
  void learn_credentials(protocol::ServerLogin::Credentials credentials);
  // New limits (reload, SET): a smaller pool closes its surplus idle connections now and busy ones as they
  // come back; a bigger one opens what its waiters need.
  void set_limits(PoolLimits limits);
  PoolLimits limits() const;
  void tick(Clock::time_point now);
  void replan();  // a shared slot freed up: waiters here may now connect
  bool evict_one_idle();
  Stats stats() const;
  // The idle connections, for SHOW SERVERS (taken under the pool's lock).
  struct IdleServer {
    tls::tcp::endpoint endpoint;
    std::int32_t backend_pid = 0;
    bool tls = false;
    Clock::time_point created;
    Clock::time_point idle_since;
  };
  std::vector<IdleServer> idle_servers() const;
  // Logged-in clients by state (SHOW POOLS cl_active / cl_waiting, /metrics): waiting for a server
  // connection, or for RESUME.
  struct ClientCounts {
    std::int64_t active = 0;
    std::int64_t waiting = 0;
  };
  ClientCounts client_counts(const Stats& stats) const noexcept;
  PoolCounters& counters() noexcept { return counters_; }
  const PoolCounters& counters() const noexcept { return counters_; }
  const std::string& database() const noexcept { return database_; }
  const std::string& user() const noexcept { return user_; }
  void close_all_idle();

 private:
  struct Waiter {
    explicit Waiter(const asio::any_io_executor& ex) : timer(ex, asio::steady_timer::time_point::max()) {}
    asio::steady_timer timer;
    AcquireResult result;
    bool done = false;
  };
  using Core = PoolCore<std::shared_ptr<ServerConnection>>;
  // A granted idle connection for the caller (`lock` is released): checked if it sat idle, bound to the
  // caller's executor; nullptr when the check found it dead (discarded).
  std::shared_ptr<ServerConnection> hand_out(Core::Acquire& a, Clock::time_point now,
                                             const asio::any_io_executor& executor,
                                             std::unique_lock<std::mutex>& lock);
  // Under mutex_: starts `count` connection attempts on `worker`'s io_context.
  void launch_locked(unsigned count, std::size_t worker);
  void learn_credentials_locked(protocol::ServerLogin::Credentials credentials);
  // Under mutex_: `count` attempts, one per worker in turn.
  void spread_launches_locked(unsigned count);
  // Under mutex_: takes idle connections until at most `keep_at_most` remain in all, and starts what the
  // waiters then need; the caller closes what it returns (close_trimmed) once the mutex is released.
  std::vector<std::shared_ptr<ServerConnection>> trim_locked(unsigned keep_at_most);
  void close_trimmed(std::vector<std::shared_ptr<ServerConnection>> connections);
  void deliver_locked(WaiterId id, AcquireResult result);
  asio::awaitable<void> run_connect(std::size_t worker);
  void close_later(std::shared_ptr<ServerConnection> c);

  PoolManager& manager_;
  const std::string database_;
  const std::string user_;
  mutable std::mutex mutex_;
  Core core_;
  std::unordered_map<WaiterId, std::shared_ptr<Waiter>> waiters_;
  ConnectRequest request_;
  std::string last_error_;
  protocol::ServerError last_server_error_;
  std::size_t next_worker_ = 0;
  std::uint64_t generation_ = 0;  // bumped when the server changes; older connections are not reused
  PoolCounters counters_;
};

// All pools, the shared limits, and the janitor. Lives as long as the server.
class PoolManager {
 public:
  // executors[i] runs worker i; the janitor runs on executors[0].
  explicit PoolManager(std::vector<asio::any_io_executor> executors);
  ~PoolManager();

  // The pool for (database, user), created on first use with these limits and connect settings.
  std::shared_ptr<Pool> get(const std::string& database, const std::string& user, const PoolLimits& limits,
                            unsigned max_db_connections, unsigned max_user_connections,
                            const std::function<ConnectRequest()>& make_request);
  // A reload: the pool's new limits and the shared limits of its database and user.
  void apply_limits(const std::string& database, const std::string& user, const PoolLimits& limits,
                    unsigned max_db_connections, unsigned max_user_connections);
  void start_janitor(std::chrono::milliseconds period);
  void stop();
  std::vector<std::shared_ptr<Pool>> pools() const;
  const asio::any_io_executor& executor(std::size_t worker) const { return executors_[worker]; }
  std::size_t workers() const noexcept { return executors_.size(); }
  // A shared slot of this database/user was freed: pools waiting on it re-plan.
  void slot_freed(const std::string& database, const std::string& user, const Pool* except);
  // Closes one idle connection of another pool of the same database or user, to make room.
  bool evict_for(const Pool& needy);
  bool stopping() const noexcept { return stopping_.load(std::memory_order_acquire); }

 private:
  void janitor_step();

  std::vector<asio::any_io_executor> executors_;
  mutable std::mutex mutex_;
  std::map<std::pair<std::string, std::string>, std::shared_ptr<Pool>> pools_;
  std::map<std::string, std::unique_ptr<CountedSlots>> db_slots_;
  std::map<std::string, std::unique_ptr<CountedSlots>> user_slots_;
  std::vector<std::unique_ptr<SlotPair>> slot_pairs_;
  std::unique_ptr<asio::steady_timer> janitor_;
  std::chrono::milliseconds period_{1000};
  std::atomic<bool> stopping_{false};
};

// The first bytes of a connection that sat idle: EOF or anything unasked means it is dead (PostgreSQL
// restarted, the connection was terminated). One non-blocking peek, no round trip.
bool looks_alive(ServerConnection& connection) noexcept;

}  // namespace pgw::pool
