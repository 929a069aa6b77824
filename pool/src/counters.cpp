// Summing the per-worker shards of a pool's counters.
#include "pgw/pool/counters.hpp"

namespace pgw::pool {

void CounterShard::add_wait(std::uint64_t us) noexcept {
  add(PoolCounter::wait_time_us, us);
  add(PoolCounter::wait_count, 1);
  const double seconds = static_cast<double>(us) / 1e6;
  for (std::size_t i = 0; i < wait_buckets.size(); ++i) {
    if (seconds <= wait_buckets[i]) {
      auto& b = wait_bucket_counts[i];
      b.store(b.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
      return;
    }
  }
  // Above the last bound: only in +Inf, which is wait_count.
}

CounterValues PoolCounters::totals() const noexcept {
  CounterValues out{};
  for (std::size_t w = 0; w < n_; ++w) {
    for (std::size_t i = 0; i < out.size(); ++i)
      out[i] += shards_[w].values[i].load(std::memory_order_relaxed);
  }
  return out;
}

BucketValues PoolCounters::wait_histogram() const noexcept {
  BucketValues out{};
  for (std::size_t w = 0; w < n_; ++w) {
    for (std::size_t i = 0; i < out.size(); ++i)
      out[i] += shards_[w].wait_bucket_counts[i].load(std::memory_order_relaxed);
  }
  return out;
}

std::int64_t PoolCounters::clients() const noexcept {
  std::int64_t n = 0;
  for (std::size_t w = 0; w < n_; ++w)
    n += shards_[w].clients.load(std::memory_order_relaxed);
  return n;
}

std::int64_t PoolCounters::paused() const noexcept {
  std::int64_t n = 0;
  for (std::size_t w = 0; w < n_; ++w)
    n += shards_[w].paused.load(std::memory_order_relaxed);
  return n;
}

}  // namespace pgw::pool
