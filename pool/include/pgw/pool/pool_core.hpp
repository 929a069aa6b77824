// The decisions of one pool (database, user) as a pure state machine: who gets which server connection, when
// a new one is opened or an idle one closed, which waiter has waited too long. Time is an input (a
// replaceable clock), so every timeout is tested without sleeping. The caller serialises calls (one mutex per
// pool).
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <deque>
#include <optional>
#include <utility>
#include <vector>

namespace pgw::pool {

using TimePoint = std::chrono::steady_clock::time_point;
using Millis = std::chrono::milliseconds;

struct PoolLimits {
  unsigned default_size = 20;
  unsigned min_size = 0;
  unsigned reserve_size = 0;
  Millis reserve_timeout{5000};
  Millis server_lifetime{3600000};     // 0 = never
  Millis server_idle_timeout{600000};  // 0 = never
  Millis server_check_delay{1000};     // idle at least this long: checked before reuse; 0 = always
  Millis query_wait_timeout{120000};   // 0 = wait forever
};

// Slots shared with the other pools of the same database or user (max_db_connections, max_user_connections).
class SharedSlots {
 public:
  virtual ~SharedSlots() = default;
  virtual bool try_take() = 0;  // false when a shared limit is reached
  virtual void give_back() = 0;
};

using WaiterId = std::uint64_t;

template <class Handle>
class PoolCore {
 public:
  struct Idle {
    Handle handle;
    TimePoint created;
    TimePoint idle_since;
  };
  struct Waiter {
    WaiterId id;
    std::size_t worker;
    TimePoint since;
  };
  // What acquire() decided.
  struct Acquire {
    std::optional<Handle> granted;  // an idle connection, now the caller's
    std::size_t granted_from_worker = 0;
    TimePoint granted_created{};
    TimePoint granted_idle_since{};
    WaiterId waiter = 0;    // else: queued under this id
    unsigned connects = 0;  // new connections the caller must start
  };
  // A connection handed to a queued client.
  struct Grant {
    WaiterId waiter;
    Handle handle;
    TimePoint created;
  };
  struct Release {
    std::optional<Grant> grant;   // the connection goes to this waiter
    std::optional<Handle> close;  // or must be closed (lifetime, not reusable)
    unsigned connects = 0;
  };
  struct ConnectFailed {
    std::vector<WaiterId> failed;  // waiters with no connection left to hope for
  };
  struct Tick {
    std::vector<Handle> close;      // idle too long or too old
    std::vector<WaiterId> expired;  // waited longer than query_wait_timeout
    unsigned connects = 0;          // min_size, reserve
  };

  PoolCore(PoolLimits limits, std::size_t workers, SharedSlots* shared)
      : limits_(limits), idle_(workers), shared_(shared) {}

  void set_limits(PoolLimits limits) { limits_ = limits; }
  const PoolLimits& limits() const noexcept { return limits_; }
  // The most connections this pool keeps: default_size plus reserve_size.
  unsigned cap() const noexcept { return limits_.default_size + limits_.reserve_size; }

  // A client on `worker` wants a connection. Waiters are served first come, first served: a newcomer never
  // overtakes a queued client, so nobody starves.
  // With queue = false nothing is queued: the caller only takes a connection that is idle now.
  Acquire acquire(std::size_t worker, TimePoint now, bool queue = true) {
    Acquire a;
    if (waiters_.empty()) {
      if (auto idle = take_idle(worker)) {
        ++active_;
        a.granted = std::move(idle->first.handle);
        a.granted_created = idle->first.created;
        a.granted_idle_since = idle->first.idle_since;
        a.granted_from_worker = idle->second;
        return a;
      }
    }
    if (!queue) return a;
    a.waiter = ++last_waiter_;
    waiters_.push_back({a.waiter, worker, now});
    a.connects = plan_connects(now);
    return a;
  }

  // The waiter gave up (query_wait_timeout handled by its own timer, or the client left). False if it was
  // already served (its grant is on the way and must be released by the caller).
  bool cancel_wait(WaiterId id) {
    auto it = std::find_if(waiters_.begin(), waiters_.end(), [&](const Waiter& w) { return w.id == id; });
    if (it == waiters_.end()) return false;
    waiters_.erase(it);
    return true;
  }

  // A client is done with a connection. reusable = clean (ReadyForQuery 'I', nothing pending).
  Release release(Handle handle, TimePoint created, std::size_t worker, bool reusable, TimePoint now) {
    Release r;
    --active_;
    if (!reusable || expired(created, now)) {
      drop_slot();
      r.close = std::move(handle);
      r.connects = plan_connects(now);
      return r;
    }
    if (total() >= cap()) {
      // The pool shrank (reload, SET): a surplus connection closes when its client is done with it, even with
      // clients waiting (at least cap() others are there to serve them), or a busy pool would never shrink.
      drop_slot();
      r.close = std::move(handle);
      return r;
    }
    r.grant = hand_to_waiter_or_idle(std::move(handle), created, worker, now);
    return r;
  }

  // A connection that was handed out turned out dead on the liveness check, or died while attached.
  unsigned discard_active(TimePoint now) {
    --active_;
    drop_slot();
    return plan_connects(now);
  }

  // A new connection is ready: the first waiter gets it, else it goes idle.
  std::optional<Grant> connect_succeeded(Handle handle, std::size_t worker, TimePoint now) {
    --connecting_;
    return hand_to_waiter_or_idle(std::move(handle), now, worker, now);
  }

  // A connection attempt failed. If no connection is open or being opened, nothing will ever come to the
  // waiters: they all fail now (a client waits server_connect_timeout at most, then gets 08006).
  // While nothing is established and attempts keep overlapping (clients that arrive while the server is
  // unreachable each start one), there is rarely a moment with no attempt under way: a waiter that has waited
  // `give_up_after` (server_connect_timeout) fails with this attempt rather than wait on the next.
  ConnectFailed connect_failed(TimePoint now = {}, Millis give_up_after = Millis{0}) {  // 0: never
    --connecting_;
    drop_slot();
    ConnectFailed f;
    if (total() == 0) {
      for (const auto& w : waiters_)
        f.failed.push_back(w.id);
      waiters_.clear();
    } else if (give_up_after.count() > 0 && active_ == 0 && idle_count() == 0) {
      while (!waiters_.empty() && now - waiters_.front().since >= give_up_after) {
        f.failed.push_back(waiters_.front().id);
        waiters_.pop_front();
      }
    }
    return f;
  }

  // A new connection is not wanted after all (the pool's server changed while it was being opened): its slot
  // goes, and what the waiters still need is planned again, towards the new server.
  unsigned connect_abandoned(TimePoint now) {
    --connecting_;
    drop_slot();
    return plan_connects(now);
  }

  // Housekeeping, called periodically with the current time.
  Tick tick(TimePoint now) {
    Tick t;
    for (auto& list : idle_) {
      for (auto it = list.begin(); it != list.end();) {
        bool too_old = expired(it->created, now);
        bool idle_too_long = limits_.server_idle_timeout.count() > 0 &&
                             now - it->idle_since >= limits_.server_idle_timeout &&
                             total() > limits_.min_size;
        if (too_old || idle_too_long) {
          t.close.push_back(std::move(it->handle));
          it = list.erase(it);
          drop_slot();
        } else {
          ++it;
        }
      }
    }
    if (limits_.query_wait_timeout.count() > 0) {
      while (!waiters_.empty() && now - waiters_.front().since >= limits_.query_wait_timeout) {
        t.expired.push_back(waiters_.front().id);
        waiters_.pop_front();
      }
    }
    t.connects = plan_connects(now);
    return t;
  }

  // Plans again after something outside changed (a shared slot freed up, limits reloaded).
  unsigned replan(TimePoint now) { return plan_connects(now); }

  // Idle connections to close because the pool shrank or another pool needs the shared slot.
  std::vector<Handle> trim(unsigned keep_at_most) {
    std::vector<Handle> out;
    for (auto& list : idle_) {
      while (!list.empty() && total() > keep_at_most) {
        out.push_back(std::move(list.front().handle));
        list.erase(list.begin());
        drop_slot();
      }
    }
    return out;
  }
  std::optional<Handle> evict_one_idle() {
    auto v = trim(total() == 0 ? 0 : total() - 1);
    if (v.empty()) return std::nullopt;
    return std::move(v.front());
  }

  template <class F>
  void for_each_idle(F&& f) const {
    for (const auto& list : idle_) {
      for (const auto& i : list)
        f(i);
    }
  }
  unsigned active() const noexcept { return active_; }
  unsigned connecting() const noexcept { return connecting_; }
  unsigned idle_count() const noexcept {
    unsigned n = 0;
    for (const auto& l : idle_)
      n += static_cast<unsigned>(l.size());
    return n;
  }
  unsigned total() const noexcept { return active_ + connecting_ + idle_count(); }
  std::size_t waiting() const noexcept { return waiters_.size(); }
  // How long the oldest waiter has waited (SHOW POOLS maxwait).
  Millis longest_wait(TimePoint now) const {
    return waiters_.empty() ? Millis{0} : std::chrono::duration_cast<Millis>(now - waiters_.front().since);
  }

 private:
  bool expired(TimePoint created, TimePoint now) const {
    return limits_.server_lifetime.count() > 0 && now - created >= limits_.server_lifetime;
  }

  std::optional<Grant> hand_to_waiter_or_idle(Handle handle, TimePoint created, std::size_t worker,
                                              TimePoint now) {
    if (!waiters_.empty()) {
      Waiter w = waiters_.front();
      waiters_.pop_front();
      ++active_;
      return Grant{w.id, std::move(handle), created};
    }
    idle_[worker].push_back({std::move(handle), created, now});
    return std::nullopt;
  }

  // Most recently used first on the client's own worker (warm caches, no thread hop), then any other worker.
  std::optional<std::pair<Idle, std::size_t>> take_idle(std::size_t worker) {
    if (!idle_[worker].empty()) {
      Idle i = std::move(idle_[worker].back());
      idle_[worker].pop_back();
      return std::pair{std::move(i), worker};
    }
    for (std::size_t w = 0; w < idle_.size(); ++w) {
      if (!idle_[w].empty()) {
        Idle i = std::move(idle_[w].back());
        idle_[w].pop_back();
        return std::pair{std::move(i), w};
      }
    }
    return std::nullopt;
  }

  // How many connections to start now: enough for the waiters, within default_size (plus reserve_size once
  // the oldest waiter has waited reserve_timeout) and the shared limits; and up to min_size.
  unsigned plan_connects(TimePoint now) {
    unsigned limit = limits_.default_size;
    if (!waiters_.empty() && now - waiters_.front().since >= limits_.reserve_timeout) {
      limit += limits_.reserve_size;
    }
    unsigned wanted = std::max<unsigned>(static_cast<unsigned>(waiters_.size()) > connecting_
                                             ? static_cast<unsigned>(waiters_.size()) - connecting_
                                             : 0,
                                         limits_.min_size > total() ? limits_.min_size - total() : 0);
    unsigned n = 0;
    while (n < wanted && total() < limit) {
      if (shared_ != nullptr && !shared_->try_take()) break;
      ++connecting_;
      ++n;
    }
    return n;
  }

  void drop_slot() {
    if (shared_ != nullptr) shared_->give_back();
  }

  PoolLimits limits_;
  std::vector<std::vector<Idle>> idle_;
  std::deque<Waiter> waiters_;
  SharedSlots* shared_;
  unsigned active_ = 0;
  unsigned connecting_ = 0;
  WaiterId last_waiter_ = 0;
};

}  // namespace pgw::pool
