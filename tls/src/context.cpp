// SSL_CTX construction from the [client_tls] and [server_tls] settings.
#include "pgw/tls/context.hpp"

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace pgw::tls {

namespace {

int tls_version(const std::string& name) {
  return name == "TLSv1.3" ? TLS1_3_VERSION : TLS1_2_VERSION;
}

// ALPN (RFC 7301) as PostgreSQL 17 does it: if the client offers protocols, "postgresql" must be one of them.
int select_alpn(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in,
                unsigned int inlen, void*) {
  for (unsigned int i = 0; i < inlen;) {
    unsigned int len = in[i];
    if (i + 1 + len > inlen) break;
    if (len == alpn_postgresql.size() && std::memcmp(in + i + 1, alpn_postgresql.data(), len) == 0) {
      *out = in + i + 1;
      *outlen = static_cast<unsigned char>(len);
      return SSL_TLSEXT_ERR_OK;
    }
    i += 1 + len;
  }
  return SSL_TLSEXT_ERR_ALERT_FATAL;  // no_application_protocol
}

ContextPtr new_context(const SSL_METHOD* method) {
  return ContextPtr(SSL_CTX_new(method), SSL_CTX_free);
}

// Shared settings: versions, ciphers, no renegotiation, no compression.
void common_settings(SSL_CTX* ctx, const std::string& min_version, const std::string& ciphers,
                     const std::string& ciphersuites, const std::string& section,
                     std::vector<ContextProblem>& problems) {
  SSL_CTX_set_min_proto_version(ctx, tls_version(min_version));
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION | SSL_OP_CIPHER_SERVER_PREFERENCE);
  // Partial writes and moving buffers suit non-blocking I/O.
  SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  SSL_CTX_clear_mode(ctx, SSL_MODE_AUTO_RETRY);
  // Read ahead: one read() takes a whole record (or several) instead of a header read and a body read.
  // Stream asks SSL_has_pending, which also sees read-ahead bytes, before it waits for the socket.
  SSL_CTX_set_read_ahead(ctx, 1);
  if (!ciphers.empty() && SSL_CTX_set_cipher_list(ctx, ciphers.c_str()) != 1) {
    problems.push_back(
        {section + ".ciphers", "no usable TLS 1.2 cipher in \"" + ciphers + "\": " + last_openssl_error()});
  }
  if (!ciphersuites.empty() && SSL_CTX_set_ciphersuites(ctx, ciphersuites.c_str()) != 1) {
    problems.push_back({section + ".ciphersuites",
                        "invalid TLS 1.3 cipher suites \"" + ciphersuites + "\": " + last_openssl_error()});
  }
}

// A file that cannot be opened gets the system's reason, not OpenSSL's layered error stack.
bool readable(const std::filesystem::path& p, const std::string& key, std::string_view what,
              std::vector<ContextProblem>& problems) {
  if (FILE* f = std::fopen(p.c_str(), "rb")) {
    std::fclose(f);
    return true;
  }
  problems.push_back(
      {key, "cannot read " + std::string(what) + " " + p.string() + ": " + std::strerror(errno)});
  return false;
}

void load_certificate_and_key(SSL_CTX* ctx, const std::filesystem::path& cert,
                              const std::filesystem::path& key, const std::string& section,
                              std::vector<ContextProblem>& problems) {
  if (!readable(cert, section + ".cert", "certificate", problems) ||
      !readable(key, section + ".key", "private key", problems)) {
    return;
  }
  if (SSL_CTX_use_certificate_chain_file(ctx, cert.c_str()) != 1) {
    problems.push_back(
        {section + ".cert", "cannot load certificate " + cert.string() + ": " + last_openssl_error()});
    return;
  }
  if (SSL_CTX_use_PrivateKey_file(ctx, key.c_str(), SSL_FILETYPE_PEM) != 1) {
    problems.push_back(
        {section + ".key", "cannot load private key " + key.string() + ": " + last_openssl_error()});
    return;
  }
  if (SSL_CTX_check_private_key(ctx) != 1) {
    problems.push_back(
        {section + ".key", "private key " + key.string() + " does not match certificate " + cert.string()});
  }
}

}  // namespace

std::string last_openssl_error() {
  std::string out;
  while (unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    // Keep the reason, not the library prefix noise: "error:0A000086:SSL routines::certificate verify
    // failed".
    const char* reason = ERR_reason_error_string(e);
    std::string text = reason != nullptr ? reason : buf;
    if (out.find(text) != std::string::npos) continue;
    if (!out.empty()) out += "; ";
    out += text;
  }
  return out.empty() ? "unknown OpenSSL error" : out;
}

ContextResult make_client_leg_context(const config::ClientTlsSettings& s) {
  ContextResult r;
  if (s.mode == config::TlsMode::disable) return r;
  ContextPtr ctx = new_context(TLS_server_method());
  if (!ctx) {
    r.problems.push_back({"client_tls", "cannot create a TLS context: " + last_openssl_error()});
    return r;
  }
  common_settings(ctx.get(), s.min_version, s.ciphers, s.ciphersuites, "client_tls", r.problems);
  // Thousands of clients sit idle, but not SSL_MODE_RELEASE_BUFFERS (record buffers, about 34 kB, given back
  // after every message: two allocations per transaction): the session gives them back once its client has
  // been idle for a second (Stream::release_buffers).
  load_certificate_and_key(ctx.get(), s.cert, s.key, "client_tls", r.problems);
  // No session resumption: libpq never resumes, and tickets cost a little per handshake.
  SSL_CTX_set_session_cache_mode(ctx.get(), SSL_SESS_CACHE_OFF);
  SSL_CTX_set_options(ctx.get(), SSL_OP_NO_TICKET);
  SSL_CTX_set_num_tickets(ctx.get(), 0);
  SSL_CTX_set_alpn_select_cb(ctx.get(), select_alpn, nullptr);
  if (!s.ca.empty() && readable(s.ca, "client_tls.ca", "CA file", r.problems)) {
    if (SSL_CTX_load_verify_locations(ctx.get(), s.ca.c_str(), nullptr) != 1) {
      r.problems.push_back(
          {"client_tls.ca", "cannot load CA " + s.ca.string() + ": " + last_openssl_error()});
    } else if (STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(s.ca.c_str())) {
      SSL_CTX_set_client_CA_list(ctx.get(), names);
    }
    bool required = s.mode == config::TlsMode::verify_ca || s.mode == config::TlsMode::verify_full;
    // With a CA but a lower mode, a certificate is asked for and verified if the client sends one.
    SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER | (required ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0),
                       nullptr);
  }
  if (r.problems.empty()) r.context = std::move(ctx);
  return r;
}

ContextResult make_server_leg_context(const config::ServerTlsSettings& s) {
  ContextResult r;
  if (s.mode == config::TlsMode::disable) return r;
  ContextPtr ctx = new_context(TLS_client_method());
  if (!ctx) {
    r.problems.push_back({"server_tls", "cannot create a TLS context: " + last_openssl_error()});
    return r;
  }
  common_settings(ctx.get(), s.min_version, s.ciphers, s.ciphersuites, "server_tls", r.problems);
  SSL_CTX_set_session_cache_mode(ctx.get(), SSL_SESS_CACHE_OFF);
  if (!s.ca.empty() && readable(s.ca, "server_tls.ca", "CA file", r.problems) &&
      SSL_CTX_load_verify_locations(ctx.get(), s.ca.c_str(), nullptr) != 1) {
    r.problems.push_back({"server_tls.ca", "cannot load CA " + s.ca.string() + ": " + last_openssl_error()});
  }
  if (!s.cert.empty()) load_certificate_and_key(ctx.get(), s.cert, s.key, "server_tls", r.problems);
  // PostgreSQL 17 servers check ALPN when it is offered; older ones ignore it.
  static const unsigned char protos[] = {10, 'p', 'o', 's', 't', 'g', 'r', 'e', 's', 'q', 'l'};
  SSL_CTX_set_alpn_protos(ctx.get(), protos, sizeof protos);
  if (r.problems.empty()) r.context = std::move(ctx);
  return r;
}

ServerLegPolicy server_leg_policy(const config::ServerTlsSettings& s) {
  using config::TlsMode;
  ServerLegPolicy p;
  p.send_ssl_request = s.mode != TlsMode::disable;
  p.try_plain_first = s.mode == TlsMode::allow;
  p.tls_required =
      s.mode == TlsMode::require || s.mode == TlsMode::verify_ca || s.mode == TlsMode::verify_full;
  // libpq verifies the chain whenever a root certificate is available, whatever the mode.
  p.verify_chain = s.mode == TlsMode::verify_ca || s.mode == TlsMode::verify_full || !s.ca.empty();
  p.verify_host = s.mode == TlsMode::verify_full;
  return p;
}

}  // namespace pgw::tls
