// Text and error category for session outcomes.
#include "session_end.hpp"

#include <string>

namespace pgw::proxy {

std::string_view describe(SessionEnd e) noexcept {
  switch (e) {
    case SessionEnd::none:
      return "running";
    case SessionEnd::refused:
      return "refused during login";
    case SessionEnd::client_closed:
      return "client closed the connection";
    case SessionEnd::client_io_error:
      return "client connection failed";
    case SessionEnd::client_protocol_violation:
      return "client protocol violation";
    case SessionEnd::server_closed:
      return "server closed the connection";
    case SessionEnd::server_io_error:
      return "server connection failed";
    case SessionEnd::server_protocol_violation:
      return "server protocol violation";
    case SessionEnd::drained:
      return "closed by shutdown at an idle point";
    case SessionEnd::shutdown_forced:
      return "closed by shutdown_timeout";
    case SessionEnd::login_timeout:
      return "client_login_timeout passed";
    case SessionEnd::query_wait_timeout:
      return "query_wait_timeout passed waiting for a server connection";
    case SessionEnd::server_unavailable:
      return "no server connection could be opened";
    case SessionEnd::settings_lost:
      return "restoring the client's settings failed";
    case SessionEnd::client_idle_timeout:
      return "client_idle_timeout passed";
    case SessionEnd::idle_transaction_timeout:
      return "idle_transaction_timeout passed";
    case SessionEnd::transaction_in_statement_mode:
      return "transaction block in statement pooling mode";
    case SessionEnd::audit_unavailable:
      return "audit log unavailable";
    case SessionEnd::access_revoked:
      return "access revoked by a reload";
  }
  return "unknown";
}

namespace {
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored \
    "-Wnon-virtual-dtor"  // Boost's error_category has a protected non-virtual dtor
class SessionEndCategory final : public boost::system::error_category {
 public:
  const char* name() const noexcept override { return "pgwarden.session"; }
  std::string message(int ev) const override { return std::string(describe(static_cast<SessionEnd>(ev))); }
};
#pragma GCC diagnostic pop
}  // namespace

const boost::system::error_category& session_end_category() noexcept {
  static const SessionEndCategory category;
  return category;
}

}  // namespace pgw::proxy
