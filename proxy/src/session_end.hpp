// The closed set of ways a client session ends; one cleanup function decides what each means.
#pragma once

#include <boost/system/error_code.hpp>

#include <cstdint>
#include <string_view>

namespace pgw::proxy {

enum class SessionEnd : std::uint8_t {
  none = 0,
  refused,                        // answered during login (bad password, TLS required, ...) and closed
  client_closed,                  // Terminate, EOF or reset from the client
  client_io_error,                // a read or write on the client connection failed otherwise
  client_protocol_violation,      // the client broke the protocol: 08P01
  server_closed,                  // PostgreSQL closed the connection: 08006
  server_io_error,                // a read or write on the server connection failed: 08006
  server_protocol_violation,      // PostgreSQL sent something we cannot follow: closed, 08006
  drained,                        // shutdown: closed at an idle point with 57P01
  shutdown_forced,                // shutdown_timeout passed: closed with 57P01
  login_timeout,                  // client_login_timeout passed before the session was ready
  query_wait_timeout,             // no server connection became free in time: 57014
  server_unavailable,             // the pool could not open a server connection: 08006
  settings_lost,                  // restoring the client's settings on a server connection failed: 08006
  client_idle_timeout,            // client_idle_timeout passed outside a transaction: 57P05
  idle_transaction_timeout,       // idle_transaction_timeout passed inside a transaction: 25P03
  transaction_in_statement_mode,  // a transaction block opened in statement pooling: 0A000
  audit_unavailable,              // the audit log cannot take records and on_failure = "block": 58030
  access_revoked,                 // a reload's access rules no longer allow the client: 28000
};

std::string_view describe(SessionEnd e) noexcept;
const boost::system::error_category& session_end_category() noexcept;
inline boost::system::error_code make_error_code(SessionEnd e) noexcept {
  return {static_cast<int>(e), session_end_category()};
}

}  // namespace pgw::proxy

template <>
struct boost::system::is_error_code_enum<pgw::proxy::SessionEnd> : std::true_type {};
