// Counted events that belong to no pool: TLS handshakes, failed logins, refused connections, admin
// commands. Declared in one list; SHOW LISTS-style views and /metrics read the same numbers. Events are
// rare next to queries (at most one or two per connection), so one mutex serves.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace pgw::proxy {

enum class EventFamily : std::uint8_t {
  tls_handshakes,
  auth_failures,
  refusals,
  admin_commands,
  cancels,
  count_
};

struct EventFamilyInfo {
  std::string_view metric;  // after "pgwarden_"
  std::string_view help;
  std::string_view label;  // the label that tells the events of a family apart
};

inline constexpr std::array<EventFamilyInfo, static_cast<std::size_t>(EventFamily::count_)> event_families{{
    {"client_tls_handshakes_total", "TLS handshakes with clients, by result", "result"},
    {"auth_failures_total", "Failed client logins, by SQLSTATE", "sqlstate"},
    {"refused_connections_total", "Client connections refused before or at login, by reason", "reason"},
    {"admin_commands_total", "Admin console commands that change something, by command", "command"},
    {"cancel_requests_total",
     "CancelRequests: sent to a server, forwarded to a peer, abandoning a request still queued for a server "
     "connection, or ignored (idle client, unknown key, unknown peer)",
     "result"},
}};

class EventCounters {
 public:
  void count(EventFamily family, std::string_view label) {
    std::lock_guard lock(mutex_);
    auto& by_label = counts_[static_cast<std::size_t>(family)];
    auto it = by_label.find(label);
    if (it == by_label.end()) it = by_label.emplace(std::string(label), 0).first;
    ++it->second;
  }
  // Every (label, count) of a family, ordered by label.
  std::vector<std::pair<std::string, std::uint64_t>> of(EventFamily family) const {
    std::lock_guard lock(mutex_);
    const auto& by_label = counts_[static_cast<std::size_t>(family)];
    return {by_label.begin(), by_label.end()};
  }

 private:
  mutable std::mutex mutex_;
  std::array<std::map<std::string, std::uint64_t, std::less<>>, event_families.size()> counts_;
};

}  // namespace pgw::proxy
