// Per client address back-off after failed logins: after N failures in a row, new logins from that address
// are refused until a delay passes, the delay doubling per further failure. Shared by all workers.
#pragma once

#include <chrono>
#include <cstddef>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

namespace pgw::proxy {

class LoginBackoff {
 public:
  using Clock = std::chrono::steady_clock;
  struct Policy {
    unsigned after_failures = 5;  // 0 = off
    std::chrono::milliseconds initial{1000};
    std::chrono::milliseconds max{60000};
  };
  // Addresses tracked at most: a flood of distinct addresses cannot grow this without bound.
  static constexpr std::size_t max_addresses = 65536;

  // How long this address must still wait; zero when it may try.
  std::chrono::milliseconds remaining(std::string_view address, Clock::time_point now) const;
  void failed(std::string_view address, const Policy& policy, Clock::time_point now);
  void succeeded(std::string_view address);
  std::size_t tracked() const;

 private:
  struct Entry {
    unsigned failures = 0;
    Clock::time_point locked_until{};
    Clock::time_point forget_after{};
  };
  struct Hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
  };
  void sweep_locked(Clock::time_point now);

  mutable std::mutex mutex_;
  std::unordered_map<std::string, Entry, Hash, std::equal_to<>> entries_;
};

}  // namespace pgw::proxy
