// MetricsEndpoint over real loopback sockets: GET/HEAD /metrics, 404, 405, 413, 431, 400, keep-alive and
// pipelining, the read timeout, the connection cap, TLS with a certificate made here, and stop().
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <unistd.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>

#include <array>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <type_traits>

#include "metrics_http.hpp"

namespace pgw::proxy {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;
using namespace std::chrono_literals;

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);
constexpr std::string_view metrics_text = "# TYPE pgwarden_up gauge\npgwarden_up 1\n";
constexpr std::string_view prometheus_type = "text/plain; version=0.0.4; charset=utf-8";

// ---- a self-signed certificate for localhost / 127.0.0.1, made with OpenSSL's API and written as PEM ----

struct TestCertificate {
  std::filesystem::path dir, cert, key;
  std::unique_ptr<X509, decltype(&X509_free)> x509{nullptr, X509_free};

  TestCertificate() {
    dir = std::filesystem::temp_directory_path() / ("pgw-metrics-test-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    cert = dir / "metrics.crt";
    key = dir / "metrics.key";
    std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> pkey(
        EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", const_cast<char*>("P-256")), EVP_PKEY_free);
    if (!pkey) throw std::runtime_error("EC key generation failed");
    x509.reset(X509_new());
    X509* x = x509.get();
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), -60);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_set_pubkey(x, pkey.get());
    X509_NAME* name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("localhost"),
                               -1, -1, 0);
    X509_set_issuer_name(x, name);
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, x, x, nullptr, nullptr, 0);
    X509_EXTENSION* san =
        X509V3_EXT_conf_nid(nullptr, &ctx, NID_subject_alt_name, "DNS:localhost,IP:127.0.0.1");
    if (san == nullptr) throw std::runtime_error("subjectAltName failed");
    X509_add_ext(x, san, -1);
    X509_EXTENSION_free(san);
    if (X509_sign(x, pkey.get(), EVP_sha256()) == 0) throw std::runtime_error("signing failed");
    write(cert, [&](BIO* b) { return PEM_write_bio_X509(b, x); });
    write(key, [&](BIO* b) {
      return PEM_write_bio_PrivateKey(b, pkey.get(), nullptr, nullptr, 0, nullptr, nullptr);
    });
  }
  ~TestCertificate() {
    std::error_code ignored;
    std::filesystem::remove_all(dir, ignored);
  }
  TestCertificate(const TestCertificate&) = delete;
  TestCertificate& operator=(const TestCertificate&) = delete;

 private:
  template <class F>
  static void write(const std::filesystem::path& p, F f) {
    std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new_file(p.c_str(), "w"), BIO_free);
    if (!bio || f(bio.get()) != 1) throw std::runtime_error("cannot write " + p.string());
  }
};

// ---- the endpoint under test, on its own io_context and thread ----

class Endpoint {
 public:
  explicit Endpoint(tls::ContextPtr tls = nullptr, MetricsLimits limits = {}, bool throwing = false)
      : throwing_(throwing) {
    endpoint_ = std::make_unique<MetricsEndpoint>(
        io_, tcp::endpoint(asio::ip::address_v4::loopback(), 0), std::move(tls), [this] { return render(); },
        limits);
    endpoint_->start();
    thread_ = std::thread([this] { io_.run(); });
  }
  ~Endpoint() {
    endpoint_.reset();  // stop(): with nothing left to do, io_.run() returns
    thread_.join();
  }
  Endpoint(const Endpoint&) = delete;
  Endpoint& operator=(const Endpoint&) = delete;

  tcp::endpoint address() const { return endpoint_->local_endpoint(); }
  int renders() const { return renders_.load(); }
  void stop() { endpoint_->stop(); }

 private:
  asio::awaitable<std::string> render() {
    ++renders_;
    if (throwing_) throw std::runtime_error("counters are gone");
    co_return std::string(metrics_text);
  }

  asio::io_context io_;
  std::unique_ptr<MetricsEndpoint> endpoint_;
  std::thread thread_;
  std::atomic<int> renders_{0};
  bool throwing_;
};

// ---- a client: each call runs one coroutine on the client's own io_context, bounded in time ----

struct Response {
  error_code ec;
  unsigned status = 0;
  std::string content_type, content_length, allow, body;
  bool keep_alive = false;
};

template <class Stream>
asio::awaitable<error_code> send_bytes(Stream& s, std::string data) {
  auto [ec, n] = co_await asio::async_write(s, asio::buffer(data), use_tuple);
  co_return ec;
}

template <class Stream>
asio::awaitable<Response> read_response(Stream& s, beast::flat_buffer& buffer, bool head) {
  http::response_parser<http::string_body> parser;
  parser.skip(head);  // a response to HEAD has headers only, whatever its Content-Length says
  auto [ec, n] = co_await http::async_read(s, buffer, parser, use_tuple);
  Response r;
  r.ec = ec;
  if (ec) co_return r;
  const auto& m = parser.get();
  r.status = m.result_int();
  r.content_type = std::string(m[http::field::content_type]);
  r.content_length = std::string(m[http::field::content_length]);
  r.allow = std::string(m[http::field::allow]);
  r.body = m.body();
  r.keep_alive = m.keep_alive();
  co_return r;
}

class Client {
 public:
  // A client made with trust set speaks TLS, verifies the name "localhost" and offers ALPN http/1.1.
  explicit Client(tcp::endpoint to, X509* trust = nullptr) {
    tcp_.expires_after(5s);
    connect_error_ = run([&]() -> asio::awaitable<error_code> {
      auto [ec] = co_await tcp_.async_connect(to, use_tuple);
      co_return ec;
    });
    if (connect_error_ || trust == nullptr) return;
    X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx_.native_handle()), trust);
    ctx_.set_verify_mode(ssl::verify_peer);
    tls_ = std::make_unique<ssl::stream<beast::tcp_stream&>>(tcp_, ctx_);
    SSL_set1_host(tls_->native_handle(), "localhost");
    static constexpr unsigned char alpn[] = "\x08http/1.1";
    SSL_set_alpn_protos(tls_->native_handle(), alpn, sizeof alpn - 1);
    tcp_.expires_after(5s);
    handshake_error_ = run([&]() -> asio::awaitable<error_code> {
      auto [ec] = co_await tls_->async_handshake(ssl::stream_base::client, use_tuple);
      co_return ec;
    });
  }

  error_code connect_error() const { return connect_error_; }
  error_code handshake_error() const { return handshake_error_; }
  std::string alpn() const {
    const unsigned char* p = nullptr;
    unsigned int n = 0;
    SSL_get0_alpn_selected(tls_->native_handle(), &p, &n);
    return {reinterpret_cast<const char*>(p), n};
  }

  error_code send(std::string data) {
    tcp_.expires_after(5s);
    return run([&]() -> asio::awaitable<error_code> {
      if (tls_) co_return co_await send_bytes(*tls_, std::move(data));
      co_return co_await send_bytes(tcp_, std::move(data));
    });
  }

  Response read(bool head = false) {
    tcp_.expires_after(5s);
    return run([&]() -> asio::awaitable<Response> {
      if (tls_) co_return co_await read_response(*tls_, buffer_, head);
      co_return co_await read_response(tcp_, buffer_, head);
    });
  }

  Response request(std::string_view method, std::string_view target, std::string_view extra_headers = "") {
    std::string req = std::string(method) + " " + std::string(target) + " HTTP/1.1\r\nHost: 127.0.0.1\r\n" +
                      std::string(extra_headers) + "\r\n";
    if (auto ec = send(req)) {
      Response failed;
      failed.ec = ec;
      return failed;
    }
    return read(method == "HEAD");
  }

  // Reads until the server closes; the error that ended it (timeout when it did not close in time).
  error_code wait_closed(std::chrono::milliseconds within = 5000ms) {
    tcp_.expires_after(within);
    return run([&]() -> asio::awaitable<error_code> {
      std::array<char, 4096> scratch{};
      for (;;) {
        auto [ec, n] = tls_ ? co_await tls_->async_read_some(asio::buffer(scratch), use_tuple)
                            : co_await tcp_.async_read_some(asio::buffer(scratch), use_tuple);
        if (ec) co_return ec;
      }
    });
  }

 private:
  template <class F, class T = typename std::invoke_result_t<F&>::value_type>
  T run(F make) {
    std::optional<T> result;
    std::exception_ptr error;
    asio::co_spawn(io_, make(), [&](std::exception_ptr e, T value) {
      error = e;
      result = std::move(value);
    });
    io_.restart();
    io_.run_for(15s);
    if (error) std::rethrow_exception(error);
    if (!result) throw std::runtime_error("client operation did not finish in 15 s");
    return std::move(*result);
  }

  asio::io_context io_;
  beast::tcp_stream tcp_{io_};
  ssl::context ctx_{ssl::context::tls_client};
  std::unique_ptr<ssl::stream<beast::tcp_stream&>> tls_;
  beast::flat_buffer buffer_;
  error_code connect_error_, handshake_error_;
};

bool is_closed(const error_code& ec) {
  return ec == http::error::end_of_stream || ec == asio::error::eof || ec == asio::error::connection_reset ||
         ec == ssl::error::stream_truncated || ec == http::error::partial_message;
}

// ---- tests ----

TEST(MetricsEndpoint, GetServesTheRenderedTextAsPrometheusFormat) {
  Endpoint e;
  Client c(e.address());
  ASSERT_FALSE(c.connect_error()) << c.connect_error().message();
  Response r = c.request("GET", "/metrics");
  ASSERT_FALSE(r.ec) << r.ec.message();
  EXPECT_EQ(r.status, 200u);
  EXPECT_EQ(r.content_type, prometheus_type);
  EXPECT_EQ(r.body, metrics_text);
  EXPECT_EQ(r.content_length, std::to_string(metrics_text.size()));
  EXPECT_TRUE(r.keep_alive);
  EXPECT_EQ(e.renders(), 1);
  // A scraper's query string does not change the path.
  r = c.request("GET", "/metrics?name[]=pgwarden_up");
  EXPECT_EQ(r.status, 200u);
}

TEST(MetricsEndpoint, HeadHasTheHeadersAndNoBody) {
  Endpoint e;
  Client c(e.address());
  Response r = c.request("HEAD", "/metrics");
  ASSERT_FALSE(r.ec) << r.ec.message();
  EXPECT_EQ(r.status, 200u);
  EXPECT_EQ(r.content_type, prometheus_type);
  EXPECT_EQ(r.content_length, std::to_string(metrics_text.size()));
  EXPECT_TRUE(r.body.empty());
  // Had a body followed the HEAD response, this GET would read it as its status line.
  r = c.request("GET", "/metrics");
  ASSERT_FALSE(r.ec) << r.ec.message();
  EXPECT_EQ(r.status, 200u);
  EXPECT_EQ(r.body, metrics_text);
}

TEST(MetricsEndpoint, OtherPathsAreNotFound) {
  Endpoint e;
  Client c(e.address());
  for (std::string_view path : {"/", "/metric", "/metrics/", "/favicon.ico"}) {
    Response r = c.request("GET", path);
    ASSERT_FALSE(r.ec) << path << ": " << r.ec.message();
    EXPECT_EQ(r.status, 404u) << path;
    EXPECT_TRUE(r.keep_alive) << "a 404 keeps the connection";
  }
  Response r = c.request("HEAD", "/nothing");
  EXPECT_EQ(r.status, 404u);
  EXPECT_EQ(e.renders(), 0);
}

TEST(MetricsEndpoint, OtherMethodsAreNotAllowed) {
  Endpoint e;
  Client c(e.address());
  for (std::string_view method : {"POST", "PUT", "DELETE", "OPTIONS", "PATCH"}) {
    Response r = c.request(method, "/metrics");
    ASSERT_FALSE(r.ec) << method << ": " << r.ec.message();
    EXPECT_EQ(r.status, 405u) << method;
    EXPECT_EQ(r.allow, "GET, HEAD") << method;
  }
  EXPECT_EQ(e.renders(), 0);
}

TEST(MetricsEndpoint, KeepAliveServesSeveralRequestsOnOneConnectionAndClosesWhenAsked) {
  Endpoint e;
  Client c(e.address());
  for (int i = 0; i < 3; ++i) {
    Response r = c.request("GET", "/metrics");
    ASSERT_FALSE(r.ec) << i << ": " << r.ec.message();
    EXPECT_EQ(r.status, 200u);
    EXPECT_EQ(r.body, metrics_text);
  }
  Response r = c.request("GET", "/metrics", "Connection: close\r\n");
  ASSERT_FALSE(r.ec) << r.ec.message();
  EXPECT_EQ(r.status, 200u);
  EXPECT_FALSE(r.keep_alive);
  EXPECT_TRUE(is_closed(c.wait_closed())) << "the server closes after Connection: close";
  EXPECT_EQ(e.renders(), 4);
}

TEST(MetricsEndpoint, PipelinedRequestsAreAnsweredInOrder) {
  Endpoint e;
  Client c(e.address());
  ASSERT_FALSE(
      c.send("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\nGET /nope HTTP/1.1\r\nHost: x\r\n\r\n"
             "HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n"));
  EXPECT_EQ(c.read().status, 200u);
  EXPECT_EQ(c.read().status, 404u);
  Response r = c.read(true);
  EXPECT_EQ(r.status, 200u);
  EXPECT_TRUE(r.body.empty());
}

TEST(MetricsEndpoint, Http10ClosesUnlessKeepAliveIsAsked) {
  Endpoint e;
  {
    Client c(e.address());
    ASSERT_FALSE(c.send("GET /metrics HTTP/1.0\r\n\r\n"));
    Response r = c.read();
    EXPECT_EQ(r.status, 200u);
    EXPECT_EQ(r.body, metrics_text);
    EXPECT_TRUE(is_closed(c.wait_closed()));
  }
  Client c(e.address());
  ASSERT_FALSE(c.send("GET /metrics HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
  EXPECT_EQ(c.read().status, 200u);
  ASSERT_FALSE(c.send("GET /metrics HTTP/1.0\r\n\r\n"));
  EXPECT_EQ(c.read().status, 200u);
}

TEST(MetricsEndpoint, OversizedHeaderIsRefusedAndTheEndpointKeepsServing) {
  Endpoint e;
  {
    Client c(e.address());
    std::string big = "X-Filler: " + std::string(9000, 'a') + "\r\n";
    Response r = c.request("GET", "/metrics", big);
    // 431 when the answer gets through before the close; a reset is also a refusal (the rest of the header
    // is still unread when the server closes).
    if (!r.ec) {
      EXPECT_EQ(r.status, 431u);
      EXPECT_FALSE(r.keep_alive);
      EXPECT_TRUE(is_closed(c.wait_closed()));
    } else {
      EXPECT_TRUE(is_closed(r.ec)) << r.ec.message();
    }
  }
  {
    // Just under the limit is fine.
    Client c(e.address());
    Response r = c.request("GET", "/metrics", "X-Filler: " + std::string(7000, 'a') + "\r\n");
    ASSERT_FALSE(r.ec) << r.ec.message();
    EXPECT_EQ(r.status, 200u);
  }
  EXPECT_EQ(e.renders(), 1);
}

TEST(MetricsEndpoint, ARequestBodyIsRefused) {
  Endpoint e;
  Client c(e.address());
  Response r = c.request("GET", "/metrics", "Content-Length: 5\r\n");
  ASSERT_FALSE(r.ec) << r.ec.message();
  EXPECT_EQ(r.status, 413u);
  EXPECT_FALSE(r.keep_alive);
  EXPECT_TRUE(is_closed(c.wait_closed()));
  Client chunked(e.address());
  ASSERT_FALSE(chunked.send(
      "POST /metrics HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"));
  r = chunked.read();
  ASSERT_FALSE(r.ec) << r.ec.message();
  EXPECT_EQ(r.status, 413u);
  EXPECT_EQ(e.renders(), 0);
  // An empty body is no body.
  Client empty(e.address());
  r = empty.request("GET", "/metrics", "Content-Length: 0\r\n");
  EXPECT_EQ(r.status, 200u);
}

TEST(MetricsEndpoint, WhatIsNotHttpGetsBadRequest) {
  Endpoint e;
  Client c(e.address());
  ASSERT_FALSE(c.send("\x16\x03\x01 this is not HTTP\r\n\r\n"));
  Response r = c.read();
  if (!r.ec) {
    EXPECT_EQ(r.status, 400u);
  } else {
    EXPECT_TRUE(is_closed(r.ec)) << r.ec.message();
  }
  EXPECT_TRUE(is_closed(c.wait_closed()));
}

TEST(MetricsEndpoint, ASlowRequestIsCutOffByTheTimeout) {
  MetricsLimits limits;
  limits.request_timeout = 300ms;
  Endpoint e(nullptr, limits);
  Client c(e.address());
  ASSERT_FALSE(c.send("GET /metr"));
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_TRUE(is_closed(c.wait_closed(5000ms))) << "closed by the server, not by the client's own timeout";
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 3s);
  // An idle keep-alive connection is bounded the same way.
  Client idle(e.address());
  EXPECT_EQ(idle.request("GET", "/metrics").status, 200u);
  EXPECT_TRUE(is_closed(idle.wait_closed(5000ms)));
}

TEST(MetricsEndpoint, ConnectionsBeyondTheCapAreClosed) {
  MetricsLimits limits;
  limits.max_connections = 2;
  Endpoint e(nullptr, limits);
  auto a = std::make_unique<Client>(e.address());
  Client b(e.address());
  ASSERT_EQ(a->request("GET", "/metrics").status, 200u);
  ASSERT_EQ(b.request("GET", "/metrics").status, 200u);
  Client extra(e.address());
  EXPECT_TRUE(is_closed(extra.wait_closed())) << "a third connection is closed at once";
  EXPECT_EQ(b.request("GET", "/metrics").status, 200u) << "the open ones keep working";
  // Once one goes, a new one is served (the server notices the close when its read ends: retry briefly).
  a.reset();
  bool served = false;
  for (int i = 0; i < 50 && !served; ++i) {
    Client again(e.address());
    served = again.request("GET", "/metrics").status == 200u;
    if (!served) std::this_thread::sleep_for(50ms);
  }
  EXPECT_TRUE(served);
}

TEST(MetricsEndpoint, ARenderThatThrowsGives500) {
  Endpoint e(nullptr, {}, true);
  Client c(e.address());
  Response r = c.request("GET", "/metrics");
  ASSERT_FALSE(r.ec) << r.ec.message();
  EXPECT_EQ(r.status, 500u);
  EXPECT_EQ(c.request("GET", "/metrics").status, 500u) << "the connection survives";
}

TEST(MetricsEndpoint, StopClosesTheListenerAndOpenConnections) {
  Endpoint e;
  auto address = e.address();
  Client c(address);
  ASSERT_EQ(c.request("GET", "/metrics").status, 200u);
  e.stop();
  EXPECT_TRUE(is_closed(c.wait_closed())) << "an idle keep-alive connection is closed";
  Client late(address);
  EXPECT_TRUE(late.connect_error()) << "nothing listens after stop()";
}

TEST(MetricsEndpoint, ServesOverTls) {
  TestCertificate cert;
  auto made = make_metrics_tls_context(cert.cert, cert.key);
  ASSERT_TRUE(made.problems.empty()) << made.problems.front().message;
  ASSERT_TRUE(made.context);
  Endpoint e(made.context);
  Client c(e.address(), cert.x509.get());
  ASSERT_FALSE(c.connect_error()) << c.connect_error().message();
  ASSERT_FALSE(c.handshake_error()) << c.handshake_error().message();
  EXPECT_EQ(c.alpn(), "http/1.1");
  for (int i = 0; i < 2; ++i) {  // keep-alive over TLS too
    Response r = c.request("GET", "/metrics");
    ASSERT_FALSE(r.ec) << r.ec.message();
    EXPECT_EQ(r.status, 200u);
    EXPECT_EQ(r.content_type, prometheus_type);
    EXPECT_EQ(r.body, metrics_text);
  }
  EXPECT_EQ(c.request("HEAD", "/metrics").status, 200u);
  EXPECT_EQ(c.request("GET", "/other").status, 404u);
  // Plain HTTP to the TLS port gets no answer, only a close.
  Client plain(e.address());
  Response r = plain.request("GET", "/metrics");
  EXPECT_TRUE(r.ec) << "status " << r.status;
  EXPECT_EQ(e.renders(), 3);
}

TEST(MetricsEndpoint, TlsContextProblemsNameTheFile) {
  TestCertificate cert;
  auto missing = make_metrics_tls_context(cert.dir / "missing.crt", cert.key);
  ASSERT_EQ(missing.problems.size(), 1u);
  EXPECT_EQ(missing.problems[0].key, "cert");
  EXPECT_EQ(missing.problems[0].message,
            "cannot read certificate " + (cert.dir / "missing.crt").string() + ": No such file or directory");
  EXPECT_FALSE(missing.context);
  auto wrong_key = make_metrics_tls_context(cert.cert, cert.cert);
  ASSERT_EQ(wrong_key.problems.size(), 1u);
  EXPECT_EQ(wrong_key.problems[0].key, "key");
}

}  // namespace
}  // namespace pgw::proxy
