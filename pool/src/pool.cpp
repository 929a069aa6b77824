// Pools: PoolCore's decisions carried out with sockets, timers and cross-thread hand-offs.
#include "pgw/pool/pool.hpp"

#include <sys/socket.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <cerrno>
#include <cstdio>

namespace pgw::pool {

namespace {
constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);
constexpr std::uint8_t terminate_message[] = {'X', 0, 0, 0, 4};
}  // namespace

bool CountedSlots::try_take() {
  unsigned limit = limit_.load(std::memory_order_acquire);
  unsigned current = used_.load(std::memory_order_acquire);
  do {
    if (limit != 0 && current >= limit) return false;
  } while (!used_.compare_exchange_weak(current, current + 1, std::memory_order_acq_rel));
  return true;
}

bool SlotPair::try_take() {
  if (!db_.try_take()) return false;
  if (!user_.try_take()) {
    db_.give_back();
    return false;
  }
  return true;
}

bool looks_alive(ServerConnection& c) noexcept {
  if (!c.stream.is_open()) return false;
  if (c.stream.ssl() != nullptr && SSL_has_pending(c.stream.ssl()) == 1) return false;
  std::uint8_t b = 0;
  ssize_t n = ::recv(c.stream.socket().native_handle(), &b, 1, MSG_PEEK | MSG_DONTWAIT);
  if (n >= 0) return false;  // EOF, or bytes nobody asked for (a FATAL before the server closed)
  return errno == EAGAIN || errno == EWOULDBLOCK;
}

Pool::Pool(PoolManager& manager, std::string database, std::string user, PoolLimits limits,
           SharedSlots* slots)
    : manager_(manager),
      database_(std::move(database)),
      user_(std::move(user)),
      core_(limits, manager.workers(), slots),
      counters_(manager.workers()) {}

namespace {

// Whether connections opened with `a` reach the server `b` names, as `b` would reach it.
bool same_server(const ConnectRequest& a, const ConnectRequest& b) {
  const auto& p = a.policy;
  const auto& q = b.policy;
  return a.host == b.host && a.port == b.port && a.startup == b.startup &&
         (a.tls_context == nullptr) == (b.tls_context == nullptr) &&
         p.send_ssl_request == q.send_ssl_request && p.tls_required == q.tls_required &&
         p.try_plain_first == q.try_plain_first && p.verify_chain == q.verify_chain &&
         p.verify_host == q.verify_host;
}

}  // namespace

void Pool::learn_credentials(protocol::ServerLogin::Credentials credentials) {
  std::lock_guard lock(mutex_);
  learn_credentials_locked(std::move(credentials));
}

void Pool::learn_credentials_locked(protocol::ServerLogin::Credentials credentials) {
  // Credentials without a secret (a login by cert or trust) keep what an earlier client taught us.
  if (credentials.password || credentials.md5_secret || credentials.scram_keys)
    request_.credentials = std::move(credentials);
}

void Pool::set_connect_request(ConnectRequest request) {
  std::vector<std::shared_ptr<ServerConnection>> to_close;
  {
    std::lock_guard lock(mutex_);
    auto credentials = std::move(request.credentials);
    request.credentials = std::move(request_.credentials);
    const bool moved = !same_server(request_, request);
    request_ = std::move(request);
    learn_credentials_locked(std::move(credentials));
    if (moved) {
      ++generation_;
      to_close = trim_locked(core_.active() + core_.connecting());
    }
  }
  close_trimmed(std::move(to_close));
}

void Pool::set_limits(PoolLimits limits) {
  std::vector<std::shared_ptr<ServerConnection>> to_close;
  {
    std::lock_guard lock(mutex_);
    core_.set_limits(limits);
    to_close = trim_locked(core_.cap());
  }
  close_trimmed(std::move(to_close));
}

std::vector<std::shared_ptr<ServerConnection>> Pool::trim_locked(unsigned keep_at_most) {
  auto idle = core_.trim(keep_at_most);
  spread_launches_locked(core_.replan(Clock::now()));  // what waiters still need, in place of what went
  return idle;
}

void Pool::close_trimmed(std::vector<std::shared_ptr<ServerConnection>> connections) {
  for (auto& c : connections)
    close_later(std::move(c));
  if (!connections.empty()) manager_.slot_freed(database_, user_, this);
}

void Pool::spread_launches_locked(unsigned count) {
  for (unsigned i = 0; i < count; ++i)
    launch_locked(1, (next_worker_++) % manager_.workers());
}

PoolLimits Pool::limits() const {
  std::lock_guard lock(mutex_);
  return core_.limits();
}

Pool::ClientCounts Pool::client_counts(const Stats& stats) const noexcept {
  ClientCounts c;
  c.waiting = static_cast<std::int64_t>(stats.waiting) + counters_.paused();
  // The shards are read one by one: never show fewer clients than are waiting.
  c.active = std::max<std::int64_t>(counters_.clients(), c.waiting) - c.waiting;
  return c;
}

std::vector<Pool::IdleServer> Pool::idle_servers() const {
  std::vector<IdleServer> out;
  std::lock_guard lock(mutex_);
  core_.for_each_idle([&](const auto& idle) {
    const ServerConnection& c = *idle.handle;
    out.push_back({c.endpoint, c.backend_key.process_id, c.stream.is_tls(), idle.created, idle.idle_since});
  });
  return out;
}

void Pool::close_later(std::shared_ptr<ServerConnection> c) {
  if (!c) return;
  // Closed on its own thread: the socket is registered with that worker's reactor.
  auto ex = c->stream.socket().get_executor();
  asio::post(ex, [c = std::move(c)] {
    c->stream.try_write_all(terminate_message);  // PostgreSQL then logs a clean disconnection
    c->stream.close();
  });
}

void Pool::deliver_locked(WaiterId id, AcquireResult result) {
  auto it = waiters_.find(id);
  if (it == waiters_.end()) {
    // Nobody is there any more (cancelled in the meantime): an unused connection goes back.
    if (result.connection) {
      auto conn = std::move(result.connection);
      auto r = core_.release(conn, conn->created, 0, conn->generation == generation_, Clock::now());
      if (r.grant)
        deliver_locked(r.grant->waiter, AcquireResult{AcquireResult::Status::ok, r.grant->handle, {}, {}});
      if (r.close) close_later(std::move(*r.close));
      spread_launches_locked(r.connects);
    }
    return;
  }
  auto w = std::move(it->second);
  waiters_.erase(it);
  w->result = std::move(result);
  w->done = true;
  auto ex = w->timer.get_executor();
  asio::post(ex, [w = std::move(w)] { w->timer.cancel(); });
}

void Pool::launch_locked(unsigned count, std::size_t worker) {
  // Posted, never started here: co_spawn would run the coroutine inline on this thread while mutex_ is held.
  for (unsigned i = 0; i < count; ++i) {
    asio::post(manager_.executor(worker), [self = shared_from_this(), worker] {
      asio::co_spawn(
          self->manager_.executor(worker), self->run_connect(worker), [](const std::exception_ptr& e) {
            if (!e) return;
            try {
              std::rethrow_exception(e);
            } catch (const std::exception& ex) {
              std::fprintf(stderr, "pgwarden: server connection attempt ended with an exception: %s\n",
                           ex.what());
            }
          });
    });
  }
}

asio::awaitable<void> Pool::run_connect(std::size_t worker) {
  auto self = shared_from_this();
  ConnectRequest req;
  std::uint64_t generation = 0;
  {
    std::lock_guard lock(mutex_);
    req = request_;
    generation = generation_;
  }
  auto result = co_await connect(manager_.executor(worker), req);
  std::shared_ptr<ServerConnection> to_close;
  {
    std::lock_guard lock(mutex_);
    auto now = Clock::now();
    if (generation != generation_ && !manager_.stopping()) {
      // Towards the server the pool used before a reload: nobody gets it, and its failure fails nobody.
      to_close = std::move(result.connection);
      spread_launches_locked(core_.connect_abandoned(now));
    } else if (result.connection && !manager_.stopping()) {
      result.connection->generation = generation;
      auto grant = core_.connect_succeeded(result.connection, worker, now);
      if (grant)
        deliver_locked(grant->waiter, AcquireResult{AcquireResult::Status::ok, grant->handle, {}, {}});
    } else {
      to_close = std::move(result.connection);
      last_error_ = result.error.message;
      last_server_error_ = result.error.server_error;
      auto failed = core_.connect_failed(now, req.timeout);
      for (WaiterId id : failed.failed) {
        deliver_locked(
            id, AcquireResult{AcquireResult::Status::failed, nullptr, last_error_, last_server_error_});
      }
    }
  }
  close_later(std::move(to_close));
  if (!result.connection) manager_.slot_freed(database_, user_, this);  // failed, or abandoned
}

asio::awaitable<AcquireResult> Pool::acquire(std::size_t worker, asio::any_io_executor executor,
                                             std::shared_ptr<Ticket> ticket) {
  auto self = shared_from_this();
  for (;;) {
    std::shared_ptr<Waiter> w;
    WaiterId id = 0;
    bool blocked_by_shared_limit = false;
    Millis wait{0};
    {
      std::unique_lock lock(mutex_);
      if (manager_.stopping()) co_return AcquireResult{AcquireResult::Status::cancelled, nullptr, {}, {}};
      auto now = Clock::now();
      auto a = core_.acquire(worker, now);
      if (a.granted) {
        auto conn = hand_out(a, now, executor, lock);
        if (!conn) continue;
        co_return AcquireResult{AcquireResult::Status::ok, std::move(conn), {}, {}};
      }
      id = a.waiter;
      w = std::make_shared<Waiter>(executor);
      waiters_[id] = w;
      if (ticket) {
        ticket->pool = self;
        ticket->id = id;
      }
      launch_locked(a.connects, worker);
      blocked_by_shared_limit =
          a.connects == 0 && core_.connecting() == 0 && core_.total() < core_.limits().default_size;
      wait = core_.limits().query_wait_timeout;
    }
    if (blocked_by_shared_limit && manager_.evict_for(*this)) replan();
    if (wait.count() > 0) w->timer.expires_after(wait);
    co_await w->timer.async_wait(use_tuple);
    AcquireResult result;
    {
      std::lock_guard lock(mutex_);
      if (!w->done) {
        waiters_.erase(id);
        core_.cancel_wait(id);
        co_return AcquireResult{AcquireResult::Status::timeout, nullptr, {}, {}};
      }
      result = std::move(w->result);
    }
    if (result.connection) {
      if (result.connection->stream.socket().get_executor() != executor)
        result.connection->stream.rebind(executor);
      result.connection->last_used = Clock::now();
    }
    co_return result;
  }
}

std::shared_ptr<ServerConnection> Pool::try_acquire(std::size_t worker,
                                                    const asio::any_io_executor& executor) {
  std::unique_lock lock(mutex_);
  if (manager_.stopping()) return nullptr;
  const auto now = Clock::now();
  auto a = core_.acquire(worker, now, /*queue=*/false);
  if (!a.granted) return nullptr;
  return hand_out(a, now, executor, lock);
}

std::shared_ptr<ServerConnection> Pool::hand_out(Core::Acquire& a, Clock::time_point now,
                                                 const asio::any_io_executor& executor,
                                                 std::unique_lock<std::mutex>& lock) {
  auto conn = std::move(*a.granted);
  // A connection reused at once needs no check (a peek is a system call per transaction); one that sat idle
  // may have been closed by the server meanwhile.
  bool check = now - a.granted_idle_since >= core_.limits().server_check_delay;
  lock.unlock();
  if (check && !looks_alive(*conn)) {
    discard(std::move(conn));
    return nullptr;
  }
  if (conn->stream.socket().get_executor() != executor) conn->stream.rebind(executor);
  conn->last_used = Clock::now();
  return conn;
}

void Pool::cancel(const Ticket& ticket) {
  std::lock_guard lock(mutex_);
  if (core_.cancel_wait(ticket.id))
    deliver_locked(ticket.id, AcquireResult{AcquireResult::Status::cancelled, nullptr, {}, {}});
}

void Pool::release(std::shared_ptr<ServerConnection> connection, std::size_t worker, bool reusable) {
  std::shared_ptr<ServerConnection> to_close;
  {
    std::lock_guard lock(mutex_);
    connection->last_used = Clock::now();
    auto created = connection->created;
    // Bytes TLS read ahead and holds (an asynchronous notice) would reach the next client: never reused.
    reusable = reusable && !manager_.stopping() && !connection->stream.has_pending() &&
               !connection->listening && connection->generation == generation_;
    auto r = core_.release(std::move(connection), created, worker, reusable, Clock::now());
    if (r.grant)
      deliver_locked(r.grant->waiter, AcquireResult{AcquireResult::Status::ok, r.grant->handle, {}, {}});
    if (r.close) to_close = std::move(*r.close);
    launch_locked(r.connects, worker);
  }
  if (to_close) {
    close_later(std::move(to_close));
    manager_.slot_freed(database_, user_, this);
  }
}

void Pool::discard(std::shared_ptr<ServerConnection> connection) {
  {
    std::lock_guard lock(mutex_);
    unsigned connects = core_.discard_active(Clock::now());
    launch_locked(connects, 0);
  }
  close_later(std::move(connection));
  manager_.slot_freed(database_, user_, this);
}

void Pool::tick(Clock::time_point now) {
  std::vector<std::shared_ptr<ServerConnection>> to_close;
  {
    std::lock_guard lock(mutex_);
    auto t = core_.tick(now);
    for (WaiterId id : t.expired)
      deliver_locked(id, AcquireResult{AcquireResult::Status::timeout, nullptr, {}, {}});
    to_close = std::move(t.close);
    spread_launches_locked(t.connects);  // housekeeping (min_size, reserve), spread over the workers
  }
  for (auto& c : to_close)
    close_later(std::move(c));
  if (!to_close.empty()) manager_.slot_freed(database_, user_, this);
}

void Pool::replan() {
  std::lock_guard lock(mutex_);
  spread_launches_locked(core_.replan(Clock::now()));
}

bool Pool::evict_one_idle() {
  std::shared_ptr<ServerConnection> c;
  {
    std::lock_guard lock(mutex_);
    auto h = core_.evict_one_idle();
    if (!h) return false;
    c = std::move(*h);
  }
  close_later(std::move(c));
  return true;
}

void Pool::close_all_idle() {
  std::vector<std::shared_ptr<ServerConnection>> to_close;
  {
    std::lock_guard lock(mutex_);
    to_close = core_.trim(core_.active() + core_.connecting());
    for (auto& entry : waiters_) {
      core_.cancel_wait(entry.first);
      std::shared_ptr<Waiter> w = entry.second;
      w->result = AcquireResult{AcquireResult::Status::cancelled, nullptr, {}, {}};
      w->done = true;
      asio::post(w->timer.get_executor(), [w] { w->timer.cancel(); });
    }
    waiters_.clear();
  }
  for (auto& c : to_close)
    close_later(std::move(c));
}

Pool::Stats Pool::stats() const {
  std::lock_guard lock(mutex_);
  Stats s;
  s.active = core_.active();
  s.idle = core_.idle_count();
  s.connecting = core_.connecting();
  s.waiting = static_cast<unsigned>(core_.waiting());
  s.total = core_.total();
  s.max_wait_ms = core_.longest_wait(Clock::now()).count();
  return s;
}

// ---------------------------------------------------------------------------------------------------------------

PoolManager::PoolManager(std::vector<asio::any_io_executor> executors) : executors_(std::move(executors)) {}

PoolManager::~PoolManager() {
  try {
    stop();
  } catch (...) {  // a destructor must not throw; the pools are going away with us
  }
}

std::shared_ptr<Pool> PoolManager::get(const std::string& database, const std::string& user,
                                       const PoolLimits& limits, unsigned max_db_connections,
                                       unsigned max_user_connections,
                                       const std::function<ConnectRequest()>& make_request) {
  std::shared_ptr<Pool> pool;
  bool created = false;
  {
    std::lock_guard lock(mutex_);
    auto& db = db_slots_[database];
    if (!db) db = std::make_unique<CountedSlots>(max_db_connections);
    auto& us = user_slots_[user];
    if (!us) us = std::make_unique<CountedSlots>(max_user_connections);
    auto& p = pools_[{database, user}];
    if (!p) {
      slot_pairs_.push_back(std::make_unique<SlotPair>(*db, *us));
      p = std::make_shared<Pool>(*this, database, user, limits, slot_pairs_.back().get());
      created = true;
    }
    pool = p;
  }
  // Limits and the server are the pool's own from here: only a reload (apply_limits, set_connect_request)
  // changes them, so a login that began under the previous configuration cannot point the pool back at the
  // old server. Credentials a client just proved are added to the request.
  if (created) {
    pool->set_connect_request(make_request());
  } else {
    pool->learn_credentials(make_request().credentials);
  }
  return pool;
}

void PoolManager::apply_limits(const std::string& database, const std::string& user, const PoolLimits& limits,
                               unsigned max_db_connections, unsigned max_user_connections) {
  std::shared_ptr<Pool> pool;
  {
    std::lock_guard lock(mutex_);
    if (auto it = db_slots_.find(database); it != db_slots_.end()) it->second->set_limit(max_db_connections);
    if (auto it = user_slots_.find(user); it != user_slots_.end())
      it->second->set_limit(max_user_connections);
    if (auto it = pools_.find({database, user}); it != pools_.end()) pool = it->second;
  }
  if (pool) pool->set_limits(limits);
}

void PoolManager::start_janitor(std::chrono::milliseconds period) {
  period_ = period;
  janitor_ = std::make_unique<asio::steady_timer>(executors_[0]);
  janitor_step();
}

void PoolManager::janitor_step() {
  if (stopping()) return;
  janitor_->expires_after(period_);
  janitor_->async_wait([this](const boost::system::error_code& ec) {
    if (ec || stopping()) return;
    auto now = Clock::now();
    for (auto& p : pools())
      p->tick(now);
    janitor_step();
  });
}

void PoolManager::stop() {
  if (stopping_.exchange(true)) return;
  if (janitor_) {
    try {
      janitor_->cancel();
    } catch (...) {  // nothing to do: the janitor checks stopping() anyway
    }
  }
  for (auto& p : pools())
    p->close_all_idle();
}

std::vector<std::shared_ptr<Pool>> PoolManager::pools() const {
  std::lock_guard lock(mutex_);
  std::vector<std::shared_ptr<Pool>> out;
  out.reserve(pools_.size());
  for (const auto& [k, p] : pools_)
    out.push_back(p);
  return out;
}

void PoolManager::slot_freed(const std::string& database, const std::string& user, const Pool* except) {
  for (auto& p : pools()) {
    if (p.get() == except) continue;
    if (p->database() == database || p->user() == user) p->replan();
  }
}

bool PoolManager::evict_for(const Pool& needy) {
  for (auto& p : pools()) {
    if (p.get() == &needy) continue;
    if (p->database() != needy.database() && p->user() != needy.user()) continue;
    if (p->evict_one_idle()) return true;
  }
  return false;
}

}  // namespace pgw::pool
