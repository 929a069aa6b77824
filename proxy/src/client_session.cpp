// The client session: login phase as straight-line coroutine code over the sans-IO machines, then the relay.
#include "client_session.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "pgw/protocol/client_auth.hpp"
#include "pgw/protocol/framer.hpp"
#include "pgw/protocol/messages.hpp"
#include "server.hpp"

namespace pgw::proxy {

namespace {

using namespace protocol;
constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);
// Read buffers start here and grow only for a message that must be seen whole (up to max_packet_size).
constexpr std::size_t io_buffer_size = std::size_t{16} * 1024;
// SASL and password messages are tiny; anything bigger before authentication is refused.
constexpr std::uint32_t max_login_message = max_startup_packet_length;
constexpr std::uint8_t tls_handshake_record = 0x16;

std::string endpoint_text(const tls::tcp::endpoint& ep) {
  auto a = ep.address();
  return (a.is_v6() ? "[" + a.to_string() + "]" : a.to_string()) + ":" + std::to_string(ep.port());
}

bool frontend_inspected(char type) noexcept {
  // Messages whose content the relay acts on; everything else (CopyData above all) streams.
  return type == frontend::query || type == frontend::sync || type == frontend::terminate;
}

bool backend_inspected(char type) noexcept {
  return type == backend::ready_for_query || type == backend::parameter_status ||
         type == backend::error_response;
}

}  // namespace

ClientSession::ClientSession(Server& server, Worker& worker, tls::tcp::socket socket)
    : server_(server),
      worker_(worker),
      rt_(server.runtime()),
      client_(std::move(socket)),
      client_scan_(rt_->config->proxy.max_packet_size),
      server_scan_(rt_->config->proxy.max_packet_size),
      wake_(worker.io(), asio::steady_timer::time_point::max()),
      login_deadline_(worker.io().get_executor()) {
  boost::system::error_code ec;
  auto remote = client_.socket().remote_endpoint(ec);
  log_.set_session(server.next_session_id(), ec ? std::string("?") : endpoint_text(remote));
}

ClientSession::~ClientSession() {
  if (client_key_) server_.cancels().remove(client_key_->process_id);
  if (admitted_) server_.client_left();
}

asio::awaitable<void> ClientSession::run(std::shared_ptr<ClientSession> self) {
  co_await self->run_session();
}

asio::awaitable<void> ClientSession::run_session() {
  registration_ = worker_.add(this);
  login_deadline_.arm(rt_->config->proxy.client_login_timeout, [weak = weak_from_this()] {
    if (auto s = weak.lock()) {
      s->log_.info("client_login_timeout passed before login finished; closing");
      if (!s->client_writing_) {
        s->send_fatal_best_effort("08P01", "client_login_timeout expired before the login finished");
      }
      s->client_.close();
    }
  });
  bool ok = co_await negotiate();
  if (ok) ok = co_await authenticate();
  if (ok) ok = co_await attach_server();
  bool timed_out = login_deadline_.fired();
  login_deadline_.cancel();
  SessionEnd end = SessionEnd::refused;
  if (ok && !timed_out) {
    end = co_await relay();
  } else if (timed_out) {
    end = SessionEnd::login_timeout;
  }
  finish(end);
  worker_.remove(registration_);
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

asio::awaitable<bool> ClientSession::negotiate() {
  const auto& cfg = *rt_->config;
  auto [pec, first] = co_await client_.peek_byte();
  if (pec) {
    log_.debug("connection closed before any data: {}", pec.message());
    co_return false;
  }
  bool tls_negotiated = false;
  bool gss_negotiated = false;
  if (first == tls_handshake_record) {
    // PostgreSQL 17 direct TLS (sslnegotiation=direct): a ClientHello first, ALPN "postgresql" required.
    if (!rt_->client_tls) {
      log_.info("direct TLS attempt refused: client_tls.mode = disable");
      co_return false;
    }
    if (auto ec = co_await client_.handshake_as_server(rt_->client_tls.get())) {
      log_.info("TLS handshake failed: {}",
                client_.error_detail().empty() ? ec.message() : client_.error_detail());
      co_return false;
    }
    if (client_.alpn() != tls::alpn_postgresql) {
      log_.info("direct TLS connection without ALPN \"postgresql\"; closing as PostgreSQL 17 does");
      co_return false;
    }
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
          co_return false;
        }
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
  for (const auto& p : startup.parameters) {
    if (p.name == "user" || p.name == "database") continue;
    startup_parameters_.emplace_back(std::string(p.name), std::string(p.value));
  }
  if (client_.is_tls()) {
    auto info = client_.info();
    log_.debug("TLS {} {} for user={} database={}", info.version, info.cipher, user_, database_);
  }
  // Admission and shutdown are decided once we can answer in a way the client shows.
  if (!server_.try_admit_client()) {
    co_return co_await refuse("53300", "too many clients already: max_client_conn (" +
                                           std::to_string(cfg.proxy.max_client_conn) + ") is reached");
  }
  admitted_ = true;
  if (server_.draining()) co_return co_await refuse("57P03", "pgwarden is shutting down");
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
    if (!cn || *cn != user_) {
      co_return co_await refuse(
          "28000", "certificate authentication failed for user \"" + user_ + "\"",
          "client_tls.mode = \"verify-full\" needs a client certificate whose CN is the user name");
    }
  }
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
  auto target = server_.cancels().find(key);
  if (!target) {
    log_.info("cancel request with an unknown key ignored");
    co_return;
  }
  log_.info("forwarding cancel request to {} (backend pid {})", target->host, target->server_key.process_id);
  co_await pool::send_cancel(worker_.io().get_executor(), target->endpoint, target->host, target->server_key,
                             rt_->server_tls, rt_->server_policy, rt_->config->pool.server_connect_timeout);
}

// ---------------------------------------------------------------------------------------------------------------
// Authentication of the client against the auth file.

asio::awaitable<protocol::FrameResult> ClientSession::read_login_message() {
  for (;;) {
    FrameResult fr = parse_frame(client_in_.readable(), max_login_message);
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

asio::awaitable<bool> ClientSession::authenticate() {
  std::optional<UserSecret> secret;
  if (const UserSecret* s = rt_->auth->find(user_)) secret = *s;
  scram::ChannelBinding binding;
  if (client_.is_tls()) {
    binding.data = client_.channel_binding_hash(true);
    binding.available = !binding.data.empty();
  }
  ClientAuth auth(ClientAuthMethod::scram_sha_256, user_, std::move(secret), std::move(binding),
                  server_.mock_seed());
  Encoder e(out_);
  auth.start(e);
  for (;;) {
    if (!out_.empty()) {
      if (!co_await write_client(out_)) co_return false;
      out_.clear();
    }
    if (auth.status() != ClientAuth::Status::in_progress) break;
    FrameResult fr = co_await read_login_message();
    if (fr.status == FrameStatus::error) {
      if (fr.error == Error::truncated) {
        log_.debug("client left during authentication");
        co_return false;
      }
      co_return co_await refuse("08P01",
                                "invalid message during authentication: " + std::string(describe(fr.error)));
    }
    auth.on_message(fr.frame.type, fr.frame.body, e);
    client_in_.consume(fr.frame.wire_size);
  }
  switch (auth.failure()) {
    case ClientAuth::Failure::none:
      break;
    case ClientAuth::Failure::bad_credentials:
      // One text for a wrong password and an unknown user (PostgreSQL's wording).
      log_.info("authentication failed for user \"{}\": {}", user_, auth.failure_detail());
      co_return co_await refuse("28P01", "password authentication failed for user \"" + user_ + "\"");
    case ClientAuth::Failure::channel_binding:
      co_return co_await refuse("28000", "SCRAM channel binding negotiation error", auth.failure_detail());
    case ClientAuth::Failure::protocol_violation:
      co_return co_await refuse("08P01", "invalid authentication exchange", auth.failure_detail());
  }
  passthrough_ = auth.passthrough_keys();
  log_.debug("client authenticated as \"{}\" (SCRAM{})", user_, auth.used_channel_binding() ? "-PLUS" : "");
  db_ = rt_->config->find_database(database_);
  if (db_ == nullptr)
    co_return co_await refuse("3D000", "database \"" + database_ + "\" does not exist",
                              "pgwarden has no [[database]] named \"" + database_ + "\"");
  co_return true;
}

// ---------------------------------------------------------------------------------------------------------------
// Server connection (session mode: one per client, closed when the client leaves).

asio::awaitable<bool> ClientSession::attach_server() {
  const auto& cfg = *rt_->config;
  pool::ConnectRequest req;
  req.host = db_->host;
  req.port = db_->port;
  std::string server_user = db_->user.empty() ? user_ : db_->user;
  req.startup.emplace_back("user", server_user);
  req.startup.emplace_back("database", db_->dbname);
  for (const auto& p : startup_parameters_)
    req.startup.push_back(p);
  req.credentials.user = server_user;
  // The database's password wins; else the server user's own secret from the auth file, or the ClientKey the
  // client just proved (SCRAM passthrough) when it logs in as itself.
  if (!db_->password.empty()) {
    req.credentials.password = db_->password;
  } else if (const UserSecret* s = rt_->auth->find(server_user)) {
    if (const auto* plain = std::get_if<PlainSecret>(s)) req.credentials.password = plain->password;
    if (const auto* md5 = std::get_if<Md5Secret>(s)) req.credentials.md5_secret = md5->secret;
  }
  if (server_user == user_ && passthrough_) req.credentials.scram_keys = passthrough_;
  req.tls_context = rt_->server_tls;
  req.policy = rt_->server_policy;
  req.timeout = db_->pool.server_connect_timeout;
  req.max_message = cfg.proxy.max_packet_size;
  auto result = co_await pool::connect(worker_.io().get_executor(), req);
  std::string server_name = db_->host + ":" + std::to_string(db_->port);
  if (!result.connection) {
    const auto& err = result.error;
    std::string detail;
    if (!err.server_error.message.empty()) {
      detail =
          "PostgreSQL said: " + err.server_error.message + " (SQLSTATE " + err.server_error.sqlstate + ")";
    }
    log_.warn("server login to {} for database \"{}\" failed: {}{}{}", server_name, db_->name, err.message,
              detail.empty() ? "" : "; ", detail);
    co_return co_await refuse("08006",
                              "pgwarden could not log in to the server for database \"" + db_->name +
                                  "\" at " + server_name + ": " + err.message,
                              detail);
  }
  server_conn_ = std::move(result.connection);
  log_.set_server(endpoint_text(server_conn_->endpoint));
  cancel_slot_ = std::make_shared<CancelSlot>();
  cancel_slot_->set(CancelTarget{server_conn_->endpoint, server_conn_->host, server_conn_->backend_key});
  client_key_ = server_.cancels().add(cancel_slot_);
  tx_status_ = server_conn_->status;
  Encoder e(out_);
  encode::authentication_ok(e);
  for (const auto& [k, v] : server_conn_->parameters)
    encode::parameter_status(e, k, v);
  encode::backend_key_data(e, *client_key_);
  encode::ready_for_query(e, tx_status_);
  if (!co_await write_client(out_)) co_return false;
  out_.clear();
  log_.info("connected user={} database={} tls={} server backend pid {}", user_, database_,
            client_.is_tls() ? client_.info().version : "off", server_conn_->backend_key.process_id);
  co_return true;
}

// ---------------------------------------------------------------------------------------------------------------
// Relay.

bool ClientSession::idle() const noexcept {
  return pending_syncs_ == 0 && tx_status_ == backend::TransactionStatus::idle &&
         !client_scan_.mid_message() && !server_scan_.mid_message() && client_in_.empty() &&
         server_in_.empty();
}

void ClientSession::drain() {
  draining_ = true;
  if (!in_relay_) return;  // still logging in: refused with 57P03 when it gets there
  if (idle()) {
    wake_reason_ = SessionEnd::drained;
    wake_.cancel();
  }
}

void ClientSession::force_close() {
  if (!in_relay_) {
    client_.close();
    if (server_conn_) server_conn_->stream.close();
    return;
  }
  wake_reason_ = SessionEnd::shutdown_forced;
  wake_.cancel();
}

asio::awaitable<SessionEnd> ClientSession::wait_for_wake() {
  co_await wake_.async_wait(use_tuple);
  co_return wake_reason_;
}

asio::awaitable<SessionEnd> ClientSession::relay() {
  using namespace asio::experimental::awaitable_operators;
  in_relay_ = true;
  if (draining_ && idle()) co_return SessionEnd::drained;
  auto result = co_await (frontend_pump() || backend_pump() || wait_for_wake());
  in_relay_ = false;
  co_return std::visit([](SessionEnd e) { return e; }, result);
}

asio::awaitable<SessionEnd> ClientSession::frontend_pump() {
  for (;;) {
    if (auto ec = co_await client_.wait_readable()) {
      co_return tls::is_expected_disconnect(ec) ? SessionEnd::client_closed : SessionEnd::client_io_error;
    }
    client_in_.reserve(std::max(client_in_.size() + 1, io_buffer_size));
    auto [ec, n] = co_await client_.read_some(client_in_.writable());
    if (ec) {
      if (!tls::is_expected_disconnect(ec)) log_.info("client read failed: {}", ec.message());
      co_return tls::is_expected_disconnect(ec) ? SessionEnd::client_closed : SessionEnd::client_io_error;
    }
    client_in_.commit(n);
    Bytes data = client_in_.readable();
    std::size_t pos = 0;
    std::size_t needed = 0;
    SessionEnd stop = SessionEnd::none;
    while (pos < data.size()) {
      auto item = client_scan_.next(data.subspan(pos), frontend_inspected);
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
        if (type == frontend::query || type == frontend::sync) ++pending_syncs_;
      }
      pos += item.wire.size();
    }
    if (pos > 0) {
      if (auto wec = co_await server_conn_->stream.write_all(data.first(pos))) {
        log_.info("server write failed: {}", wec.message());
        co_return SessionEnd::server_io_error;
      }
      client_in_.consume(pos);
    }
    if (stop != SessionEnd::none) co_return stop;
    if (needed > 0) {
      client_in_.reserve(needed);
    } else if (client_in_.empty()) {
      client_in_.shrink_to(io_buffer_size);
    }
  }
}

asio::awaitable<SessionEnd> ClientSession::backend_pump() {
  auto& server = server_conn_->stream;
  for (;;) {
    if (server_in_.empty()) server_in_.release_if_empty();
    if (auto ec = co_await server.wait_readable()) {
      co_return tls::is_expected_disconnect(ec) ? SessionEnd::server_closed : SessionEnd::server_io_error;
    }
    server_in_.reserve(std::max(server_in_.size() + 1, io_buffer_size));
    auto [ec, n] = co_await server.read_some(server_in_.writable());
    if (ec) {
      if (!tls::is_expected_disconnect(ec)) log_.warn("server read failed: {}", ec.message());
      co_return tls::is_expected_disconnect(ec) ? SessionEnd::server_closed : SessionEnd::server_io_error;
    }
    server_in_.commit(n);
    Bytes data = server_in_.readable();
    std::size_t pos = 0;
    std::size_t needed = 0;
    SessionEnd stop = SessionEnd::none;
    while (pos < data.size()) {
      auto item = server_scan_.next(data.subspan(pos), backend_inspected);
      if (item.kind == Scanner::Kind::need_more) {
        needed = item.needed;
        break;
      }
      if (item.kind == Scanner::Kind::error) {
        violation_ = std::string(describe(item.error));
        stop = SessionEnd::server_protocol_violation;
        break;
      }
      if (item.kind == Scanner::Kind::message) {
        char type = item.header.type;
        if (!backend::is_known_type(type)) {
          violation_ = std::string("invalid backend message type ") + std::to_string(static_cast<int>(type));
          stop = SessionEnd::server_protocol_violation;
          break;
        }
        if (type == backend::ready_for_query) {
          backend::ReadyForQuery z;
          if (decode(item.body, z) != Error::none) {
            violation_ = "malformed ReadyForQuery";
            stop = SessionEnd::server_protocol_violation;
            break;
          }
          tx_status_ = z.status;
          if (pending_syncs_ > 0) --pending_syncs_;
          pos += item.wire.size();
          if (draining_ && pending_syncs_ == 0 && tx_status_ == backend::TransactionStatus::idle &&
              pos == data.size() && !client_scan_.mid_message() && client_in_.empty()) {
            stop = SessionEnd::drained;
            break;
          }
          continue;
        }
        if (type == backend::parameter_status) {
          backend::ParameterStatus p;
          if (decode(item.body, p) == Error::none) server_conn_->set_parameter(p.name, p.value);
        }
      }
      pos += item.wire.size();
    }
    if (pos > 0) {
      client_writing_ = true;
      auto wec = co_await client_.write_all(data.first(pos));
      client_writing_ = false;
      if (wec) {
        if (!tls::is_expected_disconnect(wec)) log_.info("client write failed: {}", wec.message());
        co_return tls::is_expected_disconnect(wec) ? SessionEnd::client_closed : SessionEnd::client_io_error;
      }
      server_in_.consume(pos);
    }
    if (stop != SessionEnd::none) co_return stop;
    if (needed > 0) server_in_.reserve(needed);
  }
}

void ClientSession::finish(SessionEnd end) {
  bool client_at_boundary = !server_scan_.mid_message() && !client_writing_;
  switch (end) {
    case SessionEnd::drained:
    case SessionEnd::shutdown_forced:
      if (client_at_boundary)
        send_fatal_best_effort("57P01", "terminating connection due to administrator command");
      break;
    case SessionEnd::server_closed:
    case SessionEnd::server_io_error:
    case SessionEnd::server_protocol_violation:
      if (end == SessionEnd::server_protocol_violation)
        log_.error("server protocol violation: {}", violation_);
      if (client_at_boundary) {
        send_fatal_best_effort(
            "08006", "server connection lost",
            end == SessionEnd::server_protocol_violation ? "the server sent invalid data" : "");
      }
      break;
    case SessionEnd::client_protocol_violation:
      log_.info("client protocol violation: {}", violation_);
      if (client_at_boundary) send_fatal_best_effort("08P01", "protocol violation", violation_);
      break;
    default:
      break;
  }
  if (end != SessionEnd::refused && end != SessionEnd::none) log_.info("session ended: {}", describe(end));
  if (server_conn_) {
    // Session mode: the server connection leaves with its client. Say goodbye so PostgreSQL logs a clean
    // exit.
    static constexpr std::uint8_t terminate[] = {'X', 0, 0, 0, 4};
    if (server_conn_->stream.is_open() && end != SessionEnd::server_closed &&
        end != SessionEnd::server_io_error) {
      server_conn_->stream.try_write_all(terminate);
    }
    server_conn_->stream.close();
    server_conn_.reset();
  }
  if (cancel_slot_) cancel_slot_->set(std::nullopt);
  client_.close();
}

}  // namespace pgw::proxy
