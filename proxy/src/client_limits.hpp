// Connection limits shared by all workers: per client address (connections at once, new connections per
// second as a token bucket) and per database / per user. Each admit that succeeds is paired with a release.
#pragma once

#include <chrono>
#include <cstddef>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include "pgw/config/access.hpp"

namespace pgw::proxy {

// IPv4-mapped IPv6 addresses count as their IPv4 address: one client, one budget, whichever listener it used.
config::IpAddress canonical(const config::IpAddress& a) noexcept;

// The rate is taken at accept (before TLS: it is what bounds the cost of a flood); the connection count when
// the client is admitted after its startup packet, so a refusal comes after TLS and the client sees it.
class AddressLimits {
 public:
  using Clock = std::chrono::steady_clock;
  // Addresses with no open connection are kept only for their rate; beyond this many they are swept.
  static constexpr std::size_t max_idle_addresses = 65536;

  // One new connection from this address; false when its bucket is empty. rate_per_second 0 = unlimited.
  bool take_token(const config::IpAddress& address, unsigned rate_per_second, Clock::time_point now);
  // One more open connection; false when max_connections (0 = unlimited) are already open.
  bool add_connection(const config::IpAddress& address, unsigned max_connections);
  void release(const config::IpAddress& address);
  unsigned connections(const config::IpAddress& address) const;
  std::size_t tracked() const;

 private:
  struct Entry {
    unsigned connections = 0;
    double tokens = 0;
    Clock::time_point refilled{};
    unsigned rate = 0;
  };
  using Key = std::array<std::uint8_t, 17>;
  struct KeyHash {
    std::size_t operator()(const Key& k) const noexcept {
      return std::hash<std::string_view>{}(
          std::string_view(reinterpret_cast<const char*>(k.data()), k.size()));
    }
  };
  static Key key_of(const config::IpAddress& a) noexcept;
  void sweep_locked(Clock::time_point now);

  mutable std::mutex mutex_;
  std::unordered_map<Key, Entry, KeyHash> entries_;
};

class NameLimits {
 public:
  // Counts the client against its database and its user; false (nothing counted) when either is full.
  bool admit(const std::string& database, const std::string& user, unsigned max_per_database,
             unsigned max_per_user);
  void release(const std::string& database, const std::string& user);

 private:
  std::mutex mutex_;
  std::map<std::string, unsigned, std::less<>> databases_;
  std::map<std::string, unsigned, std::less<>> users_;
};

}  // namespace pgw::proxy
