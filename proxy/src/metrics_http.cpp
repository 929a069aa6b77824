// The /metrics HTTP server: an accept loop and one coroutine per connection, Beast's parser with hard limits.
#include "metrics_http.hpp"

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <list>
#include <stdexcept>
#include <system_error>
#include <utility>

#include "log.hpp"

namespace pgw::proxy {

namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;

namespace {

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

// The Prometheus text exposition format, version 0.0.4.
constexpr std::string_view content_type = "text/plain; version=0.0.4; charset=utf-8";

// One accepted connection. The TCP stream stays here (TLS wraps it by reference), so stop() can close it
// whatever the connection is doing.
struct Connection {
  explicit Connection(tcp::socket socket) : stream(std::move(socket)) {}
  beast::tcp_stream stream;
  std::string peer;
};

}  // namespace

struct MetricsEndpoint::State {
  State(asio::io_context& io, tls::ContextPtr context, Render r, Limits l)
      : acceptor(io), tls(std::move(context)), render(std::move(r)), limits(l) {}

  tcp::acceptor acceptor;
  tls::ContextPtr tls;
  Render render;
  Limits limits;
  // Touched on the io_context's thread only. Expired entries are connections whose coroutine has ended.
  std::list<std::weak_ptr<Connection>> connections;
  bool stopped = false;

  std::size_t open_connections() {
    connections.remove_if([](const std::weak_ptr<Connection>& c) { return c.expired(); });
    return connections.size();
  }
};

namespace {

using State = MetricsEndpoint::State;

// Peers that go away, time out or break off TLS are routine for a scrape endpoint: debug, never error.
void log_connection_error(const Connection& c, std::string_view what, const error_code& ec) {
  spdlog::debug("metrics: client={} {}: {}", c.peer, what, ec.message());
}

bool is_http_parse_error(const error_code& ec) {
  return ec.category() == http::make_error_code(http::error::bad_method).category();
}

struct Reply {
  http::status status = http::status::ok;
  std::string body;
  std::string_view type = "text/plain; charset=utf-8";
  bool allow = false;  // 405: say which methods are
};

// Writes one response within request_timeout. HEAD gets the same head, Content-Length included, and no body.
template <class Stream>
asio::awaitable<error_code> write_reply(Stream& stream, Connection& c, const State& st, Reply reply,
                                        unsigned version, bool keep_alive, bool head) {
  auto fill = [&](auto& res) {
    res.set(http::field::server, "pgwarden");
    res.set(http::field::content_type, reply.type);
    if (reply.allow) res.set(http::field::allow, "GET, HEAD");
    res.keep_alive(keep_alive);
  };
  c.stream.expires_after(st.limits.request_timeout);
  if (head) {
    http::response<http::empty_body> res{reply.status, version};
    fill(res);
    res.content_length(reply.body.size());
    auto [ec, n] = co_await http::async_write(stream, res, use_tuple);
    co_return ec;
  }
  http::response<http::string_body> res{reply.status, version};
  fill(res);
  res.body() = std::move(reply.body);
  res.prepare_payload();
  auto [ec, n] = co_await http::async_write(stream, res, use_tuple);
  co_return ec;
}

asio::awaitable<Reply> answer(State& st, const http::request<http::empty_body>& req) {
  std::string_view target = req.target();
  target = target.substr(0, target.find('?'));  // a scraper's query parameters change nothing
  if (target != "/metrics")
    co_return Reply{http::status::not_found, "not found: the metrics are at /metrics\n"};
  if (req.method() != http::verb::get && req.method() != http::verb::head) {
    Reply reply{http::status::method_not_allowed, "method not allowed: use GET or HEAD\n"};
    reply.allow = true;
    co_return reply;
  }
  Reply reply;
  reply.type = content_type;
  try {
    reply.body = co_await st.render();
  } catch (const std::exception& e) {
    // A render that throws is a bug of ours, not the client's: worth a line above debug.
    spdlog::warn("metrics: rendering failed: {}", e.what());
    co_return Reply{http::status::internal_server_error, "metrics unavailable\n"};
  }
  co_return reply;
}

// Requests on one connection until the client closes, asks to close, breaks a limit or an I/O step fails.
// True: the connection may be closed politely (TLS close_notify); false: just close it.
template <class Stream>
asio::awaitable<bool> serve_requests(State& st, Connection& c, Stream& stream) {
  beast::flat_buffer buffer;
  for (;;) {
    http::request_parser<http::empty_body> parser;
    parser.header_limit(static_cast<std::uint32_t>(st.limits.header_limit));
    parser.body_limit(std::uint64_t{0});  // nothing here takes a body
    c.stream.expires_after(st.limits.request_timeout);
    auto [ec, n] = co_await http::async_read(stream, buffer, parser, use_tuple);
    if (ec) {
      if (ec == http::error::end_of_stream) co_return true;  // closed between requests: the normal end
      Reply reply;
      if (ec == http::error::header_limit || ec == http::error::buffer_overflow) {
        reply = {http::status::request_header_fields_too_large, "request header too large\n"};
      } else if (ec == http::error::body_limit) {
        reply = {http::status::payload_too_large, "a request body is not accepted here\n"};
      } else if (is_http_parse_error(ec)) {
        reply = {http::status::bad_request, "bad request\n"};
      } else {
        log_connection_error(c, "reading a request", ec);
        co_return false;
      }
      log_connection_error(c, "refused a request", ec);
      if (auto wec = co_await write_reply(stream, c, st, std::move(reply), 11, false, false)) {
        log_connection_error(c, "writing a response", wec);
        co_return false;
      }
      co_return true;
    }
    const auto& req = parser.get();
    bool keep_alive = req.keep_alive();
    Reply reply = co_await answer(st, req);
    if (st.stopped) co_return false;
    auto status = reply.status;
    if (auto wec = co_await write_reply(stream, c, st, std::move(reply), req.version(), keep_alive,
                                        req.method() == http::verb::head)) {
      log_connection_error(c, "writing a response", wec);
      co_return false;
    }
    spdlog::trace("metrics: client={} {} {} -> {}", c.peer, std::string_view(req.method_string()),
                  std::string_view(req.target()), static_cast<unsigned>(status));
    if (!keep_alive) co_return true;
  }
}

asio::awaitable<void> serve(std::shared_ptr<State> st, std::shared_ptr<Connection> c) {
  if (st->tls) {
    SSL* ssl_handle = SSL_new(st->tls.get());
    if (ssl_handle == nullptr) {
      spdlog::warn("metrics: cannot create a TLS connection: {}", tls::last_openssl_error());
      c->stream.close();
      co_return;
    }
    ssl::stream<beast::tcp_stream&> stream(c->stream, ssl_handle);  // owns ssl_handle from here
    c->stream.expires_after(st->limits.request_timeout);
    auto [hec] = co_await stream.async_handshake(ssl::stream_base::server, use_tuple);
    if (hec) {
      log_connection_error(*c, "TLS handshake", hec);
      c->stream.close();
      co_return;
    }
    if (co_await serve_requests(*st, *c, stream) && !st->stopped) {
      c->stream.expires_after(st->limits.request_timeout);
      auto [sec] = co_await stream.async_shutdown(use_tuple);
      if (sec && sec != asio::error::eof && sec != ssl::error::stream_truncated) {
        log_connection_error(*c, "TLS shutdown", sec);
      }
    }
  } else if (co_await serve_requests(*st, *c, c->stream)) {
    error_code ignored;
    c->stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
  }
  c->stream.close();
}

asio::awaitable<void> accept_loop(std::shared_ptr<State> st) {
  for (;;) {
    auto [ec, socket] = co_await st->acceptor.async_accept(use_tuple);
    if (st->stopped) co_return;
    if (ec) {
      if (ec == asio::error::operation_aborted || !st->acceptor.is_open()) co_return;
      // Out of descriptors and the like: say so, wait a little, keep serving (never spin).
      spdlog::warn("metrics: accept failed: {}", ec.message());
      asio::steady_timer pause(st->acceptor.get_executor(), std::chrono::milliseconds(100));
      co_await pause.async_wait(use_tuple);
      continue;
    }
    auto c = std::make_shared<Connection>(std::move(socket));
    error_code rec;
    auto remote = c->stream.socket().remote_endpoint(rec);
    if (rec) continue;  // already gone
    c->peer = remote.address().to_string() + ":" + std::to_string(remote.port());
    if (st->open_connections() >= st->limits.max_connections) {
      spdlog::debug("metrics: client={} closed: {} connections are open already", c->peer,
                    st->limits.max_connections);
      c->stream.close();
      continue;
    }
    st->connections.push_back(c);
    asio::co_spawn(st->acceptor.get_executor(), serve(st, std::move(c)),
                   [](const std::exception_ptr& e) { log::exception(e, "metrics connection"); });
  }
}

// A file that cannot be opened gets the system's reason ("No such file or directory"), not OpenSSL's stack.
bool readable(const std::filesystem::path& p, const char* key, std::string_view what,
              std::vector<tls::ContextProblem>& problems) {
  std::unique_ptr<std::FILE, decltype(&std::fclose)> f(std::fopen(p.c_str(), "rb"), std::fclose);
  if (f) return true;
  problems.push_back({key, "cannot read " + std::string(what) + " " + p.string() + ": " +
                               std::system_category().message(errno)});
  return false;
}

// ALPN (RFC 7301): HTTP/1.1 when offered; a client offering only other protocols goes on without ALPN.
int select_http11(SSL* /*ssl*/, const unsigned char** out, unsigned char* outlen, const unsigned char* in,
                  unsigned int inlen, void* /*arg*/) {
  static constexpr std::string_view http11 = "http/1.1";
  for (unsigned int i = 0; i < inlen;) {
    unsigned int len = in[i];
    if (i + 1 + len > inlen) break;
    if (len == http11.size() && std::memcmp(in + i + 1, http11.data(), len) == 0) {
      *out = in + i + 1;
      *outlen = static_cast<unsigned char>(len);
      return SSL_TLSEXT_ERR_OK;
    }
    i += 1 + len;
  }
  return SSL_TLSEXT_ERR_NOACK;
}

}  // namespace

MetricsEndpoint::MetricsEndpoint(asio::io_context& io, const tcp::endpoint& endpoint, tls::ContextPtr tls,
                                 Render render, Limits limits)
    : state_(std::make_shared<State>(io, std::move(tls), std::move(render), limits)) {
  auto& a = state_->acceptor;
  error_code ec;
  a.open(endpoint.protocol(), ec);
  if (!ec) a.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) a.bind(endpoint, ec);
  if (!ec) a.listen(asio::socket_base::max_listen_connections, ec);
  if (!ec) local_ = a.local_endpoint(ec);
  if (ec) {
    throw std::runtime_error("cannot listen for metrics on " + endpoint.address().to_string() + ":" +
                             std::to_string(endpoint.port()) + ": " + ec.message());
  }
}

MetricsEndpoint::~MetricsEndpoint() {
  try {
    stop();
  } catch (const std::exception& e) {
    spdlog::error("metrics: stopping: {}", e.what());
  }
}

void MetricsEndpoint::start() {
  asio::co_spawn(state_->acceptor.get_executor(), accept_loop(state_),
                 [](const std::exception_ptr& e) { log::exception(e, "metrics accept loop"); });
}

void MetricsEndpoint::stop() {
  asio::dispatch(state_->acceptor.get_executor(), [st = state_] {
    if (st->stopped) return;
    st->stopped = true;
    error_code ignored;
    st->acceptor.close(ignored);
    for (auto& weak : st->connections) {
      if (auto c = weak.lock()) c->stream.close();
    }
    st->connections.clear();
  });
}

tls::ContextResult make_metrics_tls_context(const std::filesystem::path& cert,
                                            const std::filesystem::path& key) {
  tls::ContextResult r;
  tls::ContextPtr ctx(SSL_CTX_new(TLS_server_method()), SSL_CTX_free);
  if (!ctx) {
    r.problems.push_back({"cert", "cannot create a TLS context: " + tls::last_openssl_error()});
    return r;
  }
  SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION);
  SSL_CTX_set_options(ctx.get(),
                      SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION | SSL_OP_CIPHER_SERVER_PREFERENCE);
  SSL_CTX_set_alpn_select_cb(ctx.get(), select_http11, nullptr);
  if (!readable(cert, "cert", "certificate", r.problems) ||
      !readable(key, "key", "private key", r.problems)) {
    return r;
  }
  if (SSL_CTX_use_certificate_chain_file(ctx.get(), cert.c_str()) != 1) {
    r.problems.push_back(
        {"cert", "cannot load certificate " + cert.string() + ": " + tls::last_openssl_error()});
  } else if (SSL_CTX_use_PrivateKey_file(ctx.get(), key.c_str(), SSL_FILETYPE_PEM) != 1) {
    r.problems.push_back(
        {"key", "cannot load private key " + key.string() + ": " + tls::last_openssl_error()});
  } else if (SSL_CTX_check_private_key(ctx.get()) != 1) {
    r.problems.push_back(
        {"key", "private key " + key.string() + " does not match certificate " + cert.string()});
  }
  if (r.problems.empty()) r.context = std::move(ctx);
  return r;
}

}  // namespace pgw::proxy
