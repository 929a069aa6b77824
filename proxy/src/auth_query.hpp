// auth_query: secrets of users the auth file does not list, looked up on the server by auth.query_user over
// that user's own pool (a dedicated server connection, never a client's), with a short positive cache.
#pragma once

#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

#include "pgw/protocol/client_auth.hpp"
#include "runtime.hpp"

namespace pgw::proxy {

class Server;
class Worker;

class AuthQuery {
 public:
  struct Result {
    enum class Status : std::uint8_t { found, not_found, failed } status = Status::not_found;
    std::optional<protocol::UserSecret> secret;
    std::string error;  // failed: what went wrong, never holding a secret
  };
  // Found entries kept at most; an entry past its ttl is looked up again.
  static constexpr std::size_t max_cached = 10000;

  // Runs on the caller's worker; the caller's login deadline bounds it (the query itself is bounded by the
  // database's server_connect_timeout).
  boost::asio::awaitable<Result> lookup(Server& server, Worker& worker, const Runtime& rt,
                                        const config::DatabaseSettings& db, const std::string& user);
  void clear();

 private:
  using Clock = std::chrono::steady_clock;
  struct Cached {
    protocol::UserSecret secret;
    Clock::time_point expires;
  };
  std::mutex mutex_;
  std::unordered_map<std::string, Cached> cache_;  // key: database '\0' user
};

}  // namespace pgw::proxy
