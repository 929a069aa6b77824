// What each pool counts (transactions, queries, bytes, times, waits), declared once: SHOW STATS, SHOW POOLS
// and /metrics all read these numbers. Each worker thread writes its own shard, so counting takes no lock and
// no locked instruction; readers sum the shards.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>

namespace pgw::pool {

enum class PoolCounter : std::uint8_t {
  xact_count,     // transactions ended (ReadyForQuery 'I' after the client's requests)
  query_count,    // requests answered (each ReadyForQuery the client waited for)
  received,       // bytes from clients
  sent,           // bytes to clients
  xact_time_us,   // time from a transaction's first request to its end
  query_time_us,  // time from a request to its ReadyForQuery
  wait_time_us,   // time clients waited for a server connection
  wait_count,     // times a client had to wait for one
  count_
};
inline constexpr std::size_t pool_counter_count = static_cast<std::size_t>(PoolCounter::count_);

struct CounterInfo {
  std::string_view show;    // SHOW STATS column (PgBouncer's name, "total_" + this)
  std::string_view metric;  // Prometheus name after "pgwarden_pool_"
  std::string_view help;
  bool microseconds;  // exported in seconds
};

inline constexpr std::array<CounterInfo, pool_counter_count> pool_counter_info{{
    {"xact_count", "transactions_total", "Transactions ended (or statements, in statement mode)", false},
    {"query_count", "queries_total", "Requests answered with ReadyForQuery", false},
    {"received", "received_bytes_total", "Bytes received from clients", false},
    {"sent", "sent_bytes_total", "Bytes sent to clients", false},
    {"xact_time", "transaction_seconds_total", "Time spent in transactions", true},
    {"query_time", "query_seconds_total", "Time from a request to its ReadyForQuery", true},
    {"wait_time", "wait_seconds_total", "Time clients waited for a server connection", true},
    {"wait_count", "waits_total", "Times a client waited for a server connection", false},
}};

// Upper bounds (seconds) of the wait-time histogram's buckets; +Inf is implied.
inline constexpr std::array<double, 10> wait_buckets{0.0001, 0.0005, 0.001, 0.005, 0.01,
                                                     0.05,   0.1,    0.5,   1,     5};

using CounterValues = std::array<std::uint64_t, pool_counter_count>;
using BucketValues = std::array<std::uint64_t, wait_buckets.size()>;

// One worker's counts for one pool. Written by that worker's thread only: a relaxed load and store.
struct alignas(64) CounterShard {
  std::array<std::atomic<std::uint64_t>, pool_counter_count> values{};
  std::array<std::atomic<std::uint64_t>, wait_buckets.size()>
      wait_bucket_counts{};              // per bucket, not cumulative
  std::atomic<std::int64_t> clients{0};  // logged-in clients of this pool on this worker
  std::atomic<std::int64_t> paused{0};   // of them, waiting for RESUME (PAUSE, KILL, SUSPEND)

  void add(PoolCounter c, std::uint64_t n) noexcept {
    auto& v = values[static_cast<std::size_t>(c)];
    v.store(v.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  void add_clients(std::int64_t n) noexcept {
    clients.store(clients.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  void add_paused(std::int64_t n) noexcept {
    paused.store(paused.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  // A wait of `us` microseconds: counted in wait_time, wait_count and the histogram.
  void add_wait(std::uint64_t us) noexcept;
};

class PoolCounters {
 public:
  explicit PoolCounters(std::size_t workers)
      : shards_(std::make_unique<CounterShard[]>(workers)), n_(workers) {}
  CounterShard& shard(std::size_t worker) noexcept { return shards_[worker]; }
  CounterValues totals() const noexcept;
  BucketValues wait_histogram() const noexcept;  // per bucket, not cumulative
  std::int64_t clients() const noexcept;
  std::int64_t paused() const noexcept;

 private:
  std::unique_ptr<CounterShard[]> shards_;
  std::size_t n_;
};

}  // namespace pgw::pool
