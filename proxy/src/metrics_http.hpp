// Prometheus /metrics over HTTP/1.1 (Boost.Beast), plain or TLS: a small server with bounded connections,
// header size and time per request.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <chrono>
#include <cstddef>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>

#include "pgw/tls/context.hpp"

namespace pgw::proxy {

namespace asio = boost::asio;

// Limits of the metrics endpoint, with their defaults (a caller may take them from config).
struct MetricsLimits {
  std::size_t header_limit = 8192;                    // request line and headers, bytes (8 kB)
  std::chrono::milliseconds request_timeout{10'000};  // to receive one whole request (this also bounds an
                                                      // idle keep-alive connection), and again to send its
                                                      // response
  std::size_t max_connections = 64;                   // open at once; extra ones are closed at once
};

// Serves GET and HEAD /metrics with the Prometheus text format (version 0.0.4); 404 for any other path, 405
// (with Allow) for any other method on /metrics, 431 for a request head over the limit, 413 for a request
// with a body, 400 for anything that is not HTTP/1.x. Keep-alive as the client asks. Everything runs on the
// one io_context it is given; `render` is called there for each GET or HEAD and its text is the body.
class MetricsEndpoint {
 public:
  using Render = std::function<asio::awaitable<std::string>()>;
  using Limits = MetricsLimits;

  // Binds and listens (throws std::runtime_error naming the endpoint if it cannot: a start-up error). `tls`
  // null = plain HTTP; else a server context with a certificate, e.g. from make_metrics_tls_context(). Not
  // the client-leg context: it refuses clients whose ALPN offer lacks "postgresql", as HTTP clients' does.
  MetricsEndpoint(asio::io_context& io, const asio::ip::tcp::endpoint& endpoint, tls::ContextPtr tls,
                  Render render, Limits limits = {});
  // Stops (see stop()). Must run before the io_context is destroyed.
  ~MetricsEndpoint();
  MetricsEndpoint(const MetricsEndpoint&) = delete;
  MetricsEndpoint& operator=(const MetricsEndpoint&) = delete;

  // Starts accepting (any thread; the work runs when the io_context runs).
  void start();
  // Closes the listener and every open connection; a render in progress finishes but its answer is not sent.
  // Any thread: on the io_context's own thread it is done when stop() returns, else as soon as that thread
  // runs it.
  void stop();
  // The bound address (port 0 in the constructor: the port the kernel chose).
  asio::ip::tcp::endpoint local_endpoint() const { return local_; }

  struct State;

 private:
  std::shared_ptr<State> state_;
  asio::ip::tcp::endpoint local_;
};

// A TLS server context for the endpoint: certificate chain and key (PEM), TLS 1.2 at least, no renegotiation
// or compression, ALPN "http/1.1" when the client offers it. Problems are keyed "cert" and "key".
tls::ContextResult make_metrics_tls_context(const std::filesystem::path& cert,
                                            const std::filesystem::path& key);

}  // namespace pgw::proxy
