// What the admin console shows of one client session and the server connection it holds (SHOW CLIENTS,
// SHOW SERVERS), copied on the session's own thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

namespace pgw::proxy {

struct ServerLinkInfo {
  std::string addr;
  std::uint16_t port = 0;
  std::string local_addr;
  std::uint16_t local_port = 0;
  std::int32_t backend_pid = 0;
  std::string tls;  // "TLSv1.3" or ""
  std::chrono::system_clock::time_point connect_time;
};

struct SessionInfo {
  std::string id;  // the session id of logs and audit records
  std::string user;
  std::string database;
  std::string state;  // login | active | waiting
  std::string addr;
  std::uint16_t port = 0;
  std::string local_addr;
  std::uint16_t local_port = 0;
  std::chrono::system_clock::time_point connect_time;
  std::chrono::system_clock::time_point request_time;  // last bytes from the client
  std::int64_t wait_us = 0;                            // waiting for a server connection for this long
  std::string tls;
  std::string application_name;
  bool admin = false;
  std::optional<ServerLinkInfo> server;  // attached now
};

}  // namespace pgw::proxy
