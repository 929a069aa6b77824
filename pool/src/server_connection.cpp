// Making a server connection: DNS on every attempt (failover heals), sslmode semantics, the login machine.
#include "pgw/pool/server_connection.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <atomic>

#include "pgw/protocol/buffer.hpp"
#include "pgw/protocol/encoder.hpp"
#include "pgw/protocol/framer.hpp"

namespace pgw::pool {

namespace {

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);
using protocol::Bytes;
using tls::tcp;

std::atomic<std::uint64_t> next_connection_id{1};

// What one connection attempt shares with its deadline: the resolver and the socket to abort.
struct Attempt {
  explicit Attempt(const asio::any_io_executor& ex) : resolver(ex) {}
  tcp::resolver resolver;
  std::shared_ptr<ServerConnection> connection;
  void abort() {
    resolver.cancel();
    if (connection) connection->stream.close();
  }
};

ConnectError error(ConnectError::Kind kind, std::string message) {
  ConnectError e;
  e.kind = kind;
  e.message = std::move(message);
  return e;
}

// SSLRequest, then exactly one byte of answer: nothing the server sends before the handshake is read, let
// alone acted on (CVE-2021-23222), and an ErrorResponse is never relayed (CVE-2024-10977).
asio::awaitable<ConnectError> negotiate_tls(ServerConnection& c, const ConnectRequest& req,
                                            bool& tls_active) {
  std::vector<std::uint8_t> out;
  protocol::Encoder enc(out);
  protocol::encode::ssl_request(enc);
  if (auto ec = co_await c.stream.write_all(out)) {
    co_return error(ConnectError::Kind::unreachable, "cannot send SSLRequest: " + ec.message());
  }
  std::uint8_t answer = 0;
  auto [ec, n] = co_await c.stream.read_some(std::span<std::uint8_t>(&answer, 1));
  if (ec) co_return error(ConnectError::Kind::unreachable, "no answer to SSLRequest: " + ec.message());
  if (answer == 'S') {
    tls::ConnectOptions opts{req.host, req.policy.verify_chain, req.policy.verify_host};
    if (auto hec = co_await c.stream.handshake_as_client(req.tls_context.get(), opts)) {
      co_return error(ConnectError::Kind::tls_failed,
                      "TLS handshake failed: " +
                          (c.stream.error_detail().empty() ? hec.message() : c.stream.error_detail()));
    }
    tls_active = true;
    co_return ConnectError{};
  }
  if (answer == 'N') {
    if (req.policy.tls_required) {
      co_return error(ConnectError::Kind::tls_refused,
                      "the server does not accept TLS, and server_tls.mode requires it");
    }
    co_return ConnectError{};
  }
  co_return error(ConnectError::Kind::tls_refused,
                  "the server answered the TLS request with something other than 'S' or 'N' (its text is not "
                  "shown, see CVE-2024-10977)");
}

asio::awaitable<ConnectError> login(ServerConnection& c, const ConnectRequest& req, bool tls_active) {
  protocol::scram::ChannelBinding binding;
  if (tls_active) {
    binding.data = c.stream.channel_binding_hash(false);
    binding.available = !binding.data.empty();
  }
  protocol::ServerLogin machine(req.credentials, binding);
  std::vector<protocol::StartupParameter> params;
  params.reserve(req.startup.size());
  for (const auto& [k, v] : req.startup)
    params.push_back({k, v});
  std::vector<std::uint8_t> out;
  protocol::Encoder enc(out);
  machine.start(params, enc);
  protocol::Buffer in(8192);
  for (;;) {
    if (!out.empty()) {
      if (enc.error() != protocol::Error::none) {
        co_return error(ConnectError::Kind::protocol,
                        "cannot encode login message: " + std::string(protocol::describe(enc.error())));
      }
      if (auto ec = co_await c.stream.write_all(out)) {
        co_return error(ConnectError::Kind::unreachable, "connection lost during login: " + ec.message());
      }
      out.clear();
    }
    // Every complete message already buffered first, then read more.
    for (;;) {
      auto fr = protocol::parse_frame(in.readable(), req.max_message);
      if (fr.status == protocol::FrameStatus::error) {
        co_return error(ConnectError::Kind::protocol, "invalid message from the server during login: " +
                                                          std::string(protocol::describe(fr.error)));
      }
      if (fr.status == protocol::FrameStatus::need_more) {
        in.reserve(fr.needed);
        break;
      }
      auto status = machine.on_message(fr.frame.type, fr.frame.body, enc);
      in.consume(fr.frame.wire_size);
      if (status == protocol::ServerLogin::Status::failed) {
        using F = protocol::ServerLogin::Failure;
        ConnectError e;
        switch (machine.failure()) {
          case F::server_error:
            e.kind = ConnectError::Kind::login_rejected;
            e.message = "PostgreSQL refused the login";
            e.server_error = machine.server_error();
            break;
          case F::no_credentials:
            e.kind = ConnectError::Kind::credentials;
            e.message =
                machine.failure_detail() +
                ", but pgwarden has no usable secret for this user: put the password in the auth file or "
                "the database's password key";
            break;
          case F::unsupported_method:
            e.kind = ConnectError::Kind::credentials;
            e.message = machine.failure_detail();
            break;
          case F::bad_server_signature:
            e.kind = ConnectError::Kind::protocol;
            e.message = "the server failed to prove it knows the SCRAM secret: " + machine.failure_detail();
            break;
          default:
            e.kind = ConnectError::Kind::protocol;
            e.message = machine.failure_detail();
            break;
        }
        co_return e;
      }
      if (status == protocol::ServerLogin::Status::done) {
        c.parameters = machine.parameters();
        c.initial_parameters = c.parameters;
        c.backend_key = machine.backend_key();
        c.status = machine.transaction_status();
        if (!in.empty()) {
          co_return error(ConnectError::Kind::protocol,
                          "the server sent data after ReadyForQuery during login");
        }
        co_return ConnectError{};
      }
      if (!out.empty()) break;  // a reply to send before reading on
    }
    if (!out.empty()) continue;
    if (in.writable().empty()) in.reserve(in.capacity() * 2);
    auto [ec, n] = co_await c.stream.read_some(in.writable());
    if (ec) co_return error(ConnectError::Kind::unreachable, "connection lost during login: " + ec.message());
    in.commit(n);
  }
}

asio::awaitable<ConnectError> attempt(const asio::any_io_executor& ex, Attempt& state,
                                      const tcp::endpoint& ep, const ConnectRequest& req, bool use_tls) {
  state.connection = std::make_shared<ServerConnection>(tcp::socket(ex));
  ServerConnection& c = *state.connection;
  c.host = req.host;
  c.endpoint = ep;
  c.address = tls::endpoint_text(ep);
  auto [cec] = co_await c.stream.socket().async_connect(ep, use_tuple);
  if (cec)
    co_return error(ConnectError::Kind::unreachable, "cannot connect to " + c.address + ": " + cec.message());
  boost::system::error_code ignored;
  c.stream.socket().non_blocking(true, ignored);
  c.stream.socket().set_option(tcp::no_delay(true), ignored);
  // Set here, not in Stream's constructor (the socket was not open then); why: see Stream's.
  c.stream.socket().set_option(asio::socket_base::keep_alive(true), ignored);
  bool tls_active = false;
  if (use_tls) {
    if (auto e = co_await negotiate_tls(c, req, tls_active); e.kind != ConnectError::Kind::none) co_return e;
  }
  co_return co_await login(c, req, tls_active);
}

}  // namespace

void Deadline::arm(std::chrono::milliseconds after, std::function<void()> closer) {
  *fired_ = false;
  timer_.expires_after(after);
  timer_.async_wait([fired = fired_, closer = std::move(closer)](const boost::system::error_code& ec) {
    if (ec) return;
    *fired = true;
    closer();
  });
}

std::string ServerConnection::describe() const {
  return host + ":" + std::to_string(endpoint.port()) + " (pid " + std::to_string(backend_key.process_id) +
         ")";
}

std::string_view ServerConnection::parameter(std::string_view name) const noexcept {
  for (const auto& [k, v] : parameters) {
    if (k == name) return v;
  }
  return {};
}

void ServerConnection::set_parameter(std::string_view name, std::string_view value) {
  for (auto& [k, v] : parameters) {
    if (k == name) {
      if (v != value) {
        v = std::string(value);
        settings_key.clear();
      }
      return;
    }
  }
  parameters.emplace_back(std::string(name), std::string(value));
  settings_key.clear();
}

asio::awaitable<ConnectResult> connect(asio::any_io_executor ex, const ConnectRequest& req) {
  ConnectResult result;
  auto state = std::make_shared<Attempt>(ex);
  Deadline deadline(ex);
  deadline.arm(req.timeout, [weak = std::weak_ptr<Attempt>(state)] {
    if (auto s = weak.lock()) s->abort();
  });
  auto timed_out = [&] {
    return error(
        ConnectError::Kind::timeout,
        "no connection to " + req.host + ":" + std::to_string(req.port) + " within server_connect_timeout");
  };
  auto [rec, endpoints] =
      co_await state->resolver.async_resolve(req.host, std::to_string(req.port), use_tuple);
  if (deadline.fired()) {
    result.error = timed_out();
    co_return result;
  }
  if (rec) {
    result.error = error(ConnectError::Kind::resolve, "cannot resolve " + req.host + ": " + rec.message());
    co_return result;
  }
  // "allow": plaintext first, TLS if the server refuses that (libpq's order).
  std::vector<bool> tls_order;
  if (!req.policy.send_ssl_request) {
    tls_order = {false};
  } else if (req.policy.try_plain_first) {
    tls_order = {false, true};
  } else {
    tls_order = {true};
  }
  for (const auto& entry : endpoints) {
    for (std::size_t i = 0; i < tls_order.size(); ++i) {
      ConnectError e = co_await attempt(ex, *state, entry.endpoint(), req, tls_order[i]);
      if (deadline.fired()) {
        result.error = timed_out();
        co_return result;
      }
      if (e.kind == ConnectError::Kind::none) {
        state->connection->id = next_connection_id.fetch_add(1, std::memory_order_relaxed);
        result.connection = std::move(state->connection);
        result.error = {};
        co_return result;
      }
      state->connection->stream.close();
      result.error = std::move(e);
      bool retry_with_tls =
          i + 1 < tls_order.size() && result.error.kind == ConnectError::Kind::login_rejected;
      if (!retry_with_tls) break;
    }
    // Another address of the same name is worth a try only if this one could not be reached.
    if (result.error.kind != ConnectError::Kind::unreachable) break;
  }
  co_return result;
}

asio::awaitable<void> send_cancel(asio::any_io_executor ex, tcp::endpoint endpoint, std::string host,
                                  protocol::CancelRequest key, tls::ContextPtr tls_context,
                                  tls::ServerLegPolicy policy, std::chrono::milliseconds timeout) {
  auto state = std::make_shared<Attempt>(ex);
  state->connection = std::make_shared<ServerConnection>(tcp::socket(ex));
  Deadline deadline(ex);
  deadline.arm(timeout, [weak = std::weak_ptr<Attempt>(state)] {
    if (auto s = weak.lock()) s->abort();
  });
  ServerConnection& c = *state->connection;
  auto [cec] = co_await c.stream.socket().async_connect(endpoint, use_tuple);
  if (cec) co_return;
  boost::system::error_code ignored;
  c.stream.socket().non_blocking(true, ignored);
  if (policy.send_ssl_request && tls_context) {
    ConnectRequest req;
    req.host = host;
    req.tls_context = tls_context;
    req.policy = policy;
    bool tls_active = false;
    if (auto e = co_await negotiate_tls(c, req, tls_active); e.kind != ConnectError::Kind::none) {
      c.stream.close();
      co_return;
    }
  }
  std::vector<std::uint8_t> out;
  protocol::Encoder enc(out);
  protocol::encode::cancel_request(enc, key);
  if (co_await c.stream.write_all(out)) {
    c.stream.close();
    co_return;
  }
  // The server closes the connection once it has acted on the request.
  std::array<std::uint8_t, 64> sink{};
  for (int i = 0; i < 16; ++i) {
    auto [ec, n] = co_await c.stream.read_some(sink);
    if (ec) break;
  }
  c.stream.close();
}

}  // namespace pgw::pool
