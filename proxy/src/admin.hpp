// The admin console: the virtual database "pgwarden" (also answered as "pgbouncer", so PgBouncer's exporters
// and dashboards work) for proxy.admin_users. SHOW commands use PgBouncer's column names and types where they
// mean the same thing; commands that change something are audit events.
#pragma once

#include <boost/asio/awaitable.hpp>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "pgw/config/config.hpp"

namespace pgw::proxy {

namespace asio = boost::asio;
class Server;
class SessionAudit;

// True for "pgwarden" and "pgbouncer", unless a [[database]] of that name exists (then it is a database).
bool is_admin_database(const config::Config& config, std::string_view name) noexcept;

class AdminConsole {
 public:
  // `audit` may be null (audit.enabled = false).
  AdminConsole(Server& server, SessionAudit* audit) : server_(server), audit_(audit) {}

  // Runs the commands of one simple Query and appends the answer (results, CommandComplete or ErrorResponse;
  // no ReadyForQuery) to `out`.
  asio::awaitable<void> execute(std::string_view sql, std::vector<std::uint8_t>& out);

 private:
  asio::awaitable<void> run_one(std::string_view command, std::vector<std::uint8_t>& out);
  asio::awaitable<void> show(std::string_view what, std::vector<std::uint8_t>& out);
  void audit(std::string_view verb, std::string_view text, std::string_view sqlstate = {},
             std::string_view reason = {});

  Server& server_;
  SessionAudit* audit_;
};

}  // namespace pgw::proxy
