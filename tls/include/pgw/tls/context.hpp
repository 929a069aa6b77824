// OpenSSL 3 contexts built from config: pgwarden as TLS server towards clients, as TLS client towards
// PostgreSQL.
#pragma once

#include <openssl/ssl.h>

#include <memory>
#include <string>
#include <vector>

#include "pgw/config/config.hpp"

namespace pgw::tls {

using ContextPtr = std::shared_ptr<SSL_CTX>;

// A problem with a TLS setting, tied to the config key that caused it (for FILE:LINE:COL messages).
struct ContextProblem {
  std::string key;  // "client_tls.cert"
  std::string message;
};

struct ContextResult {
  ContextPtr context;  // null when problems is not empty, or when the mode is "disable"
  std::vector<ContextProblem> problems;
};

// The ALPN protocol name PostgreSQL 17 uses for TLS (and requires for direct TLS).
inline constexpr std::string_view alpn_postgresql = "postgresql";

// Client leg (clients -> pgwarden): certificate and key, optional client-certificate CA, versions, ciphers,
// ALPN.
ContextResult make_client_leg_context(const config::ClientTlsSettings& settings);
// Server leg (pgwarden -> PostgreSQL): CA, optional client certificate for mutual TLS, versions, ciphers.
ContextResult make_server_leg_context(const config::ServerTlsSettings& settings);

// The last OpenSSL error on this thread as text, and the queue cleared.
std::string last_openssl_error();

// What a leg needs to know about how to verify the peer (libpq sslmode semantics, PostgreSQL docs 34.19.1).
struct ServerLegPolicy {
  bool send_ssl_request = true;  // disable: false
  bool tls_required = true;      // require/verify-*: true; allow/prefer: false
  bool try_plain_first = false;  // allow: plaintext first, TLS only if the server refuses it
  bool verify_chain = true;      // verify-ca/verify-full, or any mode when a CA is configured (as libpq)
  bool verify_host = true;       // verify-full
};
ServerLegPolicy server_leg_policy(const config::ServerTlsSettings& settings);

}  // namespace pgw::tls
