// Stream's readiness wait and reads, as the relay uses them (wait only when TLS holds nothing, then read what
// is there): no byte, end of stream or reset is ever missed, plain and under TLS, and a wait can be cancelled
// and closed. Kept as the guard for any change to how Stream waits (a wait that skips epoll's re-arm was
// tried and failed the end-of-stream case: the bytes and the FIN came in one event, a short read took both).
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <gtest/gtest.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <array>
#include <chrono>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "pgw/tls/stream.hpp"

namespace {

namespace asio = boost::asio;
using boost::system::error_code;
using pgw::tls::Stream;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;

constexpr auto wait_token = asio::as_tuple(asio::deferred);
constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

struct Pair {
  tcp::socket ours;
  tcp::socket peer;
};

Pair connected_pair(asio::io_context& io) {
  tcp::acceptor acceptor(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  tcp::socket peer(io);
  peer.connect(acceptor.local_endpoint());
  tcp::socket ours = acceptor.accept();
  return {std::move(ours), std::move(peer)};
}

// Runs `body` to its end, or fails the test after `limit` (a missed wakeup shows as a hang).
template <typename Body>
void run_bounded(asio::io_context& io, Body body, std::chrono::seconds limit = 10s) {
  bool finished = false;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        co_await body();
        finished = true;
      },
      [](const std::exception_ptr& e) {
        if (e) std::rethrow_exception(e);
      });
  io.run_for(limit);
  EXPECT_TRUE(finished) << "did not finish within " << limit.count() << " s";
}

asio::awaitable<void> sleep_for(std::chrono::milliseconds d) {
  asio::steady_timer t(co_await asio::this_coro::executor, d);
  co_await t.async_wait(use_tuple);
}

// One read as the relay makes it: a readiness wait only when TLS holds nothing, again after a wakeup that
// found nothing. Some bytes, or how the stream ended.
asio::awaitable<std::pair<error_code, std::size_t>> read_next(Stream& s, std::span<std::uint8_t> buf) {
  for (;;) {
    if (!s.has_pending()) {
      auto [ec] = co_await s.async_wait_readable(wait_token);
      if (ec) co_return std::pair{ec, std::size_t{0}};
    }
    auto [ec, n] = s.try_read(buf);
    if (!Stream::must_wait(ec)) co_return std::pair{ec, n};
  }
}

// Reads until `want` bytes came.
asio::awaitable<std::string> read_exactly(Stream& s, std::size_t want, std::size_t chunk = 4096) {
  std::string got;
  std::vector<std::uint8_t> buf(chunk);
  while (got.size() < want) {
    auto [ec, n] = co_await read_next(s, buf);
    if (ec) throw boost::system::system_error(ec);
    got.append(reinterpret_cast<const char*>(buf.data()), n);
  }
  co_return got;
}

TEST(StreamWait, BytesAfterAReadWakeTheNextWait) {
  asio::io_context io(1);
  auto [ours, peer] = connected_pair(io);
  Stream s(std::move(ours));
  run_bounded(io, [&]() -> asio::awaitable<void> {
    for (int round = 0; round < 50; ++round) {
      const std::string msg = "message " + std::to_string(round);
      asio::write(peer, asio::buffer(msg));
      EXPECT_EQ(co_await read_exactly(s, msg.size()), msg);
      // The next wait is queued before the bytes come.
      asio::co_spawn(
          co_await asio::this_coro::executor,
          [&peer, round]() -> asio::awaitable<void> {
            co_await sleep_for(std::chrono::milliseconds(round % 3));
            asio::write(peer, asio::buffer(std::string("x")));
          },
          asio::detached);
      EXPECT_EQ(co_await read_exactly(s, 1), "x");
    }
  });
}

TEST(StreamWait, BytesLeftByAReadThatFilledItsBufferAreNotMissed) {
  asio::io_context io(1);
  auto [ours, peer] = connected_pair(io);
  Stream s(std::move(ours));
  run_bounded(
      io,
      [&]() -> asio::awaitable<void> {
        // Two waits that the socket's events complete first.
        asio::write(peer, asio::buffer(std::string("a")));
        EXPECT_EQ(co_await read_exactly(s, 1), "a");
        asio::write(peer, asio::buffer(std::string("b")));
        EXPECT_EQ(co_await read_exactly(s, 1), "b");
        // 100 bytes at once, read 10 at a time, each read filling its buffer: the socket is never empty,
        // and a wait that relied on the next byte's edge would sleep with 90 bytes unread.
        const std::string hundred(100, 'z');
        asio::write(peer, asio::buffer(hundred));
        co_await sleep_for(20ms);
        std::string got;
        std::vector<std::uint8_t> buf(10);
        while (got.size() < hundred.size()) {
          auto [wec] = co_await s.async_wait_readable(wait_token);
          EXPECT_FALSE(wec);
          auto [ec, n] = s.try_read(buf);
          EXPECT_FALSE(ec) << ec.message();
          if (ec) co_return;
          EXPECT_EQ(n, buf.size());
          got.append(reinterpret_cast<const char*>(buf.data()), n);
        }
        EXPECT_EQ(got, hundred);
      },
      5s);
}

TEST(StreamWait, AWaitIsCancelledAndClosed) {
  asio::io_context io(1);
  auto [ours, peer] = connected_pair(io);
  Stream s(std::move(ours));
  asio::cancellation_signal stop;  // outlives the body: its emitter may run after a failed body ends
  run_bounded(io, [&]() -> asio::awaitable<void> {
    // Two waits that the socket's events complete first.
    for (const char* byte : {"a", "b"}) {
      asio::write(peer, asio::buffer(std::string(byte)));
      EXPECT_EQ(co_await read_exactly(s, 1), byte);
    }
    // A wait may complete without cause (an event for a byte read before the event was handled); the socket
    // then has nothing to read, and the wait is made again.
    auto wait_until_error = [&s](auto make_token) -> asio::awaitable<error_code> {
      for (int attempt = 0; attempt < 3; ++attempt) {
        auto [ec] = co_await s.async_wait_readable(make_token());
        if (ec) co_return ec;
        std::array<std::uint8_t, 8> buf{};
        auto [rec, n] = s.try_read(buf);
        EXPECT_TRUE(Stream::must_wait(rec)) << "woke with " << n << " bytes that nobody sent";
      }
      co_return error_code{};
    };
    // Cancelled through its slot, as the relay stops a pump.
    asio::co_spawn(
        co_await asio::this_coro::executor,
        [&stop]() -> asio::awaitable<void> {
          co_await sleep_for(10ms);
          stop.emit(asio::cancellation_type::terminal);
        },
        asio::detached);
    EXPECT_EQ(
        co_await wait_until_error([&stop] { return asio::bind_cancellation_slot(stop.slot(), use_tuple); }),
        asio::error::operation_aborted);
    // And ended by close().
    asio::co_spawn(
        co_await asio::this_coro::executor,
        [&s]() -> asio::awaitable<void> {
          co_await sleep_for(10ms);
          s.close();
        },
        asio::detached);
    EXPECT_EQ(co_await wait_until_error([] { return use_tuple; }), asio::error::operation_aborted);
  });
}

// Reads until the stream ends; the bytes and how it ended.
asio::awaitable<std::pair<std::string, error_code>> read_to_end(Stream& s) {
  std::string got;
  std::array<std::uint8_t, 4096> buf{};
  for (;;) {
    auto [ec, n] = co_await read_next(s, buf);
    if (ec) co_return std::pair{got, ec};
    got.append(reinterpret_cast<const char*>(buf.data()), n);
  }
}

// The peer's last bytes and its end (`end_peer`) arrive together, after a wait was queued: one read may take
// both. Returns what was read and how the stream ended, or fails the test if the end is never seen.
std::pair<std::string, error_code> last_bytes_then(void (*end_peer)(tcp::socket&)) {
  asio::io_context io(1);
  auto [ours, peer] = connected_pair(io);
  Stream s(std::move(ours));
  std::pair<std::string, error_code> result;
  run_bounded(
      io,
      [&]() -> asio::awaitable<void> {
        for (const char* byte : {"a", "b"}) {
          asio::write(peer, asio::buffer(std::string(byte)));
          EXPECT_EQ(co_await read_exactly(s, 1), byte);
        }
        asio::co_spawn(
            co_await asio::this_coro::executor,
            [&peer, end_peer]() -> asio::awaitable<void> {
              co_await sleep_for(5ms);
              asio::write(peer, asio::buffer(std::string("last")));
              end_peer(peer);
            },
            asio::detached);
        result = co_await read_to_end(s);
      },
      5s);
  return result;
}

TEST(StreamWait, TheEndAfterTheLastBytesIsSeen) {
  auto [got, ec] = last_bytes_then([](tcp::socket& peer) { peer.shutdown(tcp::socket::shutdown_send); });
  EXPECT_EQ(got, "last");
  EXPECT_EQ(ec, asio::error::eof);
}

// A reset instead of a FIN: the peer closes with SO_LINGER 0.
TEST(StreamWait, AResetAfterTheLastBytesIsSeen) {
  auto [got, ec] = last_bytes_then([](tcp::socket& peer) {
    peer.set_option(asio::socket_base::linger(true, 0));
    peer.close();
  });
  EXPECT_TRUE(got == "last" || got.empty()) << got;
  EXPECT_TRUE(ec == asio::error::connection_reset || ec == asio::error::eof) << ec.message();
}

// A throwaway self-signed certificate, made in memory.
struct TlsContexts {
  std::shared_ptr<SSL_CTX> server{SSL_CTX_new(TLS_server_method()), SSL_CTX_free};
  std::shared_ptr<SSL_CTX> client{SSL_CTX_new(TLS_client_method()), SSL_CTX_free};
  TlsContexts() {
    EVP_PKEY* key = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256");
    X509* cert = X509_new();
    ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
    X509_gmtime_adj(X509_getm_notBefore(cert), 0);
    X509_gmtime_adj(X509_getm_notAfter(cert), 3600);
    X509_set_pubkey(cert, key);
    X509_NAME* name = X509_get_subject_name(cert);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("localhost"),
                               -1, -1, 0);
    X509_set_issuer_name(cert, name);
    X509_sign(cert, key, EVP_sha256());
    SSL_CTX_use_certificate(server.get(), cert);
    SSL_CTX_use_PrivateKey(server.get(), key);
    // As pgwarden's own contexts: read-ahead, so that one socket read takes what is there.
    SSL_CTX_set_read_ahead(server.get(), 1);
    SSL_CTX_set_read_ahead(client.get(), 1);
    X509_free(cert);
    EVP_PKEY_free(key);
  }
};

TEST(StreamWait, UnderTlsNothingIsMissed) {
  asio::io_context io(1);
  auto [ours, peer] = connected_pair(io);
  TlsContexts ctx;
  Stream server(std::move(ours));
  Stream client(std::move(peer));
  run_bounded(io, [&]() -> asio::awaitable<void> {
    std::optional<error_code> client_done;
    asio::co_spawn(
        co_await asio::this_coro::executor,
        [&]() -> asio::awaitable<void> {
          // A named object: GCC 12 mishandles a braced temporary's lifetime across co_await.
          const pgw::tls::ConnectOptions options{
              .host = "localhost", .verify_chain = false, .verify_host = false};
          client_done = co_await client.handshake_as_client(ctx.client.get(), options);
        },
        asio::detached);
    EXPECT_FALSE(co_await server.handshake_as_server(ctx.server.get()));
    while (!client_done)
      co_await sleep_for(1ms);
    EXPECT_FALSE(*client_done);
    if (*client_done) co_return;

    for (int round = 0; round < 30; ++round) {
      const std::string msg = "query " + std::to_string(round);
      EXPECT_FALSE(
          co_await client.write_all({reinterpret_cast<const std::uint8_t*>(msg.data()), msg.size()}));
      EXPECT_EQ(co_await read_exactly(server, msg.size()), msg);
    }
    // 1 MB in one go: OpenSSL's reads fill their buffer while more is queued, and nothing is missed.
    const std::string big(1 << 20, 'q');
    asio::co_spawn(
        co_await asio::this_coro::executor,
        [&]() -> asio::awaitable<void> {
          co_await client.write_all({reinterpret_cast<const std::uint8_t*>(big.data()), big.size()});
        },
        asio::detached);
    EXPECT_EQ(co_await read_exactly(server, big.size(), 1000), big);
  });
}

}  // namespace
