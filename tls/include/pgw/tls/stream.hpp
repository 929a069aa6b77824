// A TCP connection that may be upgraded to TLS in an explicit step; reactor-style I/O on a non-blocking
// socket.
#pragma once

#include <openssl/ssl.h>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/system/error_code.hpp>

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <utility>

// Coroutine frames must come from one allocator in every translation unit (the CMake target pgw_asio sets
// it).
#ifndef BOOST_ASIO_DISABLE_AWAITABLE_FRAME_RECYCLING
#error "build with BOOST_ASIO_DISABLE_AWAITABLE_FRAME_RECYCLING (link pgw_asio)"
#endif

namespace pgw::tls {

namespace asio = boost::asio;
using boost::system::error_code;
using tcp = asio::ip::tcp;

// "10.0.0.5:5432", "[::1]:5432": an address as logs and audit records show it.
std::string endpoint_text(const tcp::endpoint& ep);

// Why a TLS operation failed; details are in Stream::error_detail().
enum class TlsError {
  handshake_failed = 1,  // the peer or OpenSSL broke off the handshake
  verify_failed,         // the peer's certificate does not verify (chain or name)
  protocol_error,        // TLS error after the handshake
  no_alpn,               // direct TLS without ALPN "postgresql"
  wait_readable,         // not a failure: try_read() / write_now() go on once the socket is readable
  wait_writable,         // ... once it is writable
};
const boost::system::error_category& tls_category() noexcept;
inline error_code make_error_code(TlsError e) noexcept {
  return {static_cast<int>(e), tls_category()};
}

// What the audit log and the logs say about a TLS connection.
struct TlsInfo {
  std::string version;                          // "TLSv1.3"
  std::string cipher;                           // "TLS_AES_256_GCM_SHA384"
  std::optional<std::string> peer_subject;      // RFC 2253 subject of the peer certificate, if any
  std::optional<std::string> peer_common_name;  // its CN, if any
};

struct ConnectOptions {
  std::string host;  // SNI (names only, like libpq's sslsni) and the name or IP verified
  bool verify_chain = true;
  bool verify_host = true;
};

class Stream {
 public:
  explicit Stream(tcp::socket socket);
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
  ~Stream();

  tcp::socket& socket() noexcept { return socket_; }
  bool is_tls() const noexcept { return ssl_ != nullptr; }
  SSL* ssl() const noexcept { return ssl_; }
  bool is_open() const noexcept { return socket_.is_open(); }

  // Waits until the socket is readable and returns its first byte without consuming it (direct TLS
  // detection).
  asio::awaitable<std::pair<error_code, std::uint8_t>> peek_byte();

  // TLS handshakes. The socket must have no bytes buffered by us: OpenSSL reads the socket itself.
  asio::awaitable<error_code> handshake_as_server(SSL_CTX* ctx);
  asio::awaitable<error_code> handshake_as_client(SSL_CTX* ctx, const ConnectOptions& options);

  // Reads what is available (at least one byte); eof as asio::error::eof.
  asio::awaitable<std::pair<error_code, std::size_t>> read_some(std::span<std::uint8_t> buffer);
  // Non-blocking read of what is available now: TlsError::wait_readable when nothing is (wait_writable: TLS
  // must write first).
  std::pair<error_code, std::size_t> try_read(std::span<std::uint8_t> buffer);
  asio::awaitable<error_code> write_all(std::span<const std::uint8_t> data);
  // Writes what the socket takes now, advancing `data`. When some is left: TlsError::wait_writable, or
  // wait_readable (TLS must read first); write_all() then goes on with the same `data`.
  error_code write_now(std::span<const std::uint8_t>& data);
  // try_read() and write_now() say "not now, wait" rather than failing. The hot paths call them first, and
  // the coroutines (a frame each) only when they must wait.
  static bool must_wait(const error_code& ec) noexcept {
    const int v = ec.value();  // 0 on the hot path: no category lookup
    return (v == static_cast<int>(TlsError::wait_readable) ||
            v == static_cast<int>(TlsError::wait_writable)) &&
           ec.category() == tls_category();
  }
  // The peer shut its side down (a FIN or a reset came), whatever it sent before; asks the socket, reads
  // nothing.
  bool peer_shut_down() noexcept;
  // TLS holds bytes (decrypted, or read and not yet decrypted) that a read returns without the socket.
  bool has_pending() const noexcept { return ssl_ != nullptr && SSL_has_pending(ssl_) == 1; }
  // When !has_pending(): completes once the socket is readable, without holding a buffer (idle connections
  // hold no I/O memory). An operation, not a coroutine, so an idle connection's wait allocates no frame.
  template <typename CompletionToken>
  auto async_wait_readable(CompletionToken&& token) {
    return socket_.async_wait(tcp::socket::wait_read, std::forward<CompletionToken>(token));
  }
  // Gives OpenSSL's record buffers (about 34 kB) back to the heap; the next read or write takes new ones.
  // Does nothing during a handshake or while TLS holds bytes either way. Client connections keep theirs
  // while they are busy (no allocation per message) and give them back once idle.
  void release_buffers() noexcept;
  // One non-blocking attempt to send a small message (a final ErrorResponse); true if all of it went out.
  bool try_write_all(std::span<const std::uint8_t> data) noexcept;

  // Sends close_notify if TLS (without waiting), then closes the socket. Pending operations end with
  // operation_aborted.
  void close() noexcept;

  // Moves the connection to another io_context (a server connection handed to a client on another thread).
  // Only while no operation is pending.
  void rebind(const asio::any_io_executor& executor);

  TlsInfo info() const;
  // tls-server-end-point channel binding data (RFC 5929): the hash of our certificate (as server) or of the
  // peer's (as client); empty when not TLS.
  std::string channel_binding_hash(bool own_certificate) const;
  // The ALPN protocol negotiated, empty if none.
  std::string_view alpn() const noexcept;
  const std::string& error_detail() const noexcept { return error_detail_; }

 private:
  asio::awaitable<error_code> drive_handshake();
  error_code ssl_failure(int ret, bool handshake);

  tcp::socket socket_;
  SSL* ssl_ = nullptr;
  // A write stopped short (inside a TLS record, or inside a message) and was not completed: whatever follows
  // on this stream would splice into it, so try_write_all() sends nothing.
  bool write_unfinished_ = false;
  std::string error_detail_;
};

// Expected disconnects (peer closed, reset, broken pipe, TLS truncation): logged at debug, not error.
bool is_expected_disconnect(const error_code& ec) noexcept;

}  // namespace pgw::tls

template <>
struct boost::system::is_error_code_enum<pgw::tls::TlsError> : std::true_type {};
