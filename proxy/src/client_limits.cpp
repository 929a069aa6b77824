// Token buckets refill continuously; entries go away when no connection is open and the bucket is full again.
#include "client_limits.hpp"

#include <algorithm>

namespace pgw::proxy {

config::IpAddress canonical(const config::IpAddress& a) noexcept {
  using F = config::IpAddress::Family;
  if (a.family != F::inet6) return a;
  for (int i = 0; i < 10; ++i) {
    if (a.bytes[i] != 0) return a;
  }
  if (a.bytes[10] != 0xff || a.bytes[11] != 0xff) return a;
  config::IpAddress v4;
  v4.family = F::inet;
  std::copy(a.bytes.begin() + 12, a.bytes.end(), v4.bytes.begin());
  return v4;
}

AddressLimits::Key AddressLimits::key_of(const config::IpAddress& address) noexcept {
  config::IpAddress a = canonical(address);
  Key k{};
  k[0] = static_cast<std::uint8_t>(a.family);
  std::copy(a.bytes.begin(), a.bytes.end(), k.begin() + 1);
  return k;
}

bool AddressLimits::take_token(const config::IpAddress& address, unsigned rate_per_second,
                               Clock::time_point now) {
  if (rate_per_second == 0) return true;
  std::lock_guard lock(mutex_);
  if (entries_.size() >= max_idle_addresses) sweep_locked(now);
  auto [it, fresh] = entries_.try_emplace(key_of(address));
  Entry& e = it->second;
  double burst = rate_per_second;
  if (fresh || e.rate != rate_per_second) {
    e.tokens = burst;
    e.rate = rate_per_second;
  } else {
    std::chrono::duration<double> elapsed = now - e.refilled;
    e.tokens = std::min(burst, e.tokens + elapsed.count() * rate_per_second);
  }
  e.refilled = now;
  if (e.tokens < 1.0) return false;
  e.tokens -= 1.0;
  return true;
}

bool AddressLimits::add_connection(const config::IpAddress& address, unsigned max_connections) {
  std::lock_guard lock(mutex_);
  Entry& e = entries_[key_of(address)];
  if (max_connections > 0 && e.connections >= max_connections) return false;
  ++e.connections;
  return true;
}

void AddressLimits::release(const config::IpAddress& address) {
  std::lock_guard lock(mutex_);
  auto it = entries_.find(key_of(address));
  if (it == entries_.end() || it->second.connections == 0) return;
  --it->second.connections;
  // Without a rate to remember the entry has no more use.
  if (it->second.connections == 0 && it->second.rate == 0) entries_.erase(it);
}

unsigned AddressLimits::connections(const config::IpAddress& address) const {
  std::lock_guard lock(mutex_);
  auto it = entries_.find(key_of(address));
  return it == entries_.end() ? 0 : it->second.connections;
}

std::size_t AddressLimits::tracked() const {
  std::lock_guard lock(mutex_);
  return entries_.size();
}

void AddressLimits::sweep_locked(Clock::time_point now) {
  std::erase_if(entries_, [now](const auto& kv) {
    const Entry& e = kv.second;
    if (e.connections > 0) return false;
    if (e.rate == 0) return true;
    std::chrono::duration<double> elapsed = now - e.refilled;
    return e.tokens + elapsed.count() * e.rate >= e.rate;  // as good as new: forgetting changes nothing
  });
}

bool NameLimits::admit(const std::string& database, const std::string& user, unsigned max_per_database,
                       unsigned max_per_user) {
  std::lock_guard lock(mutex_);
  unsigned& d = databases_[database];
  unsigned& u = users_[user];
  if ((max_per_database > 0 && d >= max_per_database) || (max_per_user > 0 && u >= max_per_user)) {
    if (d == 0) databases_.erase(database);
    if (u == 0) users_.erase(user);
    return false;
  }
  ++d;
  ++u;
  return true;
}

void NameLimits::release(const std::string& database, const std::string& user) {
  std::lock_guard lock(mutex_);
  for (auto [map, name] : {std::pair{&databases_, &database}, std::pair{&users_, &user}}) {
    auto it = map->find(*name);
    if (it == map->end()) continue;
    if (--it->second == 0) map->erase(it);
  }
}

}  // namespace pgw::proxy
