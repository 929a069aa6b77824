// The pool's decisions with a replaceable clock: FIFO waiters, size limits, reserve, min_size, lifetimes,
// idle timeouts, query_wait_timeout and connection failures, without a socket or a sleep.
#include "pgw/pool/pool_core.hpp"

#include <gtest/gtest.h>

namespace {

using namespace std::chrono_literals;
using pgw::pool::PoolCore;
using pgw::pool::PoolLimits;
using pgw::pool::SharedSlots;
using pgw::pool::TimePoint;

using Core = PoolCore<int>;

TimePoint t0 = TimePoint{} + 1000h;

PoolLimits limits(unsigned size) {
  PoolLimits l;
  l.default_size = size;
  return l;
}

TEST(PoolCore, FirstClientQueuesAndStartsOneConnection) {
  Core p(limits(2), 2, nullptr);
  auto a = p.acquire(0, t0);
  EXPECT_FALSE(a.granted);
  EXPECT_NE(a.waiter, 0u);
  EXPECT_EQ(a.connects, 1u);
  auto g = p.connect_succeeded(42, 0, t0);
  ASSERT_TRUE(g);
  EXPECT_EQ(g->waiter, a.waiter);
  EXPECT_EQ(g->handle, 42);
  EXPECT_EQ(p.active(), 1u);
}

TEST(PoolCore, AnIdleGrantSaysSinceWhenItWasIdle) {
  // Pool::acquire checks a connection before reuse only when it sat idle for server_check_delay.
  Core p(limits(1), 1, nullptr);
  p.acquire(0, t0);
  p.connect_succeeded(7, 0, t0);
  EXPECT_FALSE(p.release(7, t0, 0, true, t0 + 5ms).grant);
  auto a = p.acquire(0, t0 + 2s);
  ASSERT_TRUE(a.granted);
  EXPECT_EQ(*a.granted, 7);
  EXPECT_EQ(a.granted_created, t0);
  EXPECT_EQ(a.granted_idle_since, t0 + 5ms);
}

TEST(PoolCore, AcquireWithoutQueueingTakesOnlyAnIdleConnectionNobodyWaitsFor) {
  // Pool::try_acquire, the relay's fast path: it never queues and never starts a connection.
  Core p(limits(1), 1, nullptr);
  auto none = p.acquire(0, t0, /*queue=*/false);
  EXPECT_FALSE(none.granted);
  EXPECT_EQ(none.waiter, 0u);
  EXPECT_EQ(none.connects, 0u);
  EXPECT_EQ(p.waiting(), 0u);
  EXPECT_EQ(p.connecting(), 0u);

  p.acquire(0, t0);  // queues and starts the connection
  p.connect_succeeded(7, 0, t0);
  EXPECT_FALSE(p.release(7, t0, 0, true, t0).grant);
  auto fast = p.acquire(0, t0, false);
  ASSERT_TRUE(fast.granted);
  EXPECT_EQ(*fast.granted, 7);
  EXPECT_EQ(p.active(), 1u);

  // With a client waiting, the fast path gets nothing and adds nobody: the release goes to the waiter.
  auto waiter = p.acquire(0, t0);
  EXPECT_NE(waiter.waiter, 0u);
  EXPECT_FALSE(p.acquire(0, t0, false).granted);
  EXPECT_EQ(p.waiting(), 1u);
  auto g = p.release(7, t0, 0, true, t0);
  ASSERT_TRUE(g.grant);
  EXPECT_EQ(g.grant->waiter, waiter.waiter);
  EXPECT_EQ(p.waiting(), 0u);
}

TEST(PoolCore, NeverMoreThanDefaultSize) {
  Core p(limits(2), 1, nullptr);
  EXPECT_EQ(p.acquire(0, t0).connects, 1u);
  EXPECT_EQ(p.acquire(0, t0).connects, 1u);
  EXPECT_EQ(p.acquire(0, t0).connects, 0u);
  EXPECT_EQ(p.connecting(), 2u);
  EXPECT_EQ(p.waiting(), 3u);
}

TEST(PoolCore, ReleasedConnectionGoesToTheOldestWaiter) {
  Core p(limits(1), 1, nullptr);
  auto first = p.acquire(0, t0);
  p.connect_succeeded(1, 0, t0);
  auto second = p.acquire(0, t0 + 1ms);
  auto third = p.acquire(0, t0 + 2ms);
  auto r = p.release(1, t0, 0, true, t0 + 3ms);
  ASSERT_TRUE(r.grant);
  EXPECT_EQ(r.grant->waiter, second.waiter);
  r = p.release(1, t0, 0, true, t0 + 4ms);
  ASSERT_TRUE(r.grant);
  EXPECT_EQ(r.grant->waiter, third.waiter);
  (void)first;
}

TEST(PoolCore, NewcomerDoesNotOvertakeAWaiter) {
  Core p(limits(1), 1, nullptr);
  p.acquire(0, t0);
  p.connect_succeeded(1, 0, t0);
  auto waiter = p.acquire(0, t0);
  // The connection comes back while a newcomer arrives: the queued client gets it, the newcomer queues.
  auto r = p.release(1, t0, 0, true, t0 + 1ms);
  auto newcomer = p.acquire(0, t0 + 1ms);
  ASSERT_TRUE(r.grant);
  EXPECT_EQ(r.grant->waiter, waiter.waiter);
  EXPECT_FALSE(newcomer.granted);
}

TEST(PoolCore, IdleConnectionsPreferTheClientsWorker) {
  Core p(limits(3), 2, nullptr);
  for (int i = 0; i < 2; ++i)
    p.acquire(0, t0);
  p.connect_succeeded(10, 0, t0);
  p.connect_succeeded(20, 1, t0);
  p.release(10, t0, 0, true, t0);
  p.release(20, t0, 1, true, t0);
  auto a = p.acquire(1, t0);
  ASSERT_TRUE(a.granted);
  EXPECT_EQ(*a.granted, 20);
  EXPECT_EQ(a.granted_from_worker, 1u);
  auto b = p.acquire(1, t0);
  ASSERT_TRUE(b.granted);
  EXPECT_EQ(*b.granted, 10) << "another worker's idle connection before opening a new one";
  EXPECT_EQ(b.granted_from_worker, 0u);
}

TEST(PoolCore, DirtyOrOldConnectionsAreClosedAndReplacedForWaiters) {
  PoolLimits l = limits(1);
  l.server_lifetime = 1h;
  Core p(l, 1, nullptr);
  p.acquire(0, t0);
  p.connect_succeeded(1, 0, t0);
  auto waiter = p.acquire(0, t0);
  auto dirty = p.release(1, t0, 0, false, t0 + 1s);
  EXPECT_EQ(dirty.close, 1);
  EXPECT_EQ(dirty.connects, 1u);
  auto g = p.connect_succeeded(2, 0, t0 + 2s);
  ASSERT_TRUE(g);
  EXPECT_EQ(g->waiter, waiter.waiter);
  auto old = p.release(2, t0, 0, true, t0 + 2h);
  EXPECT_EQ(old.close, 2) << "past server_lifetime";
}

TEST(PoolCore, TickClosesIdleConnectionsButKeepsMinSize) {
  PoolLimits l = limits(5);
  l.server_idle_timeout = 10min;
  l.min_size = 1;
  Core p(l, 1, nullptr);
  for (int i = 0; i < 3; ++i)
    p.acquire(0, t0);
  for (int i = 1; i <= 3; ++i)
    p.connect_succeeded(i, 0, t0);
  for (int i = 1; i <= 3; ++i)
    p.release(i, t0, 0, true, t0);
  EXPECT_TRUE(p.tick(t0 + 9min).close.empty());
  auto t = p.tick(t0 + 11min);
  EXPECT_EQ(t.close.size(), 2u);
  EXPECT_EQ(p.total(), 1u);
  EXPECT_EQ(t.connects, 0u);
}

TEST(PoolCore, TickClosesIdleConnectionsPastTheirLifetime) {
  PoolLimits l = limits(5);
  l.server_lifetime = 1h;
  l.server_idle_timeout = pgw::pool::Millis{0};
  Core p(l, 1, nullptr);
  p.acquire(0, t0);
  p.connect_succeeded(1, 0, t0);
  p.release(1, t0, 0, true, t0 + 1min);
  EXPECT_TRUE(p.tick(t0 + 59min).close.empty());
  EXPECT_EQ(p.tick(t0 + 61min).close, std::vector<int>{1});
}

TEST(PoolCore, MinSizeIsOpenedByTheTick) {
  PoolLimits l = limits(5);
  l.min_size = 3;
  Core p(l, 1, nullptr);
  EXPECT_EQ(p.tick(t0).connects, 3u);
  EXPECT_EQ(p.tick(t0).connects, 0u) << "already connecting";
}

TEST(PoolCore, ReserveOpensAfterReserveTimeout) {
  PoolLimits l = limits(1);
  l.reserve_size = 2;
  l.reserve_timeout = 5s;
  Core p(l, 1, nullptr);
  p.acquire(0, t0);
  p.connect_succeeded(1, 0, t0);
  p.acquire(0, t0);
  p.acquire(0, t0);
  EXPECT_EQ(p.tick(t0 + 4s).connects, 0u);
  EXPECT_EQ(p.tick(t0 + 5s).connects, 2u);
  EXPECT_EQ(p.total(), 3u);
}

TEST(PoolCore, QueryWaitTimeoutExpiresWaitersInOrder) {
  PoolLimits l = limits(1);
  l.query_wait_timeout = 120s;
  Core p(l, 1, nullptr);
  p.acquire(0, t0);
  p.connect_succeeded(1, 0, t0);
  auto w1 = p.acquire(0, t0 + 1s);
  auto w2 = p.acquire(0, t0 + 2s);
  auto t = p.tick(t0 + 121s);
  EXPECT_EQ(t.expired, std::vector<pgw::pool::WaiterId>{w1.waiter});
  t = p.tick(t0 + 122s);
  EXPECT_EQ(t.expired, std::vector<pgw::pool::WaiterId>{w2.waiter});
  EXPECT_EQ(p.waiting(), 0u);
}

TEST(PoolCore, CancelledWaiterIsForgotten) {
  Core p(limits(1), 1, nullptr);
  auto w = p.acquire(0, t0);
  EXPECT_TRUE(p.cancel_wait(w.waiter));
  EXPECT_FALSE(p.cancel_wait(w.waiter));
  EXPECT_FALSE(p.connect_succeeded(1, 0, t0)) << "nobody waits: the new connection goes idle";
  EXPECT_EQ(p.idle_count(), 1u);
}

TEST(PoolCore, FailedConnectFailsWaitersOnlyWhenNothingElseCanServeThem) {
  Core p(limits(2), 1, nullptr);
  auto w1 = p.acquire(0, t0);
  auto w2 = p.acquire(0, t0);
  EXPECT_EQ(p.connecting(), 2u);
  auto f = p.connect_failed();
  EXPECT_TRUE(f.failed.empty()) << "one attempt is still under way";
  f = p.connect_failed();
  EXPECT_EQ(f.failed, (std::vector<pgw::pool::WaiterId>{w1.waiter, w2.waiter}));
  EXPECT_EQ(p.total(), 0u);
  // The pool recovers by itself: the next client starts a new attempt.
  EXPECT_EQ(p.acquire(0, t0 + 1s).connects, 1u);
}

TEST(PoolCore, OverlappingFailedConnectsFailWhoWaitedTheConnectTimeout) {
  // An unreachable server, clients arriving one after another: some attempt is always under way.
  Core p(limits(4), 1, nullptr);
  auto w1 = p.acquire(0, t0);
  p.acquire(0, t0 + 1500ms);
  EXPECT_EQ(p.connecting(), 2u);
  auto f = p.connect_failed(t0 + 2s, 2s);  // w1's attempt: w1 waited 2 s, w2's attempt is still under way
  EXPECT_EQ(f.failed, (std::vector<pgw::pool::WaiterId>{w1.waiter}));
  EXPECT_EQ(p.waiting(), 1u);
  // With a connection established, waiters wait for it instead (query_wait_timeout applies).
  Core q(limits(2), 1, nullptr);
  q.acquire(0, t0);
  ASSERT_TRUE(q.connect_succeeded(1, 0, t0));
  auto w3 = q.acquire(0, t0);
  EXPECT_EQ(w3.connects, 1u);
  EXPECT_TRUE(q.connect_failed(t0 + 10s, 2s).failed.empty());
}

TEST(PoolCore, AnAbandonedConnectFailsNobodyAndIsTriedAgain) {
  // The pool's server changed (a reload) while a connection to the old one was being opened.
  Core p(limits(1), 1, nullptr);
  auto w = p.acquire(0, t0);
  EXPECT_EQ(w.connects, 1u);
  EXPECT_EQ(p.connect_abandoned(t0), 1u) << "the waiter still needs a connection, to the new server";
  EXPECT_EQ(p.connecting(), 1u);
  EXPECT_EQ(p.waiting(), 1u);
  auto g = p.connect_succeeded(7, 0, t0);
  ASSERT_TRUE(g);
  EXPECT_EQ(g->waiter, w.waiter);
}

struct CountingSlots : SharedSlots {
  unsigned limit;
  unsigned used = 0;
  explicit CountingSlots(unsigned l) : limit(l) {}
  bool try_take() override {
    if (used == limit) return false;
    ++used;
    return true;
  }
  void give_back() override { --used; }
};

TEST(PoolCore, SharedLimitCapsConnectionsAcrossPools) {
  CountingSlots db(3);
  Core a(limits(5), 1, &db), b(limits(5), 1, &db);
  for (int i = 0; i < 2; ++i)
    a.acquire(0, t0);
  for (int i = 0; i < 2; ++i)
    b.acquire(0, t0);
  EXPECT_EQ(a.connecting() + b.connecting(), 3u);
  EXPECT_EQ(db.used, 3u);
  a.connect_succeeded(1, 0, t0);
  auto r = a.release(1, t0, 0, false, t0);
  EXPECT_EQ(r.close, 1);
  EXPECT_EQ(r.connects, 0u) << "a's other waiter already has an attempt under way";
  EXPECT_EQ(db.used, 2u);
  // The freed slot goes to the sibling pool that still waits, when it next plans.
  EXPECT_EQ(b.tick(t0).connects, 1u);
  EXPECT_EQ(db.used, 3u);
}

TEST(PoolCore, TrimAndEvictCloseIdleConnectionsOnly) {
  CountingSlots db(10);
  Core p(limits(5), 1, &db);
  for (int i = 0; i < 3; ++i)
    p.acquire(0, t0);
  for (int i = 1; i <= 3; ++i)
    p.connect_succeeded(i, 0, t0);
  p.release(1, t0, 0, true, t0);
  p.release(2, t0, 0, true, t0);
  EXPECT_EQ(p.trim(2).size(), 1u);
  EXPECT_EQ(p.total(), 2u);
  EXPECT_TRUE(p.evict_one_idle());
  EXPECT_FALSE(p.evict_one_idle()) << "the remaining connection is in use";
  EXPECT_EQ(db.used, 1u);
}

TEST(PoolCore, LongestWait) {
  Core p(limits(1), 1, nullptr);
  EXPECT_EQ(p.longest_wait(t0).count(), 0);
  p.acquire(0, t0);
  EXPECT_EQ(p.longest_wait(t0 + 1500ms).count(), 1500);
}

}  // namespace

namespace {

TEST(PoolCore, ShrunkPoolClosesSurplusIdleAndBusyConnectionsAsTheyComeBack) {
  Core p(limits(3), 1, nullptr);
  for (int i = 0; i < 3; ++i)
    p.acquire(0, t0);
  for (int h = 1; h <= 3; ++h)
    ASSERT_TRUE(p.connect_succeeded(h, 0, t0));
  EXPECT_EQ(p.active(), 3u);
  // Two come back idle, then the pool shrinks to one.
  EXPECT_FALSE(p.release(1, t0, 0, true, t0 + 1ms).close);
  p.set_limits(limits(1));
  auto trimmed = p.trim(p.cap());
  EXPECT_EQ(trimmed.size(), 1u);  // of the idle one only: the two busy ones still count
  EXPECT_EQ(p.total(), 2u);
  // A busy one released above the new size closes instead of going idle...
  auto r = p.release(2, t0, 0, true, t0 + 2ms);
  ASSERT_TRUE(r.close);
  EXPECT_EQ(*r.close, 2);
  // ...the last one fits and stays.
  r = p.release(3, t0, 0, true, t0 + 3ms);
  EXPECT_FALSE(r.close);
  EXPECT_EQ(p.idle_count(), 1u);
  EXPECT_EQ(p.total(), 1u);
}

TEST(PoolCore, GrownPoolOpensWhatItsWaitersNeed) {
  Core p(limits(1), 1, nullptr);
  p.acquire(0, t0);
  p.acquire(0, t0);
  p.acquire(0, t0);
  EXPECT_EQ(p.connecting(), 1u);
  p.set_limits(limits(3));
  EXPECT_EQ(p.replan(t0), 2u);
  EXPECT_EQ(p.connecting(), 3u);
}

TEST(PoolCore, ABusyPoolShrinksEvenWithClientsWaiting) {
  Core p(limits(2), 1, nullptr);
  p.acquire(0, t0);
  p.acquire(0, t0);
  ASSERT_TRUE(p.connect_succeeded(1, 0, t0));
  ASSERT_TRUE(p.connect_succeeded(2, 0, t0));
  auto waiter = p.acquire(0, t0 + 1ms);
  p.set_limits(limits(1));
  // The surplus connection closes; the waiter is served by the one the pool keeps.
  auto r = p.release(1, t0, 0, true, t0 + 2ms);
  ASSERT_TRUE(r.close);
  EXPECT_EQ(r.connects, 0u);
  EXPECT_EQ(p.waiting(), 1u);
  r = p.release(2, t0, 0, true, t0 + 3ms);
  ASSERT_TRUE(r.grant);
  EXPECT_EQ(r.grant->waiter, waiter.waiter);
  EXPECT_EQ(p.total(), 1u);
}

}  // namespace
