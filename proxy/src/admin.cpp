// The admin console: parses the simple commands of PgBouncer's console and answers them from the pools' and
// the server's counters; the session's loop for an admin connection.
#include "admin.hpp"

#include <boost/algorithm/string/case_conv.hpp>
#include <boost/algorithm/string/predicate.hpp>
#include <boost/algorithm/string/trim.hpp>

#include <algorithm>
#include <map>
#include <optional>
#include <set>

#include "client_session.hpp"
#include "pgw/protocol/encoder.hpp"
#include "server.hpp"
#include "session_audit.hpp"

namespace pgw::proxy {

using namespace protocol;

namespace {

constexpr std::int32_t oid_text = 25;
constexpr std::int32_t oid_int4 = 23;
constexpr std::int32_t oid_int8 = 20;
constexpr std::int32_t oid_numeric = 1700;

// One result set, written as RowDescription, DataRows and CommandComplete "SHOW".
class Result {
 public:
  Result& column(std::string name, std::int32_t oid) {
    names_.push_back(std::move(name));
    oids_.push_back(oid);
    return *this;
  }
  // Values in text form, one per column; nullopt = NULL.
  void row(std::vector<std::optional<std::string>> values) { rows_.push_back(std::move(values)); }
  void write(Encoder& e, std::string_view tag = "SHOW") const {
    std::vector<encode::ColumnDescription> columns;
    for (std::size_t i = 0; i < names_.size(); ++i) {
      auto size = static_cast<std::int16_t>(oids_[i] == oid_int4 ? 4 : oids_[i] == oid_int8 ? 8 : -1);
      columns.push_back({names_[i], oids_[i], size});
    }
    encode::row_description(e, columns);
    std::vector<std::optional<std::string_view>> values;
    for (const auto& r : rows_) {
      values.assign(r.begin(), r.end());
      encode::data_row(e, values);
    }
    encode::command_complete(e, tag);
  }

 private:
  std::vector<std::string> names_;
  std::vector<std::int32_t> oids_;
  std::vector<std::vector<std::optional<std::string>>> rows_;
};

template <class T>
std::string num(T v) {
  return std::to_string(v);
}

// "2026-11-23 17:44:43 UTC", as PgBouncer shows times.
std::string show_time(std::chrono::system_clock::time_point t) {
  auto secs = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S UTC", &tm);
  return buf;
}

std::optional<std::string> nullable(const std::string& s) {
  if (s.empty()) return std::nullopt;
  return s;
}

void error(Encoder& e, std::string_view sqlstate, std::string_view message, std::string_view detail = {},
           std::string_view hint = {}) {
  encode::error_response(e, Notice{"ERROR", sqlstate, message, detail, hint});
}

// Splits on ';' outside quotes; blank commands are dropped.
std::vector<std::string_view> split_commands(std::string_view sql) {
  std::vector<std::string_view> out;
  std::size_t start = 0;
  char quote = 0;
  for (std::size_t i = 0; i <= sql.size(); ++i) {
    char c = i < sql.size() ? sql[i] : ';';
    if (quote != 0) {
      if (c == quote) quote = 0;
      continue;
    }
    if (c == '\'' || c == '"') {
      quote = c;
    } else if (c == ';') {
      auto part = boost::algorithm::trim_copy(sql.substr(start, i - start));
      if (!part.empty()) out.push_back(part);
      start = i + 1;
    }
  }
  return out;
}

std::vector<std::string_view> words(std::string_view s) {
  std::vector<std::string_view> out;
  std::size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i])) != 0)
      ++i;
    std::size_t j = i;
    while (j < s.size() && std::isspace(static_cast<unsigned char>(s[j])) == 0)
      ++j;
    if (j > i) out.push_back(s.substr(i, j - i));
    i = j;
  }
  return out;
}

// A database name as the console takes it: bare or in double quotes.
std::string name_arg(std::string_view w) {
  if (w.size() >= 2 && w.front() == '"' && w.back() == '"') return std::string(w.substr(1, w.size() - 2));
  return std::string(w);
}

std::string diagnostics_text(const std::vector<config::Diagnostic>& diags) {
  std::string out;
  for (const auto& d : diags) {
    if (!out.empty()) out += "\n";
    out += d.where.file == "SET" ? d.message : d.to_string();
  }
  return out;
}

}  // namespace

bool is_admin_database(const config::Config& config, std::string_view name) noexcept {
  return (name == "pgwarden" || name == "pgbouncer") && config.find_database(name) == nullptr;
}

void AdminConsole::audit(std::string_view verb, std::string_view text, std::string_view sqlstate,
                         std::string_view reason) {
  server_.events().count(EventFamily::admin_commands, verb);
  if (audit_ != nullptr) audit_->admin_command(verb, text, sqlstate, reason);
}

asio::awaitable<void> AdminConsole::execute(std::string_view sql, std::vector<std::uint8_t>& out) {
  auto commands = split_commands(sql);
  if (commands.empty()) {
    Encoder e(out);
    encode::empty_query_response(e);
    co_return;
  }
  for (auto command : commands) {
    std::size_t before = out.size();
    co_await run_one(command, out);
    // An error ends the query string, as in PostgreSQL.
    if (out.size() > before && out[before] == static_cast<std::uint8_t>(backend::error_response)) break;
  }
}

asio::awaitable<void> AdminConsole::run_one(std::string_view command, std::vector<std::uint8_t>& out) {
  Encoder e(out);
  auto w = words(command);
  std::string verb = boost::algorithm::to_upper_copy(std::string(w.at(0)));
  // A change the audit log cannot record is not made (on_failure = "block"), as for any modifying statement.
  if (verb != "SHOW" && server_.audit() != nullptr && server_.audit()->failing() &&
      server_.audit_settings().on_failure == config::AuditOnFailure::block) {
    error(e, "58030", "the audit log cannot be written: admin commands that change something are refused", {},
          "SHOW AUDIT says why; audit.on_failure = \"block\"");
    co_return;
  }
  auto arg = [&](std::size_t i) { return i < w.size() ? std::optional(name_arg(w[i])) : std::nullopt; };
  if (verb == "SHOW") {
    if (w.size() != 2) {
      error(e, "42601",
            "SHOW needs one of: POOLS, STATS, CLIENTS, SERVERS, DATABASES, USERS, CONFIG, LISTS, "
            "VERSION, STATE, AUDIT, HELP");
      co_return;
    }
    co_await show(boost::algorithm::to_upper_copy(std::string(w[1])), out);
    co_return;
  }
  if (verb == "RELOAD" && w.size() == 1) {
    auto diags = server_.reload();
    if (!diags.empty()) {
      audit("RELOAD", command, "F0000", "config refused");
      error(e, "F0000", "reload refused: the config has errors; the running config stays",
            diagnostics_text(diags));
      co_return;
    }
    audit("RELOAD", command);
    encode::command_complete(e, "RELOAD");
    co_return;
  }
  if (verb == "SET") {
    // SET key = value | SET key TO value
    std::string_view rest = boost::algorithm::trim_copy(command.substr(3));
    std::size_t eq = rest.find('=');
    std::string_view key, value;
    if (eq != std::string_view::npos) {
      key = boost::algorithm::trim_copy(rest.substr(0, eq));
      value = boost::algorithm::trim_copy(rest.substr(eq + 1));
    } else if (w.size() >= 4 && boost::algorithm::iequals(w[2], "TO")) {
      key = w[1];
      value = boost::algorithm::trim_copy(
          command.substr(static_cast<std::size_t>(w[2].data() - command.data()) + 2));
    }
    if (key.empty() || value.empty()) {
      error(e, "42601", "expected SET key = value");
      co_return;
    }
    auto diags = server_.set_key(key, value);
    if (!diags.empty()) {
      std::string text = diagnostics_text(diags);
      const char* sqlstate = text.find("needs a restart") != std::string::npos ? "55P02"
                             : text.starts_with("unknown key")                 ? "42704"
                                                                               : "22023";
      audit("SET", command, sqlstate, text);
      error(e, sqlstate, "SET " + std::string(key) + " refused", text);
      co_return;
    }
    audit("SET", command);
    encode::command_complete(e, "SET");
    co_return;
  }
  if ((verb == "PAUSE" || verb == "KILL") && w.size() <= 2) {
    auto db = arg(1);
    if (verb == "KILL" && !db) {
      error(e, "42601", "KILL needs a database name");
      co_return;
    }
    if (db && server_.runtime()->config->find_database(*db) == nullptr) {
      audit(verb, command, "3D000", "no such database");
      error(e, "3D000", "no such database: " + *db);
      co_return;
    }
    server_.pause(db);
    audit(verb, command);  // in effect from here, whether or not the wait below completes
    if (verb == "KILL") {
      // Its clients are closed now; their server connections close as the sessions finish (a paused
      // database's connections are not pooled), and whatever was idle goes below.
      server_.kill_database(*db);
      co_await server_.wait_servers_released(db);
    } else if (!co_await server_.wait_servers_released(db)) {
      audit(verb, command, "57014", "resumed before every server connection was released");
      error(e, "57014", "RESUME came before every server connection was released");
      co_return;
    }
    server_.close_idle_servers(db);
    encode::command_complete(e, verb);
    co_return;
  }
  if (verb == "SUSPEND" && w.size() == 1) {
    server_.suspend();
    audit(verb, command);
    if (!co_await server_.wait_servers_released(std::nullopt)) {
      audit(verb, command, "57014", "resumed before every server connection was released");
      error(e, "57014", "RESUME came before every server connection was released");
      co_return;
    }
    encode::command_complete(e, verb);
    co_return;
  }
  if (verb == "RESUME" && w.size() <= 2) {
    auto db = arg(1);
    if (!server_.resume(db)) {
      audit(verb, command, "55000", "not paused");
      error(e, "55000", db ? "database " + *db + " is not paused" : "pgwarden is not paused or suspended");
      co_return;
    }
    audit(verb, command);
    encode::command_complete(e, verb);
    co_return;
  }
  if (verb == "SHUTDOWN" && w.size() == 1) {
    audit(verb, command);
    server_.shutdown();
    encode::command_complete(e, verb);
    co_return;
  }
  error(e, "42601", "invalid admin command \"" + std::string(command) + "\"", {},
        "SHOW HELP lists the commands.");
}

asio::awaitable<void> AdminConsole::show(std::string_view what, std::vector<std::uint8_t>& out) {
  Encoder e(out);
  auto rt = server_.runtime();
  const auto& cfg = *rt->config;
  Result r;
  if (what == "POOLS") {
    r.column("database", oid_text).column("user", oid_text);
    for (auto c : {"cl_active", "cl_waiting", "cl_active_cancel_req", "cl_waiting_cancel_req", "sv_active",
                   "sv_active_cancel", "sv_being_canceled", "sv_idle", "sv_used", "sv_tested", "sv_login",
                   "maxwait", "maxwait_us"})
      r.column(c, oid_int4);
    r.column("pool_mode", oid_text);
    for (const auto& p : server_.pools().pools()) {
      auto s = p->stats();
      auto clients = p->client_counts(s);
      const auto* db = cfg.find_database(p->database());
      std::string mode = db != nullptr ? std::string(config::to_string(db->pool.mode)) : "";
      r.row({p->database(), p->user(), num(clients.active), num(clients.waiting), "0", "0", num(s.active),
             "0", "0", num(s.idle), "0", "0", num(s.connecting), num(s.max_wait_ms / 1000),
             num((s.max_wait_ms % 1000) * 1000), nullable(mode)});
    }
  } else if (what == "STATS" || what == "STATS_TOTALS" || what == "STATS_AVERAGES") {
    auto totals = server_.database_totals();
    auto averages = server_.database_averages();
    bool with_totals = what != "STATS_AVERAGES";
    bool with_averages = what != "STATS_TOTALS";
    std::string prefix_total = what == "STATS" ? "total_" : "";
    std::string prefix_avg = what == "STATS" ? "avg_" : "";
    r.column("database", oid_text);
    using pool::PoolCounter;
    // PgBouncer's order and names; wait_count is pgwarden's own and not shown here.
    const std::array<std::pair<PoolCounter, std::string_view>, 7> shown{{
        {PoolCounter::xact_count, "xact_count"},
        {PoolCounter::query_count, "query_count"},
        {PoolCounter::received, what == "STATS" ? "received" : "bytes_received"},
        {PoolCounter::sent, what == "STATS" ? "sent" : "bytes_sent"},
        {PoolCounter::xact_time_us, "xact_time"},
        {PoolCounter::query_time_us, "query_time"},
        {PoolCounter::wait_time_us, "wait_time"},
    }};
    const std::array<std::string_view, 7> avg_names{"xact_count", "query_count", "recv",     "sent",
                                                    "xact_time",  "query_time",  "wait_time"};
    if (with_totals) {
      for (const auto& [c, name] : shown)
        r.column(prefix_total + std::string(name), oid_numeric);
    }
    if (with_averages) {
      for (std::size_t i = 0; i < avg_names.size(); ++i)
        r.column(prefix_avg + std::string(what == "STATS" ? avg_names[i] : shown[i].second), oid_numeric);
    }
    // PgBouncer before 1.8 had total_requests; the Debian prometheus-pgbouncer-exporter still reads it.
    if (what == "STATS") r.column("total_requests", oid_numeric);
    for (const auto& [database, values] : totals) {
      std::vector<std::optional<std::string>> row{database};
      if (with_totals) {
        for (const auto& [c, name] : shown)
          row.push_back(num(values[static_cast<std::size_t>(c)]));
      }
      if (with_averages) {
        auto it = averages.find(database);
        for (std::size_t i = 0; i < avg_names.size(); ++i)
          row.push_back(num(it == averages.end() ? std::uint64_t{0} : it->second[i]));
      }
      if (what == "STATS") row.push_back(num(values[static_cast<std::size_t>(PoolCounter::query_count)]));
      r.row(std::move(row));
    }
  } else if (what == "CLIENTS" || what == "SERVERS") {
    for (auto [name, oid] :
         std::initializer_list<std::pair<const char*, std::int32_t>>{{"type", oid_text},
                                                                     {"user", oid_text},
                                                                     {"database", oid_text},
                                                                     {"state", oid_text},
                                                                     {"addr", oid_text},
                                                                     {"port", oid_int4},
                                                                     {"local_addr", oid_text},
                                                                     {"local_port", oid_int4},
                                                                     {"connect_time", oid_text},
                                                                     {"request_time", oid_text},
                                                                     {"wait", oid_int4},
                                                                     {"wait_us", oid_int4},
                                                                     {"close_needed", oid_int4},
                                                                     {"ptr", oid_text},
                                                                     {"link", oid_text},
                                                                     {"remote_pid", oid_int4},
                                                                     {"tls", oid_text},
                                                                     {"application_name", oid_text}})
      r.column(name, oid);
    auto sessions = co_await server_.session_snapshot();
    std::sort(sessions.begin(), sessions.end(),
              [](const SessionInfo& a, const SessionInfo& b) { return a.connect_time < b.connect_time; });
    if (what == "CLIENTS") {
      for (const auto& s : sessions) {
        // link: the server connection's ptr in SHOW SERVERS (its backend pid), as PgBouncer links the two.
        std::string link = s.server ? std::to_string(s.server->backend_pid) : "";
        r.row({"C", s.user, s.database, s.state, s.addr, num(s.port), s.local_addr, num(s.local_port),
               show_time(s.connect_time), show_time(s.request_time), num(s.wait_us / 1000000),
               num(s.wait_us % 1000000), "0", s.id, link, num(s.server ? s.server->backend_pid : 0), s.tls,
               s.application_name});
      }
    } else {
      for (const auto& s : sessions) {
        if (!s.server) continue;
        const auto& v = *s.server;
        r.row({"S", s.user, s.database, "active", v.addr, num(v.port), v.local_addr, num(v.local_port),
               show_time(v.connect_time), show_time(s.request_time), "0", "0", "0",
               std::to_string(v.backend_pid), s.id, num(v.backend_pid), v.tls, s.application_name});
      }
      auto now_sys = std::chrono::system_clock::now();
      auto now = pool::Clock::now();
      for (const auto& p : server_.pools().pools()) {
        for (const auto& idle : p->idle_servers()) {
          auto since = [&](pool::Clock::time_point t) {
            return now_sys - std::chrono::duration_cast<std::chrono::system_clock::duration>(now - t);
          };
          r.row({"S", p->user(), p->database(), "idle", idle.endpoint.address().to_string(),
                 num(static_cast<unsigned>(idle.endpoint.port())), std::nullopt, "0",
                 show_time(since(idle.created)), show_time(since(idle.idle_since)), "0", "0", "0",
                 std::to_string(idle.backend_pid), "", num(idle.backend_pid), idle.tls ? "TLS" : "",
                 std::nullopt});
        }
      }
    }
  } else if (what == "DATABASES") {
    r.column("name", oid_text).column("host", oid_text).column("port", oid_int4).column("database", oid_text);
    r.column("force_user", oid_text).column("pool_size", oid_int4).column("min_pool_size", oid_int4);
    r.column("reserve_pool", oid_int4).column("pool_mode", oid_text).column("max_connections", oid_int4);
    r.column("current_connections", oid_int4).column("paused", oid_int4).column("disabled", oid_int4);
    std::map<std::string, unsigned> current;
    for (const auto& p : server_.pools().pools())
      current[p->database()] += p->stats().total;
    for (const auto& db : cfg.databases) {
      r.row({db.name, db.host, num(static_cast<unsigned>(db.port)), db.dbname, nullable(db.user),
             num(db.pool.default_size), num(db.pool.min_size), num(db.pool.reserve_size),
             std::string(config::to_string(db.pool.mode)), num(db.pool.max_db_connections),
             num(current[db.name]), server_.paused(db.name) ? "1" : "0", "0"});
    }
  } else if (what == "USERS") {
    r.column("name", oid_text).column("pool_mode", oid_text);
    auto names = rt->auth->names();
    std::set<std::string> users(names.begin(), names.end());
    for (const auto& p : server_.pools().pools())
      users.insert(p->user());
    for (const auto& u : users)
      r.row({u, std::nullopt});
  } else if (what == "CONFIG") {
    r.column("key", oid_text)
        .column("value", oid_text)
        .column("default", oid_text)
        .column("changeable", oid_text);
    auto rows = config::config_rows(cfg);
    for (const auto& row : rows)
      r.row({row.key, row.value, row.default_value, row.reloadable ? "yes" : "no"});
    // And under PgBouncer's names, which exporters look up (max_client_conn, default_pool_size, ...).
    for (const auto& alias : config::pgbouncer_key_names()) {
      const std::string_view ours = alias.second;
      auto it = std::find_if(rows.begin(), rows.end(),
                             [ours](const config::ConfigRow& c) { return c.key == ours; });
      if (it != rows.end()) {
        r.row({std::string(alias.first), it->value, it->default_value, it->reloadable ? "yes" : "no"});
      }
    }
  } else if (what == "LISTS") {
    r.column("list", oid_text).column("items", oid_int4);
    auto pools = server_.pools().pools();
    std::set<std::string> users;
    unsigned servers = 0;
    std::int64_t pooled_clients = 0;
    for (const auto& p : pools) {
      users.insert(p->user());
      servers += p->stats().total;
      pooled_clients += p->counters().clients();
    }
    auto clients = server_.client_count();
    r.row({"databases", num(static_cast<unsigned>(cfg.databases.size()))});
    r.row({"users", num(static_cast<unsigned>(users.size()))});
    r.row({"pools", num(static_cast<unsigned>(pools.size()))});
    r.row({"free_clients", "0"});
    r.row({"used_clients", num(clients)});
    r.row({"login_clients", num(std::max<std::int64_t>(0, clients - pooled_clients))});
    r.row({"free_servers", "0"});
    r.row({"used_servers", num(servers)});
    for (auto dns : {"dns_names", "dns_zones", "dns_queries", "dns_pending"})
      r.row({dns, "0"});
  } else if (what == "VERSION") {
    r.column("version", oid_text);
    r.row({"pgwarden " PGW_VERSION});
  } else if (what == "STATE") {
    auto st = server_.pause_state();
    r.column("key", oid_text).column("value", oid_text);
    r.row({"active", !st.suspended && !st.paused_all && !server_.draining() ? "yes" : "no"});
    r.row({"paused", st.paused_all ? "yes" : "no"});
    r.row({"suspended", st.suspended ? "yes" : "no"});
    r.row({"shutting_down", server_.draining() ? "yes" : "no"});
    std::string dbs;
    for (const auto& d : st.paused_databases)
      dbs += (dbs.empty() ? "" : ",") + d;
    r.row({"paused_databases", dbs});
  } else if (what == "AUDIT") {
    r.column("key", oid_text).column("value", oid_text);
    audit::AuditLog* log = server_.audit();
    r.row({"enabled", log != nullptr ? "yes" : "no"});
    if (log != nullptr) {
      auto s = log->stats();
      const auto& settings = server_.audit_settings();
      r.row({"instance", log->instance()});
      r.row({"fsync", std::string(config::to_string(settings.fsync))});
      r.row({"on_failure", std::string(config::to_string(settings.on_failure))});
      r.row({"failing", s.failing ? "yes" : "no"});
      r.row({"queue_records", num(s.queue_records)});
      r.row({"queue_bytes", num(s.queue_bytes)});
      r.row({"records_appended", num(s.appended)});
      r.row({"records_written", num(s.written)});
      r.row({"records_dropped", num(s.dropped)});
      r.row({"appends_refused", num(s.refused)});
      r.row({"write_errors", num(s.write_errors)});
      r.row({"fsyncs", num(s.fsyncs)});
      r.row({"fsync_avg_us", num(s.fsyncs == 0 ? std::uint64_t{0} : s.fsync_us_total / s.fsyncs)});
      r.row({"fsync_max_us", num(s.fsync_us_max)});
      r.row({"fsync_last_us", num(s.fsync_us_last)});
      r.row({"last_fsync", s.fsyncs == 0 ? std::nullopt : std::optional(audit::format_ts(s.last_fsync))});
      r.row({"rotations", num(s.rotations)});
      r.row({"checkpoints", num(s.checkpoints)});
      r.row({"last_seq", num(s.last_seq)});
      r.row({"chain_head", nullable(s.chain_head)});
    }
  } else if (what == "HELP") {
    encode::notice_response(
        e, Notice{"NOTICE",
                  "00000",
                  "Console usage",
                  "SHOW POOLS|STATS|STATS_TOTALS|STATS_AVERAGES|CLIENTS|SERVERS|DATABASES|USERS|CONFIG|LISTS|"
                  "VERSION|STATE|AUDIT|HELP\nRELOAD\nSET key = value\nPAUSE [db]\nRESUME [db]\nKILL db\n"
                  "SUSPEND\nSHUTDOWN",
                  {}});
    encode::command_complete(e, "SHOW");
    co_return;
  } else {
    error(e, "42601", "unknown SHOW \"" + std::string(what) + "\"", {}, "SHOW HELP lists the commands.");
    co_return;
  }
  r.write(e);
}

// ---------------------------------------------------------------------------------------------------------------
// The session side: an authenticated admin user gets AuthenticationOk and a console loop instead of a pool.

asio::awaitable<void> ClientSession::admin_loop() {
  log_.info("admin console: user={}", user_);
  server_.events().count(EventFamily::admin_commands, "login");
  cancel_slot_ = std::make_shared<CancelSlot>();
  client_key_ = server_.cancels().add(cancel_slot_);  // accepted, never reaches a server
  Encoder e(out_);
  encode::authentication_ok(e);
  for (auto [k, v] : std::initializer_list<std::pair<std::string_view, std::string_view>>{
           {"server_version", "15.0 (pgwarden " PGW_VERSION ")"},
           {"server_encoding", "UTF8"},
           {"client_encoding", "UTF8"},
           {"DateStyle", "ISO, MDY"},
           {"integer_datetimes", "on"},
           {"standard_conforming_strings", "on"},
           {"application_name", ""}})
    encode::parameter_status(e, k, v);
  encode::backend_key_data(e, *client_key_);
  encode::ready_for_query(e, backend::TransactionStatus::idle);
  if (audit_) audit_->connected();
  connected_ = true;
  AdminConsole console(server_, audit_.get());
  bool failed_extended = false;  // an extended-protocol message was refused: skip to Sync
  for (;;) {
    if (!out_.empty()) {
      if (!co_await write_client(out_)) co_return;
      out_.clear();
    }
    if (draining_) {
      send_fatal_best_effort("57P01", "terminating connection due to administrator command");
      co_return;
    }
    admin_idle_ = true;
    FrameResult fr = co_await read_login_message(rt_->config->proxy.max_packet_size);
    admin_idle_ = false;
    if (fr.status == FrameStatus::error) {
      if (fr.error != Error::truncated) {
        send_fatal_best_effort("08P01", "invalid message: " + std::string(describe(fr.error)));
      }
      co_return;
    }
    char type = fr.frame.type;
    std::string sql;
    if (type == frontend::query) {
      frontend::Query q;
      if (decode(fr.frame.body, q) != Error::none) {
        client_in_.consume(fr.frame.wire_size);
        send_fatal_best_effort("08P01", "invalid Query message");
        co_return;
      }
      sql = std::string(q.query);
    }
    client_in_.consume(fr.frame.wire_size);
    last_activity_ = pool::Clock::now();
    Encoder out(out_);
    if (type == frontend::terminate) co_return;
    if (type == frontend::query) {
      co_await console.execute(sql, out_);
      encode::ready_for_query(out, backend::TransactionStatus::idle);
    } else if (type == frontend::sync) {
      failed_extended = false;
      encode::ready_for_query(out, backend::TransactionStatus::idle);
    } else if (type == frontend::flush) {
      continue;
    } else if (!failed_extended) {
      failed_extended = true;
      encode::error_response(out, Notice{"ERROR",
                                         "08P01",
                                         "the admin console speaks the simple query protocol only",
                                         {},
                                         "psql, psycopg2 and the PgBouncer exporters use it"});
    }
  }
}

}  // namespace pgw::proxy
