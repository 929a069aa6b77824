// Logging: one spdlog logger, text or JSON lines on stderr; session lines carry the session id and both
// endpoints.
#pragma once

#include <spdlog/spdlog.h>

#include <exception>
#include <string>
#include <string_view>

#include "pgw/config/config.hpp"

namespace pgw::proxy::log {

void setup(const config::LogSettings& settings);
void set_level(config::LogLevel level);

// co_spawn completion: a coroutine that escapes with an exception is a bug worth a loud line, never silence.
void exception(const std::exception_ptr& e, const char* what);

// Prefixes every line with "session=<id> client=<addr:port> server=<addr:port>".
class SessionLog {
 public:
  void set_session(std::string id, std::string client) {
    id_ = std::move(id);
    client_ = std::move(client);
  }
  void set_server(std::string_view server) { server_.assign(server); }  // per attach: reuses the storage
  const std::string& id() const noexcept { return id_; }
  const std::string& client() const noexcept { return client_; }

  template <class... Args>
  void log(spdlog::level::level_enum level, fmt::format_string<Args...> f, Args&&... args) const {
    if (!spdlog::should_log(level)) return;  // formatting only for lines that will be written
    spdlog::log(level, "session={} client={} server={} {}", id_, client_, server_.empty() ? "-" : server_,
                fmt::format(f, std::forward<Args>(args)...));
  }
  template <class... Args>
  void debug(fmt::format_string<Args...> f, Args&&... args) const {
    log(spdlog::level::debug, f, std::forward<Args>(args)...);
  }
  template <class... Args>
  void info(fmt::format_string<Args...> f, Args&&... args) const {
    log(spdlog::level::info, f, std::forward<Args>(args)...);
  }
  template <class... Args>
  void warn(fmt::format_string<Args...> f, Args&&... args) const {
    log(spdlog::level::warn, f, std::forward<Args>(args)...);
  }
  template <class... Args>
  void error(fmt::format_string<Args...> f, Args&&... args) const {
    log(spdlog::level::err, f, std::forward<Args>(args)...);
  }

 private:
  std::string id_;
  std::string client_;
  std::string server_;
};

}  // namespace pgw::proxy::log
