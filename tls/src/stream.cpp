// Reactor-style reads and writes: try the non-blocking call first, wait for readiness only on would-block.
#include "pgw/tls/stream.hpp"

#include <poll.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <sys/socket.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/ssl/error.hpp>

#include "pgw/tls/context.hpp"

namespace pgw::tls {

namespace {

// Socket waits are awaited as operations: no coroutine frame per wait.
constexpr auto wait_token = asio::as_tuple(asio::deferred);

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored \
    "-Wnon-virtual-dtor"  // Boost's error_category has a protected non-virtual dtor
class TlsCategory final : public boost::system::error_category {
 public:
  const char* name() const noexcept override { return "pgwarden.tls"; }
  std::string message(int ev) const override {
    switch (static_cast<TlsError>(ev)) {
      case TlsError::handshake_failed:
        return "TLS handshake failed";
      case TlsError::verify_failed:
        return "certificate verification failed";
      case TlsError::protocol_error:
        return "TLS protocol error";
      case TlsError::no_alpn:
        return "direct TLS connection without ALPN \"postgresql\"";
      case TlsError::wait_readable:
        return "must wait until the socket is readable";
      case TlsError::wait_writable:
        return "must wait until the socket is writable";
    }
    return "TLS error";
  }
};
#pragma GCC diagnostic pop

std::optional<std::string> name_text(X509_NAME* name) {
  if (name == nullptr) return std::nullopt;
  BIO* bio = BIO_new(BIO_s_mem());
  X509_NAME_print_ex(bio, name, 0, XN_FLAG_RFC2253);
  char* data = nullptr;
  long len = BIO_get_mem_data(bio, &data);
  std::string out(data, static_cast<std::size_t>(len));
  BIO_free(bio);
  return out;
}

std::optional<std::string> common_name(X509_NAME* name) {
  if (name == nullptr) return std::nullopt;
  int idx = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
  if (idx < 0) return std::nullopt;
  ASN1_STRING* data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, idx));
  unsigned char* utf8 = nullptr;
  int len = ASN1_STRING_to_UTF8(&utf8, data);
  if (len < 0) return std::nullopt;
  std::string out(reinterpret_cast<char*>(utf8), static_cast<std::size_t>(len));
  OPENSSL_free(utf8);
  // A CN with an embedded NUL is a forgery attempt; never let it match a user name.
  if (out.find('\0') != std::string::npos) return std::nullopt;
  return out;
}

bool is_ip_literal(const std::string& host) {
  error_code ec;
  asio::ip::make_address(host, ec);
  return !ec;
}

}  // namespace

const boost::system::error_category& tls_category() noexcept {
  static const TlsCategory category;
  return category;
}

bool is_expected_disconnect(const error_code& ec) noexcept {
  return ec == asio::error::eof || ec == asio::error::connection_reset || ec == asio::error::broken_pipe ||
         ec == asio::error::operation_aborted || ec == asio::ssl::error::stream_truncated ||
         ec == asio::error::not_connected || ec == asio::error::bad_descriptor;
}

Stream::Stream(tcp::socket socket) : socket_(std::move(socket)) {
  error_code ec;
  socket_.non_blocking(true, ec);
  socket_.set_option(tcp::no_delay(true), ec);
  // A peer that vanished without a FIN or RST (a host powered off, a partition) is found by the kernel's
  // keepalive (sysctl net.ipv4.tcp_keepalive_*) instead of holding a session, and its locks, for ever.
  socket_.set_option(asio::socket_base::keep_alive(true), ec);
}

Stream::~Stream() {
  if (ssl_ != nullptr) SSL_free(ssl_);
}

asio::awaitable<std::pair<error_code, std::uint8_t>> Stream::peek_byte() {
  for (;;) {
    std::uint8_t b = 0;
    ssize_t n = ::recv(socket_.native_handle(), &b, 1, MSG_PEEK);
    if (n == 1) co_return std::pair{error_code{}, b};
    if (n == 0) co_return std::pair{error_code(asio::error::eof), std::uint8_t{0}};
    if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
      co_return std::pair{error_code(errno, boost::system::system_category()), std::uint8_t{0}};
    }
    auto [ec] = co_await socket_.async_wait(tcp::socket::wait_read, wait_token);
    if (ec) co_return std::pair{ec, std::uint8_t{0}};
  }
}

error_code Stream::ssl_failure(int ret, bool handshake) {
  int err = SSL_get_error(ssl_, ret);
  switch (err) {
    case SSL_ERROR_ZERO_RETURN:
      return asio::error::eof;
    case SSL_ERROR_SYSCALL:
      if (errno == ECONNRESET) return asio::error::connection_reset;
      if (errno == EPIPE) return asio::error::broken_pipe;
      // OpenSSL 3 reports an EOF without close_notify as SSL_ERROR_SSL with "unexpected eof"; older paths
      // here.
      error_detail_ = "connection closed during TLS";
      return handshake ? error_code(TlsError::handshake_failed)
                       : error_code(asio::ssl::error::stream_truncated);
    default: {
      unsigned long e = ERR_peek_error();
      if (ERR_GET_REASON(e) == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
        ERR_clear_error();
        error_detail_ = "connection closed without TLS close_notify";
        return handshake ? error_code(TlsError::handshake_failed)
                         : error_code(asio::ssl::error::stream_truncated);
      }
      error_detail_ = last_openssl_error();
      if (handshake) {
        long verify = SSL_get_verify_result(ssl_);
        if (verify != X509_V_OK) {
          error_detail_ = std::string("certificate verify failed: ") + X509_verify_cert_error_string(verify);
          return TlsError::verify_failed;
        }
        return TlsError::handshake_failed;
      }
      return TlsError::protocol_error;
    }
  }
}

asio::awaitable<error_code> Stream::drive_handshake() {
  for (;;) {
    ERR_clear_error();
    int ret = SSL_do_handshake(ssl_);
    if (ret == 1) co_return error_code{};
    int err = SSL_get_error(ssl_, ret);
    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
      auto wait = err == SSL_ERROR_WANT_READ ? tcp::socket::wait_read : tcp::socket::wait_write;
      auto [ec] = co_await socket_.async_wait(wait, wait_token);
      if (ec) co_return ec;
      continue;
    }
    co_return ssl_failure(ret, true);
  }
}

asio::awaitable<error_code> Stream::handshake_as_server(SSL_CTX* ctx) {
  ssl_ = SSL_new(ctx);
  if (ssl_ == nullptr || SSL_set_fd(ssl_, socket_.native_handle()) != 1) {
    error_detail_ = last_openssl_error();
    co_return error_code(TlsError::handshake_failed);
  }
  SSL_set_accept_state(ssl_);
  co_return co_await drive_handshake();
}

asio::awaitable<error_code> Stream::handshake_as_client(SSL_CTX* ctx, const ConnectOptions& options) {
  ssl_ = SSL_new(ctx);
  if (ssl_ == nullptr || SSL_set_fd(ssl_, socket_.native_handle()) != 1) {
    error_detail_ = last_openssl_error();
    co_return error_code(TlsError::handshake_failed);
  }
  bool ip = is_ip_literal(options.host);
  // SNI for host names only, as libpq (sslsni=1) does.
  if (!ip && !options.host.empty()) {
    // SSL_set_tlsext_host_name is a macro with a C cast; this is what it expands to.
    SSL_ctrl(ssl_, SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name,
             const_cast<char*>(options.host.c_str()));
  }
  SSL_set_verify(ssl_, options.verify_chain ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, nullptr);
  if (options.verify_host) {
    X509_VERIFY_PARAM* param = SSL_get0_param(ssl_);
    // Subject alternative names first; the CN only when there is no DNS name (RFC 6125, as libpq).
    int ok = ip ? X509_VERIFY_PARAM_set1_ip_asc(param, options.host.c_str())
                : X509_VERIFY_PARAM_set1_host(param, options.host.c_str(), options.host.size());
    if (ok != 1) {
      error_detail_ = "cannot verify host name \"" + options.host + "\"";
      co_return error_code(TlsError::verify_failed);
    }
  }
  SSL_set_connect_state(ssl_);
  co_return co_await drive_handshake();
}

std::pair<error_code, std::size_t> Stream::try_read(std::span<std::uint8_t> buffer) {
  if (ssl_ != nullptr) {
    ERR_clear_error();
    std::size_t n = 0;
    int ret = SSL_read_ex(ssl_, buffer.data(), buffer.size(), &n);
    if (ret == 1) return {error_code{}, n};
    int err = SSL_get_error(ssl_, ret);
    if (err == SSL_ERROR_WANT_READ) return {TlsError::wait_readable, 0};
    if (err == SSL_ERROR_WANT_WRITE) return {TlsError::wait_writable, 0};  // renegotiation-like
    return {ssl_failure(ret, false), 0};
  }
  error_code ec;
  std::size_t n = socket_.read_some(asio::buffer(buffer.data(), buffer.size()), ec);
  if (ec == asio::error::would_block) return {TlsError::wait_readable, 0};
  return {ec, n};
}

namespace {
tcp::socket::wait_type wait_for(const error_code& ec) {
  return ec == TlsError::wait_readable ? tcp::socket::wait_read : tcp::socket::wait_write;
}
}  // namespace

asio::awaitable<std::pair<error_code, std::size_t>> Stream::read_some(std::span<std::uint8_t> buffer) {
  for (;;) {
    auto [ec, n] = try_read(buffer);
    if (!ec) co_return std::pair{ec, n};
    if (!must_wait(ec)) co_return std::pair{ec, std::size_t{0}};
    auto [wec] = co_await socket_.async_wait(wait_for(ec), wait_token);
    if (wec) co_return std::pair{wec, std::size_t{0}};
  }
}

error_code Stream::write_now(std::span<const std::uint8_t>& data) {
  while (!data.empty()) {
    std::size_t n = 0;
    if (ssl_ != nullptr) {
      ERR_clear_error();
      int ret = SSL_write_ex(ssl_, data.data(), data.size(), &n);
      if (ret != 1) {
        int err = SSL_get_error(ssl_, ret);
        if (err == SSL_ERROR_WANT_WRITE || err == SSL_ERROR_WANT_READ) {
          write_unfinished_ = true;
          return err == SSL_ERROR_WANT_WRITE ? TlsError::wait_writable : TlsError::wait_readable;
        }
        return ssl_failure(ret, false);
      }
    } else {
      error_code ec;
      n = socket_.write_some(asio::buffer(data.data(), data.size()), ec);
      if (ec == asio::error::would_block) {
        write_unfinished_ = true;
        return TlsError::wait_writable;
      }
      if (ec) return ec;
    }
    data = data.subspan(n);
  }
  write_unfinished_ = false;
  return {};
}

asio::awaitable<error_code> Stream::write_all(std::span<const std::uint8_t> data) {
  for (;;) {
    error_code ec = write_now(data);
    if (!must_wait(ec)) co_return ec;
    auto [wec] = co_await socket_.async_wait(wait_for(ec), wait_token);
    if (wec) co_return wec;
  }
}

bool Stream::try_write_all(std::span<const std::uint8_t> data) noexcept {
  // Not after a write that stopped inside a TLS record or a message and was abandoned: these bytes would
  // splice into it.
  if (!socket_.is_open() || write_unfinished_) return false;
  if (ssl_ != nullptr && !SSL_is_init_finished(ssl_)) return false;
  try {
    const error_code ec = write_now(data);
    ERR_clear_error();
    return !ec;
  } catch (...) {  // a failure's detail could not be kept: the message did not go out either way
    return false;
  }
}

void Stream::release_buffers() noexcept {
  // Only between records: SSL_free_buffers refuses while a record is half read or half written, but before
  // OpenSSL 3.0.14 (CVE-2024-4741) not while a decrypted record is half read, hence SSL_has_pending; and not
  // while a handshake is under way.
  if (ssl_ == nullptr || SSL_is_init_finished(ssl_) != 1 || SSL_has_pending(ssl_) == 1) return;
  static_cast<void>(SSL_free_buffers(ssl_));
}

void Stream::close() noexcept {
  if (!socket_.is_open()) return;
  if (ssl_ != nullptr && SSL_is_init_finished(ssl_)) {
    ERR_clear_error();
    SSL_shutdown(ssl_);  // one attempt: queue close_notify, never wait for the peer's
    ERR_clear_error();
  }
  error_code ec;
  socket_.shutdown(tcp::socket::shutdown_both, ec);
  socket_.close(ec);
}

bool Stream::peer_shut_down() noexcept {
  if (!socket_.is_open()) return true;
  pollfd p{socket_.native_handle(), POLLRDHUP, 0};
  return ::poll(&p, 1, 0) == 1 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0;
}

void Stream::rebind(const asio::any_io_executor& executor) {
  error_code ec;
  auto protocol = socket_.local_endpoint(ec).protocol();
  int fd = socket_.release(ec);
  if (ec) return;
  tcp::socket moved(executor);
  moved.assign(protocol, fd, ec);
  moved.non_blocking(true, ec);
  socket_ = std::move(moved);
}

TlsInfo Stream::info() const {
  TlsInfo i;
  if (ssl_ == nullptr) return i;
  i.version = SSL_get_version(ssl_);
  i.cipher = SSL_get_cipher_name(ssl_);
  if (X509* peer = SSL_get0_peer_certificate(ssl_)) {
    i.peer_subject = name_text(X509_get_subject_name(peer));
    i.peer_common_name = common_name(X509_get_subject_name(peer));
  }
  return i;
}

std::string Stream::channel_binding_hash(bool own_certificate) const {
  if (ssl_ == nullptr) return {};
  X509* cert = own_certificate ? SSL_get_certificate(ssl_) : SSL_get0_peer_certificate(ssl_);
  if (cert == nullptr) return {};
  int md_nid = NID_undef;
  if (X509_get_signature_info(cert, &md_nid, nullptr, nullptr, nullptr) != 1) return {};
  // RFC 5929 4.1: MD5 and SHA-1 are replaced by SHA-256.
  const EVP_MD* md = (md_nid == NID_md5 || md_nid == NID_sha1) ? EVP_sha256() : EVP_get_digestbynid(md_nid);
  if (md == nullptr) return {};
  unsigned char hash[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (X509_digest(cert, md, hash, &len) != 1) return {};
  return std::string(reinterpret_cast<char*>(hash), len);
}

std::string_view Stream::alpn() const noexcept {
  if (ssl_ == nullptr) return {};
  const unsigned char* data = nullptr;
  unsigned int len = 0;
  SSL_get0_alpn_selected(ssl_, &data, &len);
  return {reinterpret_cast<const char*>(data), len};
}

std::string endpoint_text(const tcp::endpoint& ep) {
  auto a = ep.address();
  return (a.is_v6() ? "[" + a.to_string() + "]" : a.to_string()) + ":" + std::to_string(ep.port());
}

}  // namespace pgw::tls
