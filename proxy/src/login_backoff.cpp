// Failure counting per address; entries are forgotten once their back-off and a quiet period have passed.
#include "login_backoff.hpp"

#include <algorithm>

namespace pgw::proxy {

std::chrono::milliseconds LoginBackoff::remaining(std::string_view address, Clock::time_point now) const {
  std::lock_guard lock(mutex_);
  auto it = entries_.find(address);
  if (it == entries_.end() || it->second.locked_until <= now) return std::chrono::milliseconds(0);
  return std::chrono::ceil<std::chrono::milliseconds>(it->second.locked_until - now);
}

void LoginBackoff::failed(std::string_view address, const Policy& policy, Clock::time_point now) {
  if (policy.after_failures == 0) return;
  std::lock_guard lock(mutex_);
  auto it = entries_.find(address);
  if (it == entries_.end()) {
    if (entries_.size() >= max_addresses) sweep_locked(now);
    // Still full of addresses in back-off: the newest one goes uncounted rather than growing the table.
    if (entries_.size() >= max_addresses) return;
    it = entries_.emplace(std::string(address), Entry{}).first;
  }
  Entry& e = it->second;
  if (e.forget_after <= now) e.failures = 0;  // a quiet period since the last failure starts over
  ++e.failures;
  if (e.failures >= policy.after_failures) {
    unsigned doublings = std::min(e.failures - policy.after_failures, 30u);
    auto delay =
        std::min<std::chrono::milliseconds>(policy.initial * (std::int64_t{1} << doublings), policy.max);
    e.locked_until = now + delay;
  }
  // Failures spread wider apart than the longest back-off do not add up.
  e.forget_after = std::max(e.locked_until, now) + policy.max;
}

void LoginBackoff::succeeded(std::string_view address) {
  std::lock_guard lock(mutex_);
  if (entries_.empty()) return;
  auto it = entries_.find(address);
  if (it != entries_.end()) entries_.erase(it);
}

std::size_t LoginBackoff::tracked() const {
  std::lock_guard lock(mutex_);
  return entries_.size();
}

void LoginBackoff::sweep_locked(Clock::time_point now) {
  std::erase_if(entries_, [now](const auto& kv) { return kv.second.forget_after <= now; });
}

}  // namespace pgw::proxy
