// The client session: login phase as straight-line coroutine code over the sans-IO machines, then the relay
// through the request tracker of whichever server connection is attached.
#include "client_session.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include "admin.hpp"
#include "pgw/audit/sql.hpp"
#include "pgw/protocol/client_auth.hpp"
#include "pgw/protocol/framer.hpp"
#include "pgw/protocol/messages.hpp"
#include "pgw/protocol/proxy_header.hpp"
#include "server.hpp"
#include "settings.hpp"

namespace pgw::proxy {

namespace {

using namespace protocol;
using pool::Answer;
using pool::Request;
constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);
// For the relay's waits: awaited as an operation, with no coroutine frame of its own.
constexpr auto wait_token = asio::as_tuple(asio::deferred);
// A run of input bytes forwarded as they are, [start, end): takes the message at `offset` when it is the
// first or follows the run directly; false when it does not (the batch must be copied from here on).
bool extend_run(std::size_t& start, std::size_t& end, std::size_t offset, std::size_t size) {
  if (end == start) {
    start = offset;
    end = offset + size;
    return true;
  }
  if (end != offset) return false;
  end += size;
  return true;
}
// A client this long without a message gives back what only a busy one keeps: OpenSSL's record buffers and
// the parked server side.
constexpr auto idle_release_after = std::chrono::seconds(1);
// Back-pressure on a client that sends faster than it reads: past these, pgwarden reads no more from it (its
// requests awaiting answers, pgwarden's own answers among them) or from its server (answers queued behind a
// write to the client), until the client catches up. A pipeline deeper than a server would take into its
// socket buffers is rare; a client that floods small requests and never reads is the case to stop.
constexpr std::size_t max_pending_requests = 65536;
constexpr std::size_t max_outbox_bytes = std::size_t{1} << 20;
constexpr auto backlog_poll = std::chrono::milliseconds(1);
// Read buffers start here and grow only for a message that must be seen whole (up to max_packet_size).
constexpr std::size_t io_buffer_size = protocol::Buffer::recycled_capacity;
// SASL and password messages are tiny; anything bigger before authentication is refused.
constexpr std::uint32_t max_login_message = max_startup_packet_length;
constexpr std::uint8_t tls_handshake_record = 0x16;
constexpr std::uint8_t parse_complete_message[] = {'1', 0, 0, 0, 4};
constexpr std::uint8_t close_complete_message[] = {'3', 0, 0, 0, 4};
constexpr std::uint8_t ready_idle_message[] = {'Z', 0, 0, 0, 5, 'I'};
constexpr std::uint8_t flush_message[] = {'H', 0, 0, 0, 4};
// A statement that fails in the parser on every PostgreSQL: sent in place of a request pgwarden refuses, so
// the server fails (and aborts an open transaction, and skips to Sync) exactly where the client's request
// would have.
constexpr std::string_view failing_sql = "pgwarden: refused";
constexpr std::string_view failing_statement = "pgw_refused";

// Backend messages whose body the relay reads; all others are seen by type only (and streamed when long).
bool backend_body_needed(char type) noexcept {
  return type == backend::ready_for_query || type == backend::parameter_status ||
         type == backend::error_response || type == backend::command_complete;
}

// Frontend messages are read whole except copy data, which streams.
bool frontend_body_needed(char type) noexcept {
  return type != frontend::copy_data;
}

bool fatal(Bytes error_body) {
  backend::ErrorFields f;
  if (decode(error_body, f) != Error::none) return false;
  std::string_view sev = f.severity_nonlocalized.empty() ? f.severity : f.severity_nonlocalized;
  return sev == "FATAL" || sev == "PANIC";
}

// The cert method and client_tls.mode = "verify-full": the CN names the user itself, or auth.cert_map lets
// that CN log in as this user.
bool certificate_names_user(const config::AuthSettings& auth, std::string_view cn, std::string_view user) {
  auto it = auth.cert_map.find(cn);
  if (it == auth.cert_map.end()) return cn == user;
  return std::find(it->second.begin(), it->second.end(), user) != it->second.end();
}

}  // namespace

ClientSession::ClientSession(Server& server, Worker& worker, tls::tcp::socket socket, bool via_proxy,
                             std::vector<std::uint8_t> initial)
    : server_(server),
      worker_(worker),
      rt_(server.runtime()),
      client_(std::move(socket)),
      statements_(rt_->config->pool.max_client_prepared_statements,
                  rt_->config->pool.max_client_prepared_bytes),
      client_scan_(rt_->config->proxy.max_packet_size),
      server_scan_(rt_->config->proxy.max_packet_size),
      login_(std::make_unique<LoginState>(worker.io().get_executor())) {
  via_proxy_ = via_proxy;
  if (!initial.empty()) {
    client_in_.reserve(initial.size());
    std::copy(initial.begin(), initial.end(), client_in_.writable().begin());
    client_in_.commit(initial.size());
  }
  boost::system::error_code ec;
  auto remote = client_.socket().remote_endpoint(ec);
  log_.set_session(server.next_session_id(), ec ? std::string("?") : tls::endpoint_text(remote));
  if (!ec) {
    peer_address_ = remote.address().to_string();
    peer_port_ = remote.port();
    if (auto ip = config::parse_ip(peer_address_)) peer_ip_ = *ip;
  }
  boost::system::error_code lec;
  if (auto local = client_.socket().local_endpoint(lec); !lec) {
    local_addr_ = local.address().to_string();
    local_port_ = local.port();
  }
  if (audit::AuditLog* log = server.audit()) {
    audit_ = std::make_unique<SessionAudit>(*log, worker.classifier(), server.audit_settings(),
                                            worker.io().get_executor());
    AuditIdentity& id = audit_->identity();
    id.session = log_.id();
    if (!ec) {
      id.client_addr = remote.address().to_string();
      id.client_port = remote.port();
    }
  }
  server_.session_created();  // last: a constructor that throws never counted, so never holds the exit
}

ClientSession::~ClientSession() {
  if (client_key_) server_.cancels().remove(client_key_->process_id);
  if (admitted_) server_.client_left();
  if (counted_address_) server_.address_limits().release(*counted_address_);
  if (names_counted_) server_.name_limits().release(database_, user_);
  if (counters_ != nullptr) counters_->add_clients(-1);
  server_.session_destroyed();
}

namespace {

// Spawns `task` with a stop signal, set in `signal` before the task can run (on its own thread it starts
// inline). The completion handler owns the signal: the coroutine (and Asio's cancellation state, which lives
// in the signal's memory) may outlive the session that emits on it.
void spawn_stoppable(const asio::any_io_executor& executor, asio::awaitable<void> task, const char* what,
                     asio::cancellation_signal*& signal) {
  auto stop = std::make_unique<asio::cancellation_signal>();
  signal = stop.get();
  auto slot = stop->slot();
  asio::co_spawn(
      executor, std::move(task),
      asio::bind_cancellation_slot(
          slot, [stop = std::move(stop), what](const std::exception_ptr& e) { log::exception(e, what); }));
}

}  // namespace

void ClientSession::start(std::shared_ptr<ClientSession> session) {
  ClientSession& s = *session;
  spawn_stoppable(s.worker_.io().get_executor(), run(std::move(session)), "client session", s.relay_stop_);
}

asio::awaitable<void> ClientSession::run(std::shared_ptr<ClientSession> self) {
  // stop_relay() interrupts the operation in progress; the code after it reads stop_reason_ and goes on.
  co_await asio::this_coro::throw_if_cancelled(false);
  co_await self->run_session();
}

asio::awaitable<void> ClientSession::run_session() {
  registration_ = worker_.add(this);
  // Unregistered however this ends (an exception included): the janitor must never see a dead session.
  struct Unregister {
    Worker& worker;
    std::list<ClientSession*>::iterator it;
    ~Unregister() { worker.remove(it); }
  } unregister{worker_, registration_};
  // Accepted just before a shutdown or handover began: it missed the drain sent to the others.
  if (server_.draining()) draining_ = true;
  login_->login_deadline.arm(rt_->config->proxy.client_login_timeout, [weak = weak_from_this()] {
    if (auto s = weak.lock()) {
      s->log_.info("client_login_timeout passed before login finished; closing");
      if (!s->client_writing_) {
        s->send_fatal_best_effort("08P01", "client_login_timeout expired before the login finished");
      }
      s->client_.close();
      if (s->ticket_ && s->pool_) s->pool_->cancel(*s->ticket_);
    }
  });
  // Slowloris: the startup packet must be in within client_handshake_timeout.
  login_->handshake_deadline.arm(rt_->config->proxy.client_handshake_timeout, [weak = weak_from_this()] {
    if (auto s = weak.lock()) {
      s->log_.info("client_handshake_timeout passed before the startup packet; closing");
      s->client_.close();
    }
  });
  bool ok = !via_proxy_ || co_await read_proxy_header();
  if (ok) ok = co_await negotiate();
  login_->handshake_deadline.cancel();
  if (ok) ok = co_await authenticate();
  if (ok && admin_) {
    login_.reset();
    co_await admin_loop();
    co_await finish(SessionEnd::client_closed);
    co_return;
  }
  if (ok) ok = co_await join_pool();
  if (ok) ok = co_await login_to_server();
  bool timed_out = login_->login_deadline.fired();
  login_.reset();
  SessionEnd end = SessionEnd::refused;
  if (ok && !timed_out) {
    end = co_await relay();
  } else if (timed_out) {
    end = SessionEnd::login_timeout;
  }
  co_await finish(end);
}

// ---------------------------------------------------------------------------------------------------------------
// Negotiation: direct TLS or SSLRequest / GSSENCRequest, then StartupMessage or CancelRequest.

asio::awaitable<protocol::FrameResult> ClientSession::read_startup_packet() {
  for (;;) {
    FrameResult fr = parse_startup_frame(client_in_.readable());
    if (fr.status != FrameStatus::need_more) co_return fr;
    client_in_.reserve(std::max<std::size_t>(fr.needed, 512));
    auto [ec, n] = co_await client_.read_some(client_in_.writable());
    if (ec) {
      log_.debug("connection closed during startup: {}", ec.message());
      FrameResult err;
      err.status = FrameStatus::error;
      err.error = Error::truncated;
      err.needed = 0;
      co_return err;
    }
    client_in_.commit(n);
  }
}
asio::awaitable<bool> ClientSession::write_client(std::span<const std::uint8_t> bytes) {
  client_writing_ = true;
  auto ec = co_await client_.write_all(bytes);
  client_writing_ = false;
  if (ec) log_.debug("client write failed: {}", ec.message());
  co_return !ec;
}
asio::awaitable<bool> ClientSession::refuse(std::string_view sqlstate, std::string message,
                                            std::string detail, std::string hint) {
  log_.info("refused ({}): {}{}{}", sqlstate, message, detail.empty() ? "" : ": ", detail);
  server_.events().count(auth_failure_ ? EventFamily::auth_failures : EventFamily::refusals, sqlstate);
  if (audit_ && !connected_) audit_->login_refused(sqlstate, message, auth_failure_);
  out_.clear();
  Encoder e(out_);
  encode::error_response(e, Notice{"FATAL", sqlstate, message, detail, hint});
  co_await write_client(out_);
  co_return false;
}
void ClientSession::send_fatal_best_effort(std::string_view sqlstate, std::string_view message,
                                           std::string_view detail) {
  std::vector<std::uint8_t> bytes;
  Encoder e(bytes);
  encode::error_response(e, Notice{"FATAL", sqlstate, message, detail, {}});
  client_.try_write_all(bytes);
}
asio::awaitable<protocol::FrameResult> ClientSession::read_login_message(std::uint32_t max) {
  for (;;) {
    FrameResult fr = parse_frame(client_in_.readable(), max);
    if (fr.status != FrameStatus::need_more) co_return fr;
    client_in_.reserve(std::max<std::size_t>(fr.needed, 512));
    auto [ec, n] = co_await client_.read_some(client_in_.writable());
    if (ec) {
      FrameResult err;
      err.status = FrameStatus::error;
      err.error = Error::truncated;
      co_return err;
    }
    client_in_.commit(n);
  }
}

asio::awaitable<bool> ClientSession::read_proxy_header() {
  namespace ph = protocol::proxy_header;
  ph::Result r;
  for (;;) {
    r = ph::parse(client_in_.readable());
    if (r.status != ph::Status::need_more) break;
    client_in_.reserve(client_in_.size() + 256);
    auto [ec, n] = co_await client_.read_some(client_in_.writable());
    if (ec) {
      log_.debug("load balancer connection closed before its PROXY header: {}", ec.message());
      co_return false;
    }
    client_in_.commit(n);
  }
  if (r.status == ph::Status::invalid) {
    // A missing or malformed header from a trusted balancer closes the connection, unanswered (SPEC).
    log_.info("closing: no valid PROXY protocol header from {} ({})", peer_address_, r.reason);
    co_return false;
  }
  client_in_.consume(r.header.size);
  if (r.header.source) {
    // PROXY with an address: from here on the client is the address the balancer saw.
    const auto& src = *r.header.source;
    peer_ip_.family = src.family == ph::Address::Family::inet ? config::IpAddress::Family::inet
                                                              : config::IpAddress::Family::inet6;
    peer_ip_.bytes = src.bytes;
    std::string balancer = peer_address_;
    peer_address_ = canonical(peer_ip_).to_string();
    std::string shown =
        peer_address_.find(':') != std::string::npos ? "[" + peer_address_ + "]" : peer_address_;
    log_.set_session(log_.id(), shown + ":" + std::to_string(src.port));
    peer_port_ = src.port;
    log_.debug("PROXY v{} header from load balancer {}", static_cast<int>(r.header.version), balancer);
    if (audit_) {
      audit_->identity().client_addr = peer_address_;
      audit_->identity().client_port = src.port;
    }
  }
  // LOCAL (health checks) and UNKNOWN keep the balancer's own address.
  Server::AddressVerdict verdict = server_.admit_address(peer_ip_, *rt_);
  if (!verdict.admitted) {
    log_.info("refused ({}): {}", verdict.sqlstate, verdict.reason);
    login_->early_refusal = std::move(verdict);
  }
  co_return true;  // negotiate() answers the first packet with a refusal
}

bool ClientSession::client_cert_satisfies(config::ClientCert required,
                                          const config::AuthSettings& auth) const {
  if (required == config::ClientCert::none) return true;
  const auto info = client_.is_tls() ? client_.info() : tls::TlsInfo{};
  if (!info.peer_subject) return false;
  return required == config::ClientCert::verify_ca ||
         (info.peer_common_name && certificate_names_user(auth, *info.peer_common_name, user_));
}

const config::AccessRule* ClientSession::access_rule(const Runtime& rt) const {
  if (!rt.access) return nullptr;
  return config::match(*rt.access, peer_ip_, client_.is_tls(), database_, user_);
}

void ClientSession::revoke_if_refused(const Runtime& rt) {
  if (!rt.access || !admitted_) return;
  const config::AccessRule* rule = access_rule(rt);
  if (rule != nullptr && rule->action == config::AccessAction::allow &&
      client_cert_satisfies(rule->client_cert, rt.config->auth)) {
    return;
  }
  log_.info("access revoked by reload: no access rule allows this connection any more");
  if (!in_relay_) {
    if (!client_writing_) {
      send_fatal_best_effort("28000",
                             "access revoked: pgwarden's reloaded access rules refuse this connection");
    }
    client_.close();
    if (ticket_ && pool_) pool_->cancel(*ticket_);
    return;
  }
  stop_relay(SessionEnd::access_revoked);
}

asio::awaitable<bool> ClientSession::negotiate() {
  const auto& cfg = *rt_->config;
  std::uint8_t first = 0;
  if (client_in_.empty()) {
    auto [pec, peeked] = co_await client_.peek_byte();
    if (pec) {
      log_.debug("connection closed before any data: {}", pec.message());
      co_return false;
    }
    first = peeked;
  } else if (client_in_.readable()[0] == tls_handshake_record) {
    // The ClientHello already sits in our buffer, where the TLS engine would not see it.
    log_.info("direct TLS behind the PROXY protocol is not supported; closing");
    co_return false;
  }
  bool tls_negotiated = false;
  bool gss_negotiated = false;
  if (first == tls_handshake_record) {
    // PostgreSQL 17 direct TLS (sslnegotiation=direct): a ClientHello first, ALPN "postgresql" required.
    if (login_->early_refusal) {
      // Refused on its address (behind a load balancer) before any TLS work; the answer a plaintext first
      // packet gets cannot reach a client that speaks TLS first.
      co_return false;
    }
    if (!rt_->client_tls) {
      log_.info("direct TLS attempt refused: client_tls.mode = disable");
      co_return false;
    }
    if (auto ec = co_await client_.handshake_as_server(rt_->client_tls.get())) {
      log_.info("TLS handshake failed: {}",
                client_.error_detail().empty() ? ec.message() : client_.error_detail());
      server_.events().count(EventFamily::tls_handshakes, "failed");
      co_return false;
    }
    if (client_.alpn() != tls::alpn_postgresql) {
      log_.info("direct TLS connection without ALPN \"postgresql\"; closing as PostgreSQL 17 does");
      server_.events().count(EventFamily::tls_handshakes, "no_alpn");
      co_return false;
    }
    server_.events().count(EventFamily::tls_handshakes, "ok");
    tls_negotiated = true;
  }
  InitialPacket packet;
  for (;;) {
    FrameResult fr = co_await read_startup_packet();
    if (fr.status == FrameStatus::error) {
      // Bytes that are not the PostgreSQL protocol at all: close without an answer (SPEC).
      if (fr.error != Error::truncated) log_.info("invalid startup packet: {}", describe(fr.error));
      co_return false;
    }
    Error de = decode_initial_packet(fr.frame.body, packet);
    client_in_.consume(fr.frame.wire_size);
    if (de == Error::unsupported_protocol) {
      co_return co_await refuse(
          "0A000", "unsupported frontend protocol " + std::to_string(packet.startup.major) + "." +
                       std::to_string(packet.startup.minor) + ": pgwarden supports 3.0");
    }
    if (de == Error::missing_user) {
      co_return co_await refuse("28000", "no PostgreSQL user name specified in startup packet");
    }
    if (de != Error::none) {
      co_return co_await refuse("08P01", "invalid startup packet layout: " + std::string(describe(de)));
    }
    if (login_->early_refusal) {
      // Refused on its address (behind a load balancer): the first packet gets the answer, no TLS.
      if (packet.kind == InitialPacketKind::cancel_request) co_return false;
      auto v = std::move(*login_->early_refusal);
      login_->early_refusal.reset();
      co_return co_await refuse(v.sqlstate, v.message);
    }
    switch (packet.kind) {
      case InitialPacketKind::cancel_request:
        co_await handle_cancel(packet.cancel);
        co_return false;
      case InitialPacketKind::gssenc_request: {
        if (tls_negotiated || gss_negotiated) {
          co_return co_await refuse("08P01", "GSSENCRequest after encryption was negotiated");
        }
        gss_negotiated = true;
        static constexpr std::uint8_t no[] = {'N'};
        if (!co_await write_client(no)) co_return false;
        continue;
      }
      case InitialPacketKind::ssl_request: {
        if (tls_negotiated) co_return co_await refuse("08P01", "SSLRequest after TLS was negotiated");
        tls_negotiated = true;  // answered either way: a second SSLRequest is a violation
        if (!rt_->client_tls) {
          static constexpr std::uint8_t no[] = {'N'};
          if (!co_await write_client(no)) co_return false;
          continue;
        }
        // Anything sent after SSLRequest and before the handshake would be read as if it came over TLS
        // (CVE-2021-23214): refuse it, as PostgreSQL does.
        if (!client_in_.empty()) {
          co_return co_await refuse("08P01", "received unencrypted data after SSL request",
                                    "This could be either a client-software bug or evidence of an attempted "
                                    "man-in-the-middle attack.");
        }
        static constexpr std::uint8_t yes[] = {'S'};
        if (!co_await write_client(yes)) co_return false;
        if (auto ec = co_await client_.handshake_as_server(rt_->client_tls.get())) {
          log_.info("TLS handshake failed: {}",
                    client_.error_detail().empty() ? ec.message() : client_.error_detail());
          server_.events().count(EventFamily::tls_handshakes, "failed");
          co_return false;
        }
        server_.events().count(EventFamily::tls_handshakes, "ok");
        continue;
      }
      case InitialPacketKind::startup:
        break;
    }
    break;
  }
  const StartupMessage& startup = packet.startup;
  user_ = std::string(startup.user());
  database_ = std::string(startup.database());
  std::string settings_error;
  bool settings_ok = settings_from_startup(startup, settings_, settings_error);
  if (client_.is_tls()) {
    auto info = client_.info();
    log_.debug("TLS {} {} for user={} database={}", info.version, info.cipher, user_, database_);
    if (audit_) audit_->identity().tls = audit::TlsInfo{info.version, info.cipher, info.peer_subject};
  }
  if (audit_) {
    audit_->identity().user = user_;
    audit_->identity().database = database_;
  }
  // Admission and shutdown are decided once we can answer in a way the client shows.
  if (!server_.try_admit_client()) {
    co_return co_await refuse("53300", "too many clients already: max_client_conn (" +
                                           std::to_string(cfg.proxy.max_client_conn) + ") is reached");
  }
  admitted_ = true;
  // A rolling restart lets logins already under way finish here: the new process has the listeners.
  if (server_.draining() && !server_.handing_over()) {
    co_return co_await refuse("57P03", "pgwarden is shutting down");
  }
  unsigned per_address = cfg.proxy.max_client_conn_per_address;
  if (per_address > 0) {  // 0: max_client_conn, which is already enforced
    if (!server_.address_limits().add_connection(peer_ip_, per_address)) {
      co_return co_await refuse("53300",
                                "too many connections from this address: max_client_conn_per_address (" +
                                    std::to_string(per_address) + ") is reached");
    }
    counted_address_ = peer_ip_;
  }
  if (rt_->access) {
    const config::AccessRule* rule = access_rule(*rt_);
    std::string who = "host \"" + peer_address_ + "\", user \"" + user_ + "\", database \"" + database_ +
                      "\", " + (client_.is_tls() ? "TLS" : "no TLS");
    if (rule == nullptr) co_return co_await refuse("28000", "no access rule allows " + who);
    if (rule->action == config::AccessAction::deny) {
      log_.info("denied by the access rule at {}:{}", rule->where.file, rule->where.line);
      co_return co_await refuse("28000", "access denied for " + who);
    }
    rule_method_ = rule->method;
    rule_client_cert_ = rule->client_cert;
  }
  const auto& px = cfg.proxy;
  if (!server_.name_limits().admit(database_, user_, px.max_db_client_connections,
                                   px.max_user_client_connections)) {
    co_return co_await refuse("53300", "too many client connections for database \"" + database_ +
                                           "\" or user \"" + user_ + "\": max_db_client_connections (" +
                                           std::to_string(px.max_db_client_connections) +
                                           ") or max_user_client_connections (" +
                                           std::to_string(px.max_user_client_connections) + ") is reached");
  }
  names_counted_ = true;
  using config::TlsMode;
  bool tls_required = cfg.client_tls.mode == TlsMode::require || cfg.client_tls.mode == TlsMode::verify_ca ||
                      cfg.client_tls.mode == TlsMode::verify_full;
  if (tls_required && !client_.is_tls()) {
    co_return co_await refuse(
        "28000", "TLS is required to connect to pgwarden",
        "client_tls.mode = \"" + std::string(config::to_string(cfg.client_tls.mode)) + "\"",
        "Connect with sslmode=require (or verify-ca / verify-full).");
  }
  if (cfg.client_tls.mode == TlsMode::verify_full) {
    auto cn = client_.info().peer_common_name;
    if (!cn || !certificate_names_user(cfg.auth, *cn, user_)) {
      // Built before the co_await: GCC 12 destroys a temporary of a conditional expression inside a co_await
      // twice (a double free, seen by AddressSanitizer).
      std::string detail = cn ? "certificate CN \"" + *cn + "\" does not map to the user"
                              : std::string("no client certificate");
      co_return co_await login_failed(
          "28000", "certificate authentication failed for user \"" + user_ + "\"", std::move(detail),
          "client_tls.mode = \"verify-full\" needs a client certificate whose CN is the user name (or maps "
          "to "
          "it through auth.cert_map)");
    }
  }
  if (!client_cert_satisfies(rule_client_cert_, cfg.auth)) {
    // hba "clientcert=": a certificate verified against client_tls.ca (a CA is what makes pgwarden ask for
    // and verify one), and with verify-full one whose CN is the user (or maps to it), before any password.
    const auto info = client_.is_tls() ? client_.info() : tls::TlsInfo{};
    if (!info.peer_subject) {
      co_return co_await login_failed(
          "28000", "connection requires a valid client certificate", "no verified client certificate",
          "the matching access rule says clientcert; a client certificate signed by "
          "client_tls.ca is needed");
    }
    std::string detail = info.peer_common_name
                             ? "certificate CN \"" + *info.peer_common_name + "\" does not map to the user"
                             : std::string("the certificate has no CN");
    co_return co_await login_failed("28000", "certificate authentication failed for user \"" + user_ + "\"",
                                    std::move(detail));
  }
  if (!settings_ok) co_return co_await refuse("22023", settings_error);
  if (startup.get("replication")) {
    co_return co_await refuse("0A000", "replication connections are not supported through pgwarden", {},
                              "Connect to PostgreSQL directly for replication.");
  }
  out_.clear();
  if (startup.needs_protocol_negotiation()) {
    // A newer 3.x minor or _pq_ options: answer with what we speak, as PostgreSQL does (55.2.1).
    Encoder e(out_);
    encode::negotiate_protocol_version(e, protocol_latest_minor, startup.protocol_options);
  }
  co_return true;
}

asio::awaitable<void> ClientSession::handle_cancel(protocol::CancelRequest key) {
  if (co_await server_.cancel_local(key, worker_.io().get_executor(), log_)) co_return;
  const auto& cfg = *rt_->config;
  unsigned peer = peer_of(key);
  if (cfg.proxy.peer_id != 0 && peer != 0 && peer != cfg.proxy.peer_id) {
    auto it = std::find_if(cfg.peers.begin(), cfg.peers.end(),
                           [&](const config::PeerSettings& p) { return p.id == peer; });
    if (it != cfg.peers.end()) {
      log_.info("cancel request for peer {} forwarded to {}:{}", peer, it->host, it->port);
      server_.events().count(EventFamily::cancels, "forwarded");
      co_await forward_cancel(*it, key);
      co_return;
    }
    log_.info("cancel request for peer {}, which no [[peer]] names, ignored", peer);
    server_.events().count(EventFamily::cancels, "unknown_peer");
    co_return;
  }
  log_.info("cancel request with an unknown key ignored");
  server_.events().count(EventFamily::cancels, "unknown_key");
}

// ---------------------------------------------------------------------------------------------------------------
// Authentication: the method (auth.type), the user's secret (auth file, then auth.query), the exchange.

asio::awaitable<void> ClientSession::forward_cancel(const config::PeerSettings& peer,
                                                    protocol::CancelRequest key) {
  auto executor = worker_.io().get_executor();
  auto sock = std::make_shared<tls::tcp::socket>(executor);
  pool::Deadline deadline(executor);
  deadline.arm(rt_->config->pool.server_connect_timeout, [weak = std::weak_ptr(sock)] {
    if (auto s = weak.lock()) {
      boost::system::error_code ignored;
      s->close(ignored);
    }
  });
  tls::tcp::resolver resolver(executor);
  auto [rec, endpoints] = co_await resolver.async_resolve(peer.host, std::to_string(peer.port), use_tuple);
  if (rec) {
    log_.warn("cannot resolve peer {}: {}", peer.host, rec.message());
    co_return;
  }
  auto [cec, ep] = co_await asio::async_connect(*sock, endpoints, use_tuple);
  if (cec) {
    log_.warn("cannot reach peer {}:{} to forward a cancel request: {}", peer.host, peer.port, cec.message());
    co_return;
  }
  std::vector<std::uint8_t> out;
  // Identical instances share proxy_protocol_from: if ours lists the address we connect from, the peer wants
  // a PROXY header from it too, and a LOCAL one says "this connection is the sender itself".
  boost::system::error_code lec;
  auto local = sock->local_endpoint(lec);
  if (!lec) {
    config::IpAddress ip;
    if (auto parsed = config::parse_ip(local.address().to_string())) ip = *parsed;
    if (std::any_of(rt_->proxy_protocol_from.begin(), rt_->proxy_protocol_from.end(),
                    [&](const config::Cidr& c) { return c.contains(ip); })) {
      const auto local_header = protocol::proxy_header::v2_local_header();
      out.assign(local_header.begin(), local_header.end());
    }
  }
  Encoder e(out);
  encode::cancel_request(e, key);
  co_await asio::async_write(*sock, asio::buffer(out), use_tuple);
  deadline.cancel();
  boost::system::error_code ignored;
  sock->shutdown(tls::tcp::socket::shutdown_both, ignored);
  sock->close(ignored);
}

asio::awaitable<bool> ClientSession::login_failed(std::string_view sqlstate, std::string message,
                                                  std::string log_reason, std::string detail) {
  const auto& a = rt_->config->auth;
  server_.login_backoff().failed(peer_address_, {a.backoff_after_failures, a.backoff_initial, a.backoff_max},
                                 LoginBackoff::Clock::now());
  log_.info("authentication failed for user \"{}\": {}", user_, log_reason);
  auth_failure_ = true;
  co_return co_await refuse(sqlstate, std::move(message), std::move(detail));
}

std::optional<std::pair<std::string, std::string>> ClientSession::backed_off() const {
  auto wait = server_.login_backoff().remaining(peer_address_, LoginBackoff::Clock::now());
  if (wait.count() <= 0) return std::nullopt;
  return std::pair{"too many failed logins from this address; try again in " +
                       std::to_string((wait.count() + 999) / 1000) + " s",
                   "auth.backoff_after_failures (" +
                       std::to_string(rt_->config->auth.backoff_after_failures) +
                       ") failed logins in a row from " + peer_address_};
}

asio::awaitable<bool> ClientSession::authenticate() {
  const auto& cfg = *rt_->config;
  if (auto why = backed_off())
    co_return co_await refuse("53300", std::move(why->first), std::move(why->second));
  // Unknown databases are reported after authentication, as PostgreSQL does, so they reveal nothing earlier.
  db_ = cfg.find_database(database_);
  const bool admin_database = db_ == nullptr && is_admin_database(cfg, database_);
  config::AuthMethod method = rule_method_.value_or(cfg.auth.type);
  // Each case returns on failure and breaks once the client has proved who it is.
  switch (method) {
    case config::AuthMethod::trust:
      break;
    case config::AuthMethod::cert: {
      auto cn = client_.is_tls() ? client_.info().peer_common_name : std::nullopt;
      if (!cn) {
        co_return co_await login_failed("28000",
                                        "certificate authentication failed for user \"" + user_ + "\"",
                                        "no verified client certificate",
                                        "the cert method needs TLS with a client certificate signed by "
                                        "client_tls.ca");
      }
      if (!certificate_names_user(cfg.auth, *cn, user_)) {
        co_return co_await login_failed("28000",
                                        "certificate authentication failed for user \"" + user_ + "\"",
                                        "certificate CN \"" + *cn + "\" does not map to the user");
      }
      break;
    }
    case config::AuthMethod::password:
      if (!client_.is_tls()) {
        co_return co_await login_failed(
            "28000", "password authentication over an unencrypted connection is not allowed",
            "cleartext password without TLS",
            "auth.type = \"password\" sends the password in clear: connect with "
            "sslmode=require or stronger");
      }
      [[fallthrough]];
    case config::AuthMethod::scram_sha_256:
    case config::AuthMethod::md5: {
      std::optional<UserSecret> secret;
      if (const UserSecret* s = rt_->auth->find(user_)) {
        secret = *s;
      } else if (!cfg.auth.query.empty() && db_ != nullptr && !rt_->auth->locked(user_)) {
        auto found = co_await server_.auth_query().lookup(server_, worker_, *rt_, *db_, user_);
        if (found.status == AuthQuery::Result::Status::failed) {
          log_.warn("auth.query for user \"{}\" failed: {}", user_, found.error);
          co_return co_await refuse("08006", "cannot look up the user's secret: auth.query failed",
                                    "database \"" + db_->name + "\", auth.query_user \"" +
                                        cfg.auth.query_user + "\"; pgwarden's log has the reason");
        }
        secret = std::move(found.secret);
      }
      if (!co_await run_auth_exchange(method, std::move(secret))) co_return false;
      break;
    }
  }
  server_.login_backoff().succeeded(peer_address_);
  if (admin_database) {
    const auto& admins = cfg.proxy.admin_users;
    if (std::find(admins.begin(), admins.end(), user_) == admins.end()) {
      co_return co_await refuse("42501", "user \"" + user_ + "\" may not use the admin console",
                                "proxy.admin_users does not list \"" + user_ + "\"");
    }
    admin_ = true;
    co_return true;
  }
  if (db_ == nullptr)
    co_return co_await refuse("3D000", "database \"" + database_ + "\" does not exist",
                              "pgwarden has no [[database]] named \"" + database_ + "\"");
  co_return true;
}

asio::awaitable<bool> ClientSession::run_auth_exchange(config::AuthMethod method,
                                                       std::optional<UserSecret> secret) {
  scram::ChannelBinding binding;
  if (client_.is_tls()) {
    binding.data = client_.channel_binding_hash(true);
    binding.available = !binding.data.empty();
  }
  ClientAuthMethod exchange = method == config::AuthMethod::md5        ? ClientAuthMethod::md5
                              : method == config::AuthMethod::password ? ClientAuthMethod::password
                                                                       : ClientAuthMethod::scram_sha_256;
  ClientAuth auth(exchange, user_, std::move(secret), std::move(binding), rt_->auth_salt_key);
  Encoder e(out_);
  auth.start(e);
  for (;;) {
    if (!out_.empty()) {
      if (!co_await write_client(out_)) co_return false;
      out_.clear();
    }
    if (auth.status() != ClientAuth::Status::in_progress) break;
    FrameResult fr = co_await read_login_message(max_login_message);
    if (fr.status == FrameStatus::error) {
      if (fr.error == Error::truncated) {
        log_.debug("client left during authentication");
        co_return false;
      }
      co_return co_await refuse("08P01",
                                "invalid message during authentication: " + std::string(describe(fr.error)));
    }
    // Checked again before each answer is judged: logins started in parallel from one address would each get
    // their guess judged after the back-off began.
    if (auto why = backed_off())
      co_return co_await refuse("53300", std::move(why->first), std::move(why->second));
    auth.on_message(fr.frame.type, fr.frame.body, e);
    client_in_.consume(fr.frame.wire_size);
  }
  switch (auth.failure()) {
    case ClientAuth::Failure::none:
      break;
    case ClientAuth::Failure::bad_credentials:
      // One text for a wrong password and an unknown user (PostgreSQL's wording).
      co_return co_await login_failed("28P01", "password authentication failed for user \"" + user_ + "\"",
                                      auth.failure_detail());
    case ClientAuth::Failure::channel_binding:
      co_return co_await login_failed("28000", "SCRAM channel binding negotiation error",
                                      auth.failure_detail(), auth.failure_detail());
    case ClientAuth::Failure::protocol_violation:
      co_return co_await login_failed("08P01", "invalid authentication exchange", auth.failure_detail(),
                                      auth.failure_detail());
  }
  login_->passthrough = auth.passthrough_keys();
  login_->client_password = auth.cleartext_password();
  log_.debug("client authenticated as \"{}\" ({})", user_, auth.method_used());
  co_return true;
}

// ---------------------------------------------------------------------------------------------------------------
// The pool: which one, with which credentials; the first server connection for ParameterStatus and settings.

asio::awaitable<bool> ClientSession::join_pool() {
  // Authenticated: from here the client waits for a server connection, bounded by query_wait_timeout.
  login_->login_deadline.cancel();
  mode_ = db_->pool.mode;
  server_user_ = db_->user.empty() ? user_ : db_->user;
  rename_statements_ = mode_ != config::PoolMode::session && db_->pool.max_prepared_statements > 0;
  pool::ConnectRequest req = connect_request(*rt_, *db_, server_user_);
  // The ClientKey the client just proved (SCRAM passthrough), or the password it just sent in clear, serve
  // when it logs in as itself and nothing else is configured.
  bool no_secret = !req.credentials.password && !req.credentials.md5_secret;
  if (server_user_ == user_ && login_->passthrough) req.credentials.scram_keys = login_->passthrough;
  if (server_user_ == user_ && no_secret && login_->client_password) {
    req.credentials.password = login_->client_password;
  }
  // A pool created now takes the newest limits, not those of the config this connection was accepted under.
  auto current = server_.runtime();
  const config::DatabaseSettings* fresh = current->config->find_database(db_->name);
  const config::PoolSettings& ps = (fresh != nullptr ? fresh : db_)->pool;
  pool_ = server_.pools().get(db_->name, server_user_, pool_limits(ps), ps.max_db_connections,
                              ps.max_user_connections, [&] { return req; });
  counters_ = &pool_->counters().shard(worker_.index());
  counters_->add_clients(1);
  co_return true;
}

std::string ClientSession::settings_diff(const pool::ServerConnection& conn, bool* keyable) const {
  const auto& extra = db_->pool.track_extra_parameters;
  std::string sets;
  std::string resets;
  for (const auto& s : settings_) {
    const std::string* now = nullptr;
    if (is_tracked(s.name, extra)) {
      for (const auto& [k, v] : conn.parameters) {
        if (same_name(k, s.name)) now = &v;
      }
      if (now == nullptr && keyable != nullptr) *keyable = false;
    } else {
      for (const auto& [k, v] : conn.applied) {
        if (same_name(k, s.name)) now = &v;
      }
    }
    if (now == nullptr || *now != s.value) append_set(sets, s.name, s.value);
  }
  // Settings a previous client brought (startup options) that this one did not ask for go back to the
  // default.
  for (const auto& a : conn.applied) {
    if (!settings_.contains(a.first)) append_reset(resets, a.first);
  }
  return sets.empty() ? resets : "SELECT " + sets + ";" + resets;
}

void ClientSession::note_applied(pool::ServerConnection& conn) {
  const auto& extra = db_->pool.track_extra_parameters;
  conn.applied.clear();
  conn.settings_key.clear();
  for (const auto& s : settings_) {
    if (!is_tracked(s.name, extra)) conn.applied.emplace_back(std::string(s.name), std::string(s.value));
  }
}

asio::awaitable<std::string> ClientSession::settle(std::shared_ptr<pool::ServerConnection> connection,
                                                   bool& broken) {
  pool::ServerConnection& conn = *connection;
  std::string error;
  broken = false;
  Buffer in(4096);
  std::vector<std::uint8_t> due;
  std::vector<std::uint64_t> failed;
  pool::Deadline deadline(worker_.io().get_executor());
  deadline.arm(db_->pool.server_connect_timeout, [weak = std::weak_ptr<pool::ServerConnection>(connection)] {
    if (auto c = weak.lock()) c->stream.close();
  });
  while (!conn.tracker.idle()) {
    auto fr = parse_frame(in.readable(), rt_->config->proxy.max_packet_size);
    if (fr.status == FrameStatus::error) {
      broken = true;
      break;
    }
    if (fr.status == FrameStatus::need_more) {
      in.reserve(std::max<std::size_t>(fr.needed, in.size() + 1024));
      auto [ec, n] = co_await conn.stream.read_some(in.writable());
      if (ec) {
        broken = true;
        if (error.empty()) error = "server connection lost: " + ec.message();
        break;
      }
      in.commit(n);
      continue;
    }
    char type = fr.frame.type;
    auto v = conn.tracker.on_message(type, fr.frame.body, due, failed);
    for (auto tag : failed)
      conn.statements.remove_tag(tag);
    failed.clear();
    if (v.violation) {
      broken = true;
      error = v.why;
      break;
    }
    if (type == backend::error_response) {
      backend::ErrorFields f;
      decode(fr.frame.body, f);
      if (error.empty()) error = std::string(f.message);
      if (fatal(fr.frame.body)) broken = true;
    } else if (type == backend::parameter_status) {
      backend::ParameterStatus ps;
      if (decode(fr.frame.body, ps) == Error::none) conn.set_parameter(ps.name, ps.value);
    } else if (type == backend::notification_response && mode_ != config::PoolMode::session) {
      conn.listening = true;  // see backend_pump
    } else if (type == backend::command_complete) {
      backend::CommandComplete cc;
      if (decode(fr.frame.body, cc) == Error::none && cc.tag == "DISCARD ALL") {
        conn.statements.clear();
        conn.applied.clear();
        conn.settings_key.clear();
      }
    }
    in.consume(fr.frame.wire_size);
  }
  if (deadline.fired()) {
    broken = true;
    if (error.empty()) error = "the server did not answer within server_connect_timeout";
  }
  if (!in.empty() || !conn.tracker.clean()) broken = true;
  co_return error;
}

asio::awaitable<bool> ClientSession::login_to_server() {
  ticket_ = std::make_shared<pool::Pool::Ticket>();
  auto r = co_await acquire_server();
  std::string server_name = db_->host + ":" + std::to_string(db_->port);
  switch (r.status) {
    case pool::AcquireResult::Status::ok:
      break;
    case pool::AcquireResult::Status::timeout:
      co_return co_await refuse("57014", "no server connection became free within query_wait_timeout",
                                "pool for database \"" + db_->name + "\", user \"" + server_user_ + "\"");
    case pool::AcquireResult::Status::cancelled:
      co_return co_await refuse("57P03", "pgwarden is shutting down");
    case pool::AcquireResult::Status::failed: {
      std::string detail;
      if (!r.server_error.message.empty()) {
        detail = "PostgreSQL said: " + r.server_error.message + " (SQLSTATE " + r.server_error.sqlstate + ")";
      }
      log_.warn("server login to {} for database \"{}\" failed: {}{}{}", server_name, db_->name, r.error,
                detail.empty() ? "" : "; ", detail);
      co_return co_await refuse("08006",
                                "pgwarden could not log in to the server for database \"" + db_->name +
                                    "\" at " + server_name + ": " + r.error,
                                detail);
    }
  }
  auto conn = std::move(r.connection);
  // A new client starts from the server's values at login, whatever earlier clients SET on this connection,
  // with its own startup settings on top: checked by PostgreSQL itself, so a value it would refuse at login
  // refuses here.
  for (const auto& [k, v] : conn->initial_parameters) {
    if (is_tracked(k, db_->pool.track_extra_parameters) && !settings_.contains(k)) settings_.put(k, v);
  }
  std::string diff = settings_diff(*conn);
  if (!diff.empty()) {
    std::vector<std::uint8_t> q;
    Encoder e(q);
    encode::query(e, diff);
    conn->tracker.push(Request::query, Answer::swallow);
    bool broken = false;
    std::string error;
    if (auto ec = co_await conn->stream.write_all(q)) {
      broken = true;
      error = ec.message();
    } else {
      error = co_await settle(conn, broken);
    }
    if (!error.empty() || broken) {
      if (broken) {
        pool_->discard(std::move(conn));
      } else {
        pool_->release(std::move(conn), worker_.index(), true);
      }
      co_return co_await refuse("22023", "invalid startup setting", "PostgreSQL said: " + error);
    }
    note_applied(*conn);
  }
  // What the client is told at login: the server's parameters, now with its own settings, which from here on
  // follow ParameterStatus.
  for (const auto& [k, v] : conn->parameters) {
    if (is_tracked(k, db_->pool.track_extra_parameters)) settings_.put(k, v);
  }
  // Which settings count as tracked decides what was compared; clients accepted under another configuration
  // (a reload changed track_extra_parameters) get other keys.
  std::string tail;
  for (const auto& e : db_->pool.track_extra_parameters) {
    tail.append(e);
    tail.push_back('\0');
  }
  settings_.set_tail(tail);
  cancel_slot_ =
      std::make_shared<CancelSlot>([weak = weak_from_this(), executor = worker_.io().get_executor()] {
        asio::post(executor, [weak] {
          if (auto s = weak.lock()) s->wake_cancelled_wait();
        });
      });
  client_key_ = server_.cancels().add(cancel_slot_);
  Encoder e(out_);
  encode::authentication_ok(e);
  for (const auto& [k, v] : conn->parameters)
    encode::parameter_status(e, k, v);
  encode::backend_key_data(e, *client_key_);
  encode::ready_for_query(e, backend::TransactionStatus::idle);
  log_.info("connected user={} database={} tls={} pool_mode={}", user_, database_,
            client_.is_tls() ? client_.info().version : "off", config::to_string(mode_));
  if (mode_ == config::PoolMode::session) {
    server_conn_ = std::move(conn);
    log_.set_server(server_conn_->address);
    aim_cancels();
  } else {
    pool_->release(std::move(conn), worker_.index(), true);
  }
  if (audit_) {
    if (auto app = settings_.find("application_name")) audit_->set_application_name(*app);
    for (const auto& setting : settings_)
      audit_->on_parameter(setting.name, setting.value);
    audit_->set_sql_prepared_per_session(mode_ == config::PoolMode::session);
    audit_->set_named_per_session(mode_ == config::PoolMode::session || rename_statements_);
    if (server_conn_) audit_->set_server(server_conn_->address, server_conn_->backend_key.process_id);
    audit_->connected();
  }
  connected_ = true;
  if (!co_await write_client(out_)) co_return false;
  std::vector<std::uint8_t>().swap(out_);  // login is over: an idle session keeps no login buffer
  co_return true;
}

// ---------------------------------------------------------------------------------------------------------------
// Relay.

bool ClientSession::idle_point() const noexcept {
  if (!in_relay_ || !client_in_.empty() || client_scan_.mid_message()) return false;
  if (!server_conn_) return true;
  return server_conn_->tracker.clean() && !server_scan_.mid_message() && server_in_.empty();
}

void ClientSession::drain() {
  draining_ = true;
  if (admin_) {
    // Between commands the console is told now; in the middle of one, after its answer (admin_loop).
    if (admin_idle_) {
      send_fatal_best_effort("57P01", "terminating connection due to administrator command");
      client_.close();
    }
    return;
  }
  // Rolling restart: closed after its next transaction, or once idle for a second (check_timeouts), so a
  // client that just logged in gets to run what it came for.
  if (server_.handing_over()) return;
  if (idle_point()) stop_relay(SessionEnd::drained);
}

void ClientSession::force_close() {
  if (!in_relay_) {
    client_.close();
    if (ticket_ && pool_) pool_->cancel(*ticket_);
    return;
  }
  stop_relay(SessionEnd::shutdown_forced);
}

void ClientSession::check_timeouts(pool::Clock::time_point now) {
  // Idle since the client's last bytes or the server's last ReadyForQuery to it, whichever came later: a
  // statement that ran for a minute leaves its client idle from the moment its answer came.
  auto idle_for = now - std::max(last_activity_, last_ready_);
  // Busy clients keep OpenSSL's record buffers; one idle for a second gives them back (see relay()), and so
  // does, every second, a client still logging in (which may stall there for client_login_timeout) or on the
  // admin console.
  if (!in_relay_ || idle_for >= idle_release_after) client_.release_buffers();
  if (idle_for >= idle_release_after && !server_conn_) backend_park_.wake();  // the parked server side ends
  if (!in_relay_ || db_ == nullptr) return;
  const auto& p = db_->pool;
  bool attached = server_conn_ != nullptr;
  bool in_transaction = attached && server_conn_->tracker.idle() &&
                        (server_conn_->tracker.status() != backend::TransactionStatus::idle ||
                         server_conn_->tracker.sync_owed());
  if (draining_ && server_.handing_over() && idle_point() && idle_for >= std::chrono::seconds(1)) {
    stop_relay(SessionEnd::drained);
  } else if (p.idle_transaction_timeout.count() > 0 && in_transaction &&
             idle_for >= p.idle_transaction_timeout) {
    stop_relay(SessionEnd::idle_transaction_timeout);
  } else if (p.client_idle_timeout.count() > 0 && idle_point() && idle_for >= p.client_idle_timeout) {
    stop_relay(SessionEnd::client_idle_timeout);
  }
}

// On the worker's thread only (every caller is): the cancellation runs inline there.
void ClientSession::stop_relay(SessionEnd reason) {
  if (stop_reason_ == SessionEnd::none) stop_reason_ = reason;
  relay_stop_->emit(asio::cancellation_type::terminal);
}

asio::awaitable<SessionEnd> ClientSession::relay() {
  in_relay_ = true;
  client_.release_buffers();  // the login's: a client may idle from here on
  last_activity_ = pool::Clock::now();
  if (draining_ && !server_.handing_over() && idle_point()) {
    in_relay_ = false;
    co_return SessionEnd::drained;
  }
  if (server_conn_) start_backend();  // session mode: attached since the login
  SessionEnd end = SessionEnd::client_io_error;
  std::exception_ptr failure;
  try {
    end = co_await frontend_loop();
  } catch (...) {
    failure = std::current_exception();  // rethrown once the server side has stopped
  }
  if (stop_reason_ == SessionEnd::none) stop_reason_ = end;
  co_await join_backend();
  in_relay_ = false;
  if (failure) std::rethrow_exception(failure);
  co_await asio::this_coro::reset_cancellation_state();  // finish() talks to both sides again
  co_return stop_reason_;
}

void ClientSession::start_backend() {
  if (backend_parked_) {
    backend_park_.wake();  // nothing if it was woken already (the janitor): it resumes to find server_conn_
    return;
  }
  backend_running_ = true;
  spawn_stoppable(worker_.io().get_executor(), backend_task(shared_from_this()), "server relay",
                  backend_stop_);
}

asio::awaitable<void> ClientSession::backend_task(std::shared_ptr<ClientSession> self) {
  // However the pump ends (an exception included), the relay learns it: join_backend() must never wait in
  // vain.
  struct Ended {
    ClientSession& session;
    SessionEnd end = SessionEnd::server_protocol_violation;
    explicit Ended(ClientSession& s) : session(s) {}
    Ended(const Ended&) = delete;
    Ended& operator=(const Ended&) = delete;
    ~Ended() {
      session.backend_running_ = false;
      session.backend_stop_ = nullptr;
      // Destroyed unresumed with its io_context (a forced exit): the client side's signal and timers may be
      // gone already.
      if (session.worker_.tearing_down()) return;
      if (session.backend_joined_ != nullptr) {
        try {
          session.backend_joined_->cancel();
        } catch (...) {  // NOLINT(bugprone-empty-catch): the joiner also wakes at its next stop
        }
      } else if (end != SessionEnd::none) {
        session.stop_relay(end);  // the server side failed or the session must end: the client side stops too
      }
    }
  } ended{*self};
  co_await asio::this_coro::throw_if_cancelled(false);
  try {
    ended.end = co_await self->backend_pump();
  } catch (const std::exception& e) {
    // Whatever the server sent is not followed any further: the connection is closed, never reused.
    self->violation_ = std::string("relaying the server's messages failed: ") + e.what();
  }
}

asio::awaitable<void> ClientSession::join_backend() {
  if (!backend_running_) co_return;
  backend_stopping_ = true;
  backend_stop_->emit(asio::cancellation_type::terminal);
  backend_park_.wake();  // the park installs no cancellation handler
  asio::steady_timer joined(worker_.io(), asio::steady_timer::time_point::max());
  backend_joined_ = &joined;
  while (backend_running_) {
    co_await joined.async_wait(use_tuple);
    // Woken by another stop, or the first came between two of the pump's operations: tell it again.
    if (backend_running_) backend_stop_->emit(asio::cancellation_type::terminal);
  }
  backend_joined_ = nullptr;
  backend_stopping_ = false;
}

asio::awaitable<pool::AcquireResult> ClientSession::acquire_server() {
  const auto started = pool::Clock::now();
  waiting_since_ = started;
  if (server_.paused(db_->name)) {
    // PAUSE, SUSPEND, KILL: new work waits for RESUME, within query_wait_timeout.
    const auto limit = db_->pool.query_wait_timeout;
    asio::steady_timer t(worker_.io());
    // Counted as waiting (SHOW POOLS cl_waiting) however the wait ends.
    struct PausedWait {
      pool::CounterShard& shard;
      explicit PausedWait(pool::CounterShard& s) : shard(s) { shard.add_paused(1); }
      ~PausedWait() { shard.add_paused(-1); }
      PausedWait(const PausedWait&) = delete;
      PausedWait& operator=(const PausedWait&) = delete;
    } counted(*counters_);
    while (server_.paused(db_->name)) {
      if ((limit.count() > 0 && pool::Clock::now() - started >= limit) || !client_.is_open() ||
          cancelled_in_queue()) {
        waiting_since_.reset();
        co_return pool::AcquireResult{pool::AcquireResult::Status::timeout, nullptr, {}, {}};
      }
      t.expires_after(std::chrono::milliseconds(20));
      auto [ec] = co_await t.async_wait(use_tuple);
      if (ec) {
        waiting_since_.reset();
        co_return pool::AcquireResult{pool::AcquireResult::Status::cancelled, nullptr, {}, {}};
      }
    }
  }
  if (cancelled_in_queue()) {
    // Cancelled while paused (a RESUME may have come in the same poll): no need to queue for the pool.
    waiting_since_.reset();
    co_return pool::AcquireResult{pool::AcquireResult::Status::timeout, nullptr, {}, {}};
  }
  auto r = co_await pool_->acquire(worker_.index(), worker_.io().get_executor(), ticket_);
  waiting_since_.reset();
  counters_->add_wait(static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::microseconds>(pool::Clock::now() - started).count()));
  co_return r;
}

SessionInfo ClientSession::info() const {
  SessionInfo i;
  i.id = log_.id();
  i.user = user_;
  i.database = database_;
  i.admin = admin_;
  i.state = !connected_ ? "login" : waiting_since_ ? "waiting" : "active";
  i.addr = peer_address_;
  i.port = peer_port_;
  boost::system::error_code ec;
  i.local_addr = local_addr_;
  i.local_port = local_port_;
  const auto now = pool::Clock::now();
  const auto now_sys = std::chrono::system_clock::now();
  auto to_sys = [&](pool::Clock::time_point t) {
    return now_sys - std::chrono::duration_cast<std::chrono::system_clock::duration>(now - t);
  };
  i.connect_time = connect_time_;
  i.request_time = to_sys(last_activity_);
  if (waiting_since_) {
    i.wait_us = std::chrono::duration_cast<std::chrono::microseconds>(now - *waiting_since_).count();
  }
  if (client_.is_tls()) i.tls = client_.info().version;
  if (auto app = settings_.find("application_name")) i.application_name = std::string(*app);
  if (server_conn_) {
    ServerLinkInfo s;
    s.addr = server_conn_->endpoint.address().to_string();
    s.port = server_conn_->endpoint.port();
    auto sl = server_conn_->stream.socket().local_endpoint(ec);
    if (!ec) {
      s.local_addr = sl.address().to_string();
      s.local_port = sl.port();
    }
    s.backend_pid = server_conn_->backend_key.process_id;
    if (server_conn_->stream.is_tls()) s.tls = server_conn_->stream.info().version;
    s.connect_time = to_sys(server_conn_->created);
    i.server = std::move(s);
  }
  return i;
}

bool ClientSession::attach_idle() {
  if (server_.paused(db_->name)) return false;
  auto conn = pool_->try_acquire(worker_.index(), worker_.io().get_executor());
  if (!conn) return false;
  counters_->add_wait(0);
  attached(std::move(conn));
  return true;
}

void ClientSession::wake_cancelled_wait() {
  // Posted: by now this may be a later wait, which only a cancel of its own may end (the flag is per wait).
  if (cancelled_in_queue() && ticket_ && pool_) pool_->cancel(*ticket_);
}

asio::awaitable<SessionEnd> ClientSession::attach() {
  cancel_slot_->begin_queue_wait();
  auto r = co_await acquire_server();
  if (cancel_slot_->end_queue_wait()) {
    // The client cancelled while it waited: the request does not run (a connection that came meanwhile got
    // nothing and goes back clean); the caller answers 57014.
    if (r.connection) pool_->release(std::move(r.connection), worker_.index(), true);
    co_return SessionEnd::none;
  }
  switch (r.status) {
    case pool::AcquireResult::Status::ok:
      if (client_.peer_shut_down()) {
        // Gone while it waited: what it asked must not run now that nobody is there for the answer (it
        // may have given up and retried elsewhere). Nothing was sent: the connection goes back clean.
        pool_->release(std::move(r.connection), worker_.index(), true);
        co_return SessionEnd::client_closed;
      }
      break;
    case pool::AcquireResult::Status::timeout:
      co_return SessionEnd::query_wait_timeout;
    case pool::AcquireResult::Status::cancelled:
      co_return SessionEnd::shutdown_forced;
    case pool::AcquireResult::Status::failed:
      end_detail_ = r.error;
      if (!r.server_error.message.empty()) end_detail_ += "; PostgreSQL said: " + r.server_error.message;
      co_return SessionEnd::server_unavailable;
  }
  attached(std::move(r.connection));
  co_return SessionEnd::none;
}

void ClientSession::abandon_request(char type) {
  log_.info("request cancelled while it waited for a server connection: not run");
  Encoder e(outbox_);
  encode::error_response(e, Notice{"ERROR",
                                   "57014",
                                   "canceling statement due to user request",
                                   "it was still waiting for a server connection and did not run",
                                   {}});
  if (type == frontend::query || type == frontend::function_call || type == frontend::sync) {
    encode::ready_for_query(e, backend::TransactionStatus::idle);
  } else {
    discard_ = Discard::until_sync;
  }
}

void ClientSession::attached(std::shared_ptr<pool::ServerConnection> connection) {
  server_conn_ = std::move(connection);
  log_.set_server(server_conn_->address);
  if (audit_) audit_->set_server(server_conn_->address, server_conn_->backend_key.process_id);
  aim_cancels();
  // Clients of one application mostly share their settings: a connection last brought in line with equal
  // ones needs no comparison, setting by setting, per transaction.
  if (server_conn_->settings_key != settings_.key()) {
    bool keyable = true;
    std::string diff = settings_diff(*server_conn_, &keyable);
    if (!diff.empty()) {
      // Before anything of the client's (nothing of this batch is forwarded yet), in the same write: the
      // connection takes this client's settings, silently.
      emit_replaced();
      Encoder e(server_out_);
      encode::query(e, diff);
      server_conn_->tracker.push(Request::query, Answer::swallow);
      note_applied(*server_conn_);
    }
    // The SET's ParameterStatus answers clear it again where they change a value; the next client with
    // these settings then compares once more and finds nothing to do.
    if (keyable) {
      server_conn_->settings_key = settings_.key();
    } else {
      server_conn_->settings_key.clear();
    }
  }
}

void ClientSession::aim_cancels() {
  cancel_slot_->set(
      CancelTarget{server_conn_->endpoint, server_conn_->host, server_conn_->backend_key, server_conn_});
}

void ClientSession::detach_and_release(bool reusable) {
  auto conn = std::move(server_conn_);
  if (!conn) return;
  log_.set_server({});
  if (audit_) audit_->detached();
  pool_->release(std::move(conn), worker_.index(), reusable);
}

void ClientSession::emit_wire(Bytes wire) {
  std::size_t offset = static_cast<std::size_t>(wire.data() - client_in_.readable().data());
  if (!rewriting_) {
    if (extend_run(range_start_, range_end_, offset, wire.size())) return;
    emit_replaced();
  }
  server_out_.insert(server_out_.end(), wire.begin(), wire.end());
}

void ClientSession::emit_replaced() {
  if (rewriting_) return;
  // From here this batch is assembled in server_out_: what was forwarded as is so far is copied first.
  Bytes data = client_in_.readable();
  server_out_.insert(server_out_.end(), data.begin() + static_cast<std::ptrdiff_t>(range_start_),
                     data.begin() + static_cast<std::ptrdiff_t>(range_end_));
  rewriting_ = true;
}

void ClientSession::failed_request(pool::ServerConnection& conn, std::uint64_t tag) {
  auto it = std::find_if(pending_parses_.begin(), pending_parses_.end(),
                         [&](const PendingParse& p) { return p.tag == tag; });
  if (it == pending_parses_.end()) {
    conn.statements.remove_tag(tag);  // pgwarden's own Parse (before a Bind): tagged with its statement
    return;
  }
  // The client's named Parse created nothing on the server: its name is free again, as in PostgreSQL.
  if (it->sent) conn.statements.remove_tag(it->statement_tag);
  if (const auto* st = statements_.find(it->name); st != nullptr && st->key.tag() == it->statement_tag)
    statements_.remove(it->name);
  pending_parses_.erase(it);
}

void ClientSession::ensure_prepared(const pool::PreparedStatement& statement) {
  if (server_conn_->statements.touch(statement.key)) return;
  prepare_on_server(statement, Answer::hidden);
}

void ClientSession::prepare_on_server(const pool::PreparedStatement& statement, Answer answer,
                                      std::uint64_t tag) {
  auto& conn = *server_conn_;
  emit_replaced();
  Encoder e(server_out_);
  // Closes answer like the Parse they come with, or (for the client's own Parse) like a hidden request.
  const Answer close_answer = answer == Answer::quiet ? Answer::quiet : Answer::hidden;
  if (auto evicted = conn.statements.add(statement, db_->pool.max_prepared_statements)) {
    encode::close(e, 'S', *evicted);
    conn.tracker.push(Request::close, close_answer);
  }
  // The server may hold the name although this connection's cache forgot it (an eviction Close or a
  // DEALLOCATE it skipped after an error): closing first makes the Parse succeed either way, and closing a
  // name that does not exist is no error.
  encode::close(e, 'S', statement.server_name);
  conn.tracker.push(Request::close, close_answer);
  encode::parse(e, statement.server_name, statement.query, statement.parameter_types,
                statement.num_parameter_types);
  conn.tracker.push(Request::parse, answer, tag != 0 ? tag : statement.key.tag());
}

void ClientSession::refuse_request(Request request, std::string_view sqlstate, std::string_view message,
                                   std::string_view hint) {
  std::vector<std::uint8_t> error;
  Encoder ee(error);
  encode::error_response(ee, Notice{"ERROR", sqlstate, message, {}, hint});
  server_conn_->tracker.push_replacing_error(request, error);
  emit_replaced();
  Encoder e(server_out_);
  if (request == Request::query) {
    encode::query(e, failing_sql);
  } else {
    encode::parse(e, failing_statement, failing_sql, {}, 0);
  }
  log_.info("refused a statement ({}): {}", sqlstate, message);
}

bool ClientSession::translate(char type, Bytes body, Bytes wire) {
  auto& t = server_conn_->tracker;
  auto refused = [&](std::string_view sql, Request request) {
    if (mode_ == config::PoolMode::transaction &&
        audit::has_statement_starting_with(sql, audit::Leading::listen)) {
      refuse_request(request, "0A000", "LISTEN is not supported in transaction pooling mode",
                     "Notifications would be lost when the server connection serves another client; use a "
                     "database with pool_mode = \"session\" for LISTEN.");
      return true;
    }
    if (mode_ == config::PoolMode::statement &&
        audit::has_statement_starting_with(sql, audit::Leading::begin)) {
      refuse_request(request, "0A000", "transaction blocks are not allowed in statement pooling mode",
                     "Use a database with pool_mode = \"transaction\" for multi-statement transactions.");
      return true;
    }
    return false;
  };
  switch (type) {
    case frontend::query: {
      frontend::Query q;
      if (decode(body, q) != Error::none) {
        violation_ = "malformed Query message";
        return false;
      }
      if (audit_ && !audit_->on_query(q.query, t.status() != backend::TransactionStatus::idle)) {
        refuse_request(Request::query, "58030", "could not write the audit log: statement not executed",
                       "pgwarden's audit log is failing (audit.on_failure = \"block\"); see pgwarden's log.");
        return true;
      }
      if (refused(q.query, Request::query)) return true;
      if (rewrite_deallocate(q.query, Request::query)) return true;
      t.push(Request::query);
      emit_wire(wire);
      return true;
    }
    case frontend::parse: {
      frontend::Parse p;
      if (decode(body, p) != Error::none) {
        violation_ = "malformed Parse message";
        return false;
      }
      if (refused(p.query, Request::parse)) return true;
      if (p.statement.empty() && rewrite_deallocate(p.query, Request::parse)) return true;
      if (!rename_statements_ || p.statement.empty()) {
        if (audit_) audit_->on_parse(p.statement, p.query);
        t.push(Request::parse);
        emit_wire(wire);
        return true;
      }
      if (statements_.contains(p.statement)) {
        refuse_request(Request::parse, "42P05",
                       "prepared statement \"" + std::string(p.statement) + "\" already exists", {});
        return true;
      }
      auto statement = pool::make_statement(p.query, p.parameter_types, p.num_parameter_types);
      if (auto added = statements_.add(p.statement, statement); added != pool::ClientStatements::Added::ok) {
        refuse_request(
            Request::parse, "54000",
            added == pool::ClientStatements::Added::too_many
                ? "too many prepared statements for one client: max_client_prepared_statements is " +
                      std::to_string(rt_->config->pool.max_client_prepared_statements)
                : "this client's prepared statements would hold more than max_client_prepared_bytes (" +
                      std::to_string(rt_->config->pool.max_client_prepared_bytes) + " bytes)",
            "Close statements that are no longer used.");
        return true;
      }
      if (audit_) audit_->on_parse(p.statement, p.query);
      auto& conn = *server_conn_;
      // A tag of its own, so that its failure names it alone (statement tags are 64-bit digests: one as small
      // as this counter is a chance of about 2^-40).
      const std::uint64_t tag = ++parse_seq_;
      if (pending_parses_.size() >= max_pending_requests) pending_parses_.pop_front();  // long answered
      const bool cached = conn.statements.touch(statement->key);
      pending_parses_.push_back({std::string(p.statement), statement->key.tag(), tag, !cached});
      if (cached) {
        // Already prepared on this server connection (by this client or another): pgwarden answers.
        t.push_synthetic(Request::parse, parse_complete_message, tag);
        emit_replaced();
        return true;
      }
      prepare_on_server(*statement, Answer::forward, tag);
      return true;
    }
    case frontend::bind: {
      frontend::Bind b;
      if (decode(body, b) != Error::none) {
        violation_ = "malformed Bind message";
        return false;
      }
      if (audit_) audit_->on_bind(b);
      const pool::PreparedStatement* statement =
          rename_statements_ && !b.statement.empty() ? statements_.find(b.statement) : nullptr;
      if (statement == nullptr) {
        // Unnamed, session mode, or a name the client never prepared (PostgreSQL answers 26000 as usual).
        t.push(Request::bind);
        emit_wire(wire);
        return true;
      }
      ensure_prepared(*statement);
      emit_replaced();
      Bytes rest = body.subspan(b.portal.size() + 1 + b.statement.size() + 1);
      Encoder e(server_out_);
      e.begin(frontend::bind).cstring(b.portal).cstring(statement->server_name).raw(rest).end();
      t.push(Request::bind);
      return true;
    }
    case frontend::describe: {
      frontend::Describe d;
      if (decode(body, d) != Error::none) {
        violation_ = "malformed Describe message";
        return false;
      }
      if (d.target == 'P') {
        t.push(Request::describe_portal);
        emit_wire(wire);
        return true;
      }
      const pool::PreparedStatement* statement =
          rename_statements_ && !d.name.empty() ? statements_.find(d.name) : nullptr;
      if (statement == nullptr) {
        t.push(Request::describe_statement);
        emit_wire(wire);
        return true;
      }
      ensure_prepared(*statement);
      emit_replaced();
      Encoder e(server_out_);
      encode::describe(e, 'S', statement->server_name);
      t.push(Request::describe_statement);
      return true;
    }
    case frontend::close: {
      frontend::Close c;
      if (decode(body, c) != Error::none) {
        violation_ = "malformed Close message";
        return false;
      }
      if (audit_) audit_->on_close(c.target, c.name);
      if (c.target == 'S' && rename_statements_ && !c.name.empty()) {
        // The server keeps its copy for other clients (and LRU); the client's name is gone, as it asked.
        statements_.remove(c.name);
        t.push_synthetic(Request::close, close_complete_message);
        emit_replaced();
        return true;
      }
      t.push(Request::close);
      emit_wire(wire);
      return true;
    }
    case frontend::execute:
      if (audit_) {
        frontend::Execute x;
        if (decode(body, x) != Error::none) {
          violation_ = "malformed Execute message";
          return false;
        }
        if (!audit_->on_execute(x.portal, t.status() != backend::TransactionStatus::idle)) {
          audit_refused_ = true;
          return false;
        }
      }
      t.push(Request::execute);
      emit_wire(wire);
      return true;
    case frontend::sync:
      if (audit_) audit_->on_sync();
      t.push(Request::sync);
      emit_wire(wire);
      return true;
    case frontend::flush:
      emit_wire(wire);
      return true;
    case frontend::function_call:
      if (audit_) audit_->on_function_call(body);
      t.push(Request::function_call);
      emit_wire(wire);
      return true;
    case frontend::copy_data:
    case frontend::copy_done:
    case frontend::copy_fail:
      if (audit_) audit_->on_copy_message();
      t.push(Request::copy_marker);
      emit_wire(wire);
      return true;
    default:
      violation_ = std::string("unexpected message type '") + type + "' after login";
      return false;
  }
}

bool ClientSession::rewrite_deallocate(std::string_view sql, Request request) {
  // psycopg 3 with libpq < 17 drops statements from its cache with SQL DEALLOCATE (simple or extended
  // protocol). The server knows this client's statement under pgwarden's name, maybe shared with other
  // clients: DEALLOCATE that name (preparing it first if this connection lacks it, so the answer is
  // PostgreSQL's own "DEALLOCATE"), forget it here, and let the others prepare it again when they need it.
  std::string_view name = deallocate_target(sql);
  if (!rename_statements_ || name.empty()) return false;
  const pool::PreparedStatement* statement = statements_.find(name);
  if (statement == nullptr) return false;  // a PREPARE'd SQL statement: the server's business
  emit_replaced();
  Encoder e(server_out_);
  auto& tracker = server_conn_->tracker;
  if (!server_conn_->statements.touch(statement->key)) {
    // Not on this connection: a stand-in under pgwarden's name (an empty SELECT), not the client's text,
    // which may fail now (a table dropped since) and abort the client's transaction for a statement it throws
    // away. Ahead of a simple Query it gets a Sync of its own (after an error the server would discard the
    // Query too) and its failure, an aborted transaction, is not shown: the DEALLOCATE then fails with the
    // server's own error. In the extended protocol, or while the client's own extended-protocol messages
    // still await their Sync (a Sync of pgwarden's would commit them out of the client's sight), it goes as
    // for a Bind.
    const bool own_sync = request == Request::query && !tracker.sync_owed();
    const Answer answer = own_sync ? Answer::quiet : Answer::hidden;
    encode::close(e, 'S', statement->server_name);
    tracker.push(Request::close, answer);
    encode::parse(e, statement->server_name, "SELECT", {}, 0);
    tracker.push(Request::parse, answer);
    if (own_sync) {
      encode::sync(e);
      tracker.push(Request::sync, Answer::quiet);
    }
  }
  std::string server_sql = "DEALLOCATE " + statement->server_name;
  if (request == Request::query) {
    encode::query(e, server_sql);
  } else {
    encode::parse(e, "", server_sql, {}, 0);
  }
  server_conn_->tracker.push(request);
  server_conn_->statements.remove(statement->key);
  statements_.remove(name);
  return true;
}

bool ClientSession::answer_locally(char type, Bytes body) {
  // Without a server connection nothing is pending and no transaction is open, so a standalone prepare
  // (libpq's PQprepare: Parse + Sync) can be answered here. pgbench -M prepared calls PQprepare synchronously
  // inside its client loop: waiting for a server here would stall every client on that pgbench thread,
  // including the one holding the connection it waits for. The syntax is checked with PostgreSQL's own
  // grammar; catalog errors (a missing table) come at the first execution instead, when pgwarden prepares it
  // on a server.
  if (!rename_statements_) return false;
  switch (type) {
    case frontend::parse: {
      frontend::Parse p;
      if (decode(body, p) != Error::none || p.statement.empty() || statements_.contains(p.statement))
        return false;
      if (mode_ == config::PoolMode::transaction &&
          audit::has_statement_starting_with(p.query, audit::Leading::listen)) {
        return false;
      }
      if (mode_ == config::PoolMode::statement &&
          audit::has_statement_starting_with(p.query, audit::Leading::begin)) {
        return false;
      }
      if (!audit::parses(p.query)) return false;
      if (statements_.add(p.statement,
                          pool::make_statement(p.query, p.parameter_types, p.num_parameter_types)) !=
          pool::ClientStatements::Added::ok) {
        return false;  // refused in translate(), with the server's connection attached
      }
      if (audit_) audit_->on_parse(p.statement, p.query);
      outbox_.insert(outbox_.end(), std::begin(parse_complete_message), std::end(parse_complete_message));
      return true;
    }
    case frontend::close: {
      frontend::Close c;
      if (decode(body, c) != Error::none || c.target != 'S' || c.name.empty()) return false;
      if (audit_) audit_->on_close(c.target, c.name);
      statements_.remove(c.name);
      outbox_.insert(outbox_.end(), std::begin(close_complete_message), std::end(close_complete_message));
      return true;
    }
    case frontend::sync:
      outbox_.insert(outbox_.end(), std::begin(ready_idle_message), std::end(ready_idle_message));
      return true;
    case frontend::flush:
      return true;
    case frontend::query: {
      frontend::Query q;
      if (decode(body, q) != Error::none) return false;
      std::string_view name = deallocate_target(q.query);
      if (name.empty() || !statements_.contains(name)) return false;
      statements_.remove(name);
      Encoder e(outbox_);
      encode::command_complete(e, "DEALLOCATE");
      encode::ready_for_query(e, backend::TransactionStatus::idle);
      return true;
    }
    default:
      return false;
  }
}

asio::awaitable<bool> ClientSession::write_client_direct(std::span<const std::uint8_t> bytes) {
  client_writing_ = true;
  auto ec = co_await client_.write_all(bytes);
  while (!ec && !outbox_.empty()) {
    std::vector<std::uint8_t> batch;
    batch.swap(outbox_);
    ec = co_await client_.write_all(batch);
    if (outbox_.empty()) {
      batch.clear();
      outbox_.swap(batch);  // keep the capacity
    }
  }
  client_writing_ = false;
  co_return !ec || client_write_failed(ec);
}

bool ClientSession::client_write_failed(const boost::system::error_code& ec) {
  if (!tls::is_expected_disconnect(ec)) log_.info("client write failed: {}", ec.message());
  return false;
}

asio::awaitable<bool> ClientSession::flush_outbox() {
  if (client_writing_ || outbox_.empty()) co_return true;
  std::vector<std::uint8_t> batch;
  batch.swap(outbox_);
  bool ok = co_await write_client_direct(batch);
  if (outbox_.empty()) {
    batch.clear();
    outbox_.swap(batch);
  }
  co_return ok;
}

bool ClientSession::backlogged() const noexcept {
  return outbox_.size() > max_outbox_bytes ||
         (server_conn_ && server_conn_->tracker.pending() > max_pending_requests);
}

asio::awaitable<SessionEnd> ClientSession::frontend_loop() {
  for (;;) {
    if (stop_reason_ != SessionEnd::none) co_return stop_reason_;
    bool flushed = false;
    while (backlogged()) {
      // The server side drains the tracker and the outbox as the client reads; what nobody is writing goes
      // out from here (waiting on the client is the back-pressure).
      if (!client_writing_ && !outbox_.empty()) {
        if (!co_await flush_outbox()) co_return SessionEnd::client_closed;
        continue;
      }
      if (!flushed && server_conn_ && server_conn_->tracker.sync_owed() && !client_scan_.mid_message()) {
        // Extended-protocol answers the server keeps in its output buffer until a Flush or Sync, which the
        // client may have sent beyond what pgwarden has read: a Flush changes nothing else.
        flushed = true;
        if (co_await server_conn_->stream.write_all(flush_message)) co_return SessionEnd::server_io_error;
      }
      asio::steady_timer t(worker_.io(), backlog_poll);
      co_await t.async_wait(use_tuple);
      if (stop_reason_ != SessionEnd::none) co_return stop_reason_;
    }
    if (client_in_.empty()) client_in_.release_if_empty();
    if (!client_.has_pending()) {
      if (auto [ec] = co_await client_.async_wait_readable(wait_token); ec) {
        co_return tls::is_expected_disconnect(ec) ? SessionEnd::client_closed : SessionEnd::client_io_error;
      }
    }
    // The batch's larger frame exists only while there is something to relay.
    if (SessionEnd end = co_await frontend_batch(); end != SessionEnd::none) co_return end;
  }
}

asio::awaitable<SessionEnd> ClientSession::frontend_batch() {
  client_in_.reserve(std::max(client_in_.size() + 1, io_buffer_size));
  auto [ec, n] = client_.try_read(client_in_.writable());
  if (tls::Stream::must_wait(ec)) std::tie(ec, n) = co_await client_.read_some(client_in_.writable());
  if (ec) {
    if (!tls::is_expected_disconnect(ec)) log_.info("client read failed: {}", ec.message());
    co_return tls::is_expected_disconnect(ec) ? SessionEnd::client_closed : SessionEnd::client_io_error;
  }
  client_in_.commit(n);
  last_activity_ = pool::Clock::now();
  counters_->add(pool::PoolCounter::received, n);
  std::size_t pos = 0;
  std::size_t needed = 0;
  range_start_ = range_end_ = 0;
  rewriting_ = false;
  server_out_.clear();
  SessionEnd stop = SessionEnd::none;
  bool attached_now = false;
  while (pos < client_in_.size()) {
    Bytes data = client_in_.readable();
    auto item = client_scan_.next(data.subspan(pos), frontend_body_needed);
    if (item.kind == Scanner::Kind::need_more) {
      needed = item.needed;
      break;
    }
    if (item.kind == Scanner::Kind::error) {
      violation_ = std::string(describe(item.error));
      stop = SessionEnd::client_protocol_violation;
      break;
    }
    if (item.kind == Scanner::Kind::message || item.starts_message) {
      char type = item.header.type;
      if (!frontend::is_known_type(type)) {
        violation_ = std::string("invalid frontend message type ") + std::to_string(static_cast<int>(type));
        stop = SessionEnd::client_protocol_violation;
        break;
      }
      if (type == frontend::terminate) {
        stop = SessionEnd::client_closed;
        break;
      }
      if (discard_ == Discard::until_sync) {
        if (type == frontend::sync) {
          outbox_.insert(outbox_.end(), std::begin(ready_idle_message), std::end(ready_idle_message));
          discard_ = Discard::none;
        }
        pos += item.wire.size();
        continue;
      }
      if (!server_conn_ &&
          (type == frontend::copy_data || type == frontend::copy_done || type == frontend::copy_fail)) {
        // No COPY is under way without a server connection (the one of a COPY abandoned by a cancel, say):
        // PostgreSQL ignores these messages then, and so does pgwarden.
        if (item.kind != Scanner::Kind::message) discard_ = Discard::rest_of_message;
        pos += item.wire.size();
        continue;
      }
      if (!server_conn_ && item.kind == Scanner::Kind::message && answer_locally(type, item.body)) {
        pos += item.wire.size();
        continue;
      }
      if (!server_conn_) {
        // Nothing of this batch went to a server yet, so attaching here keeps every message in order.
        if (stop_reason_ != SessionEnd::none) co_return stop_reason_;
        if (!attach_idle()) {
          // What pgwarden answered so far (a request abandoned by a cancel among it) goes out before the
          // wait.
          if (!outbox_.empty() && !co_await flush_outbox()) co_return SessionEnd::client_closed;
          if (auto r = co_await attach(); r != SessionEnd::none) co_return r;
          if (!server_conn_) {
            abandon_request(type);
            pos += item.wire.size();
            continue;
          }
        }
        attached_now = true;
      }
    } else if (discard_ != Discard::none) {
      // The rest of a message being discarded.
      pos += item.wire.size();
      if (discard_ == Discard::rest_of_message && !client_scan_.mid_message()) discard_ = Discard::none;
      continue;
    }
    if (item.kind == Scanner::Kind::message) {
      if (!translate(item.header.type, item.body, item.wire)) {
        stop = audit_refused_ ? SessionEnd::audit_unavailable : SessionEnd::client_protocol_violation;
        break;
      }
    } else {
      if (item.starts_message) {
        server_conn_->tracker.push(Request::copy_marker);
        if (audit_) audit_->on_copy_message();
      }
      emit_wire(item.wire);
    }
    pos += item.wire.size();
  }
  if (server_conn_) {
    // The server side starts (or, parked, is woken) only now that this batch's requests are on the tracker:
    // a new one may run inline up to its first wait (bytes TLS already holds), and with an empty tracker it
    // would take the connection for idle and release it under this batch. Before the write all the same: a
    // server answering a long pipeline must be read while the rest of it is written.
    if (attached_now) start_backend();
    std::span<const std::uint8_t> bytes =
        rewriting_ ? std::span<const std::uint8_t>(server_out_)
                   : client_in_.readable().subspan(range_start_, range_end_ - range_start_);
    if (audit_ && (audit_->must_wait() || audit_->broken())) {
      // fsync = "every": the records of the statements in this batch are on disk before they run.
      if (audit_->broken() || !co_await audit_->durable()) co_return SessionEnd::audit_unavailable;
    }
    // The relay was stopped while this batch waited (its requests stay unsent: finish() closes the
    // connection).
    if (stop_reason_ != SessionEnd::none) co_return stop_reason_;
    if (!bytes.empty()) {
      if (query_started_ == pool::Clock::time_point{}) query_started_ = last_activity_;
      if (xact_started_ == pool::Clock::time_point{}) xact_started_ = last_activity_;
      auto wec = server_conn_->stream.write_now(bytes);
      if (tls::Stream::must_wait(wec)) {
        frontend_writing_ = true;
        wec = co_await server_conn_->stream.write_all(bytes);
        frontend_writing_ = false;
      }
      if (wec) {
        log_.info("server write failed: {}", wec.message());
        co_return SessionEnd::server_io_error;
      }
    }
    // pgwarden's own answers with nothing pending before them go out now.
    server_conn_->tracker.take_due(due_);
    if (!due_.empty()) {
      outbox_.insert(outbox_.end(), due_.begin(), due_.end());
      due_.clear();
      if (!co_await flush_outbox()) co_return SessionEnd::client_closed;
    }
  }
  if (!outbox_.empty() && !co_await flush_outbox()) co_return SessionEnd::client_closed;
  client_in_.consume(pos);
  if (stop != SessionEnd::none) co_return stop;
  if (needed > 0) {
    client_in_.reserve(needed);
  } else if (client_in_.empty()) {
    client_in_.shrink_to(io_buffer_size);
  }
  co_return SessionEnd::none;
}

asio::awaitable<SessionEnd> ClientSession::backend_pump() {
  const auto& extra = db_->pool.track_extra_parameters;
  // Between transactions (transaction and statement modes) the pump parks until start_backend() wakes it
  // for the next attach: spawning a pump per attach cost about eight allocations. Once the client has been
  // idle for a second, the janitor wakes it with no connection attached and it ends, so that a client gone
  // idle keeps no frame of it. So does join_backend().
  struct Unpark {
    bool& parked;
    ~Unpark() { parked = false; }
  } unpark{backend_parked_};
  for (;;) {
    if (!server_conn_) {
      if (backend_stopping_) co_return SessionEnd::none;
      backend_parked_ = true;
      co_await backend_park_.async_park(asio::deferred);
      backend_parked_ = false;
      if (!server_conn_) co_return SessionEnd::none;
    }
    // One attached connection, from here until it goes back to the pool (`break`).
    auto conn = server_conn_;
    auto& tracker = conn->tracker;
    for (;;) {
      if (backend_stopping_) co_return SessionEnd::none;
      if (server_in_.empty()) server_in_.release_if_empty();
      if (!conn->stream.has_pending()) {
        if (auto [ec] = co_await conn->stream.async_wait_readable(wait_token); ec) {
          co_return tls::is_expected_disconnect(ec) ? SessionEnd::server_closed : SessionEnd::server_io_error;
        }
      }
      server_in_.reserve(std::max(server_in_.size() + 1, io_buffer_size));
      auto [ec, n] = conn->stream.try_read(server_in_.writable());
      if (tls::Stream::must_wait(ec))
        std::tie(ec, n) = co_await conn->stream.read_some(server_in_.writable());
      if (ec) {
        if (!tls::is_expected_disconnect(ec)) log_.warn("server read failed: {}", ec.message());
        co_return tls::is_expected_disconnect(ec) ? SessionEnd::server_closed : SessionEnd::server_io_error;
      }
      server_in_.commit(n);
      Bytes data = server_in_.readable();
      std::size_t pos = 0;
      std::size_t needed = 0;
      std::size_t seg_start = 0, seg_end = 0;  // the run of server bytes going to the client unchanged
      bool copying = false;
      scratch_.clear();
      SessionEnd stop = SessionEnd::none;
      auto to_copy_mode = [&] {
        if (copying) return;
        scratch_.insert(scratch_.end(), data.begin() + static_cast<std::ptrdiff_t>(seg_start),
                        data.begin() + static_cast<std::ptrdiff_t>(seg_end));
        copying = true;
      };
      auto pass = [&](Bytes wire) {
        std::size_t offset = static_cast<std::size_t>(wire.data() - data.data());
        if (!copying) {
          if (extend_run(seg_start, seg_end, offset, wire.size())) return;
          to_copy_mode();
        }
        scratch_.insert(scratch_.end(), wire.begin(), wire.end());
      };
      while (pos < data.size()) {
        auto item = server_scan_.next(data.subspan(pos), backend_body_needed);
        if (item.kind == Scanner::Kind::need_more) {
          needed = item.needed;
          break;
        }
        if (item.kind == Scanner::Kind::error) {
          violation_ = std::string(describe(item.error));
          stop = SessionEnd::server_protocol_violation;
          break;
        }
        if (item.kind == Scanner::Kind::passthrough && !item.starts_message) {
          if (streaming_to_client_) pass(item.wire);
          pos += item.wire.size();
          continue;
        }
        char type = item.header.type;
        if (!backend::is_known_type(type)) {
          violation_ = std::string("invalid backend message type ") + std::to_string(static_cast<int>(type));
          stop = SessionEnd::server_protocol_violation;
          break;
        }
        Bytes body = item.kind == Scanner::Kind::message ? item.body : Bytes{};
        auto v = tracker.on_message(type, body, due_, failed_tags_);
        if (v.violation) {
          violation_ = v.why;
          stop = SessionEnd::server_protocol_violation;
          break;
        }
        for (auto tag : failed_tags_)
          failed_request(*conn, tag);
        failed_tags_.clear();
        if (type == backend::notification_response && mode_ != config::PoolMode::session) {
          // A LISTEN got past the refusal (run by a function or a DO block): the notification may be for a
          // client this connection served before. Not shown to this one; the connection closes at release.
          if (!conn->listening)
            log_.warn(
                "a notification arrived in {} pooling: the server connection is "
                "listening; dropped, and the connection is closed when released",
                config::to_string(mode_));
          conn->listening = true;
          v.to_client = false;
        }
        if (audit_ && (v.to_client || !v.instead.empty())) {
          audit_->on_backend(type, v.instead.empty() ? body : v.instead.subspan(typed_header_size));
        }
        if (type == backend::parameter_status) {
          backend::ParameterStatus ps;
          if (decode(body, ps) == Error::none) {
            conn->set_parameter(ps.name, ps.value);
            if (v.to_client && is_tracked(ps.name, extra)) {
              settings_.put(ps.name, ps.value);
            }
            if (audit_ && v.to_client) {
              if (ps.name == "application_name") audit_->set_application_name(ps.value);
              audit_->on_parameter(ps.name, ps.value);
            }
          }
        } else if (type == backend::ready_for_query && v.to_client) {
          count_ready(body, tracker.idle());
        } else if (type == backend::command_complete) {
          backend::CommandComplete cc;
          if (decode(body, cc) == Error::none) {
            if (v.to_client && (cc.tag == "SET" || cc.tag == "RESET")) {
              // The client's RESET ALL took back the startup options pgwarden applied (or its SET changed
              // one): what the connection holds is unknown now, so the next attach sets or resets each again.
              for (auto& a : conn->applied)
                a.second.assign(1, '\0');  // equal to no setting's value
              if (!conn->applied.empty()) conn->settings_key.clear();
            }
            if (cc.tag == "DISCARD ALL" || cc.tag == "DEALLOCATE ALL") {
              // Gone on the server for everyone; the client that asked loses its names too, as it would
              // directly.
              conn->statements.clear();
              if (cc.tag == "DISCARD ALL") {
                conn->applied.clear();
                conn->settings_key.clear();
              }
              if (v.to_client) statements_.clear();
            }
          }
        } else if (type == backend::error_response && !v.to_client && v.instead.empty() && !v.quiet) {
          // One of pgwarden's own requests failed (restoring this client's settings): the client must not go
          // on with settings it did not ask for.
          backend::ErrorFields f;
          decode(body, f);
          end_detail_ = std::string(f.message);
          stop = SessionEnd::settings_lost;
          break;
        }
        if (!due_.empty()) {
          to_copy_mode();
          scratch_.insert(scratch_.end(), due_.begin(), due_.end());
          due_.clear();
        }
        if (!v.instead.empty()) {
          to_copy_mode();
          scratch_.insert(scratch_.end(), v.instead.begin(), v.instead.end());
          streaming_to_client_ = false;
        } else if (v.to_client) {
          pass(item.wire);
          streaming_to_client_ = true;
        } else {
          to_copy_mode();
          streaming_to_client_ = false;
        }
        pos += item.wire.size();
      }
      if (stop == SessionEnd::none) {
        // pgwarden's own answers queued behind the last request answered here go out with it: nothing else
        // would send them before the server's next message (after a Flush there may be none).
        tracker.take_due(due_);
        if (!due_.empty()) {
          to_copy_mode();
          scratch_.insert(scratch_.end(), due_.begin(), due_.end());
          due_.clear();
        }
        if (tracker.idle()) pending_parses_.clear();  // every Parse still listed succeeded
      }
      std::span<const std::uint8_t> out =
          copying ? std::span<const std::uint8_t>(scratch_) : data.subspan(seg_start, seg_end - seg_start);
      if (audit_ && (audit_->must_wait() || audit_->broken())) {
        // fsync = "every": a result reaches the client only once its outcome record is on disk.
        if (audit_->broken() || !co_await audit_->durable()) co_return SessionEnd::audit_unavailable;
      }
      // Stopped between operations: what is unsent stays in server_in_, and finish() closes the connection.
      if (backend_stopping_) co_return SessionEnd::none;
      if (!out.empty()) {
        counters_->add(pool::PoolCounter::sent, out.size());
        bool ok = true;
        if (outbox_.empty() && !client_writing_) {
          auto wec = client_.write_now(out);
          if (tls::Stream::must_wait(wec)) {
            ok = co_await write_client_direct(out);
          } else if (wec) {
            ok = client_write_failed(wec);
          }
        } else {
          outbox_.insert(outbox_.end(), out.begin(), out.end());
          ok = co_await flush_outbox();
          // The client side is writing to a slow client: read no more from the server until it catches up.
          while (ok && client_writing_ && outbox_.size() > max_outbox_bytes && !backend_stopping_) {
            asio::steady_timer t(worker_.io(), backlog_poll);
            co_await t.async_wait(use_tuple);
          }
          if (ok) ok = co_await flush_outbox();
        }
        if (!ok) co_return SessionEnd::client_closed;
      }
      server_in_.consume(pos);
      if (stop != SessionEnd::none) co_return stop;
      if (needed > 0) server_in_.reserve(needed);
      // Bytes TLS still holds (a notice that came after ReadyForQuery) belong to this client: read them
      // first.
      auto answered = [&] {
        return server_in_.empty() && !server_scan_.mid_message() && tracker.idle() &&
               !conn->stream.has_pending();
      };
      if (!answered()) continue;
      if (mode_ == config::PoolMode::statement && tracker.status() != backend::TransactionStatus::idle) {
        co_return SessionEnd::transaction_in_statement_mode;
      }
      // Nothing owed either way: the server answered everything and the client is between messages.
      auto at_boundary = [&] {
        return answered() && tracker.clean() && !client_scan_.mid_message() && !frontend_writing_;
      };
      if (!at_boundary()) continue;
      if (mode_ != config::PoolMode::session) {
        // A cancel request on its way to this backend pins it here until it is done (bounded by its timeout).
        cancel_slot_->set(std::nullopt);
        bool waited = false;
        for (int i = 0; conn->cancels_in_flight.load(std::memory_order_acquire) > 0 && i < 5000; ++i) {
          if (backend_stopping_) co_return SessionEnd::none;  // finish() closes a connection a cancel may hit
          waited = true;
          asio::steady_timer t(worker_.io(), std::chrono::milliseconds(2));
          co_await t.async_wait(use_tuple);
        }
        if (waited && !at_boundary()) {
          // The client sent more meanwhile, on this connection: it is not done with it after all.
          aim_cancels();
          continue;
        }
        // A cancel still on its way after that could hit the next client's query: closed, not reused.
        detach_and_release(conn->cancels_in_flight.load(std::memory_order_acquire) == 0);
        if (draining_ && client_in_.empty()) co_return SessionEnd::drained;
        server_in_.release_if_empty();  // an idle client holds no read buffer
        break;
      }
      if (draining_ && client_in_.empty()) co_return SessionEnd::drained;
    }
  }
}

void ClientSession::count_ready(Bytes body, bool nothing_pending) {
  using pool::PoolCounter;
  const auto now = pool::Clock::now();
  auto us = [&](pool::Clock::time_point since) {
    if (since == pool::Clock::time_point{}) return std::uint64_t{0};
    return static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::microseconds>(now - since).count());
  };
  last_ready_ = now;
  counters_->add(PoolCounter::query_count, 1);
  counters_->add(PoolCounter::query_time_us, us(query_started_));
  query_started_ = nothing_pending ? pool::Clock::time_point{} : now;
  if (!body.empty() && body[0] == static_cast<std::uint8_t>(backend::TransactionStatus::idle)) {
    counters_->add(PoolCounter::xact_count, 1);
    counters_->add(PoolCounter::xact_time_us, us(xact_started_));
    xact_started_ = nothing_pending ? pool::Clock::time_point{} : now;
  }
}

asio::awaitable<void> ClientSession::finish(SessionEnd end) {
  bool client_at_boundary = !server_scan_.mid_message() && !client_writing_ && outbox_.empty();
  auto tell = [&](std::string_view sqlstate, std::string_view message, std::string_view detail = {}) {
    if (client_at_boundary) send_fatal_best_effort(sqlstate, message, detail);
  };
  switch (end) {
    case SessionEnd::drained:
    case SessionEnd::shutdown_forced:
      tell("57P01", "terminating connection due to administrator command");
      break;
    case SessionEnd::server_closed:
    case SessionEnd::server_io_error:
      tell("08006", "server connection lost");
      break;
    case SessionEnd::server_protocol_violation:
      log_.error("server protocol violation: {}", violation_);
      tell("08006", "server connection lost", "the server sent something pgwarden could not follow");
      break;
    case SessionEnd::client_protocol_violation:
      log_.info("client protocol violation: {}", violation_);
      tell("08P01", "protocol violation", violation_);
      break;
    case SessionEnd::query_wait_timeout:
      tell("57014", "no server connection became free within query_wait_timeout");
      break;
    case SessionEnd::server_unavailable:
      log_.warn("no server connection: {}", end_detail_);
      tell("08006", "pgwarden could not connect to the server for database \"" + db_->name + "\"",
           end_detail_);
      break;
    case SessionEnd::settings_lost:
      log_.warn("restoring the client's settings failed: {}", end_detail_);
      tell("08006", "could not restore this session's settings on a server connection", end_detail_);
      break;
    case SessionEnd::client_idle_timeout:
      tell("57P05", "terminating connection due to idle timeout (client_idle_timeout)");
      break;
    case SessionEnd::access_revoked:
      tell("28000", "access revoked: pgwarden's reloaded access rules refuse this connection");
      break;
    case SessionEnd::idle_transaction_timeout:
      tell("25P03", "terminating connection due to idle-in-transaction timeout (idle_transaction_timeout)");
      break;
    case SessionEnd::transaction_in_statement_mode:
      tell("0A000", "transaction blocks are not allowed in statement pooling mode");
      break;
    case SessionEnd::audit_unavailable:
      log_.error("the audit log cannot take this session's records (audit.on_failure = \"block\"): closing");
      tell("58030", "could not write the audit log: session closed",
           "pgwarden's audit log is failing and audit.on_failure = \"block\"");
      break;
    default:
      break;
  }
  if (end != SessionEnd::refused && end != SessionEnd::none) log_.info("session ended: {}", describe(end));
  if (cancel_slot_) cancel_slot_->set(std::nullopt);
  if (audit_) {
    audit_->abandon(describe(end));
    if (connected_) audit_->disconnected(describe(end));
  }
  if (auto conn = std::move(server_conn_)) {
    bool server_failed = end == SessionEnd::server_closed || end == SessionEnd::server_io_error ||
                         end == SessionEnd::server_protocol_violation || end == SessionEnd::settings_lost;
    // KILL (and a client leaving a paused database): its server connections close rather than go idle.
    // A cancel request still on its way could hit the next client's query: such a connection is closed too.
    // Extended-protocol messages without their Sync: a Sync now would commit what the client abandoned.
    bool settled = !server_failed && conn->tracker.idle() && !conn->tracker.in_copy() &&
                   !conn->tracker.sync_owed() && !server_scan_.mid_message() && server_in_.empty() &&
                   !server_.paused(database_) && conn->cancels_in_flight.load(std::memory_order_acquire) == 0;
    if (!settled) {
      // Answers still owed, COPY in progress or a broken stream: closing is the only clean way out.
      pool_->discard(std::move(conn));
    } else {
      // A client that left inside a transaction gets it rolled back; in session mode the reset query wipes
      // what it left behind before the next client.
      std::vector<std::uint8_t> q;
      Encoder e(q);
      if (conn->tracker.status() != backend::TransactionStatus::idle) {
        encode::query(e, "ROLLBACK");
        conn->tracker.push(Request::query, Answer::swallow);
      }
      if (mode_ == config::PoolMode::session && !db_->pool.server_reset_query.empty()) {
        encode::query(e, db_->pool.server_reset_query);
        conn->tracker.push(Request::query, Answer::swallow);
      }
      bool broken = false;
      if (!q.empty()) {
        if (co_await conn->stream.write_all(q)) {
          broken = true;
        } else {
          std::string error = co_await settle(conn, broken);
          if (!error.empty()) {
            // What the client left (a SET, a temp table, a prepared statement) is still there: closed, not
            // handed to the next client.
            log_.warn("cleaning the server connection failed, closing it: {}", error);
            broken = true;
          }
        }
      }
      if (broken) {
        pool_->discard(std::move(conn));
      } else {
        pool_->release(std::move(conn), worker_.index(), true);
      }
    }
  }
  client_.close();
}

}  // namespace pgw::proxy
