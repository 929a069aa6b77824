// An immutable snapshot of everything sessions read: config, TLS contexts, auth file. Replaced whole on
// reload.
#pragma once

#include <memory>
#include <vector>

#include "auth_store.hpp"
#include "pgw/config/access.hpp"
#include "pgw/config/config.hpp"
#include "pgw/pool/pool.hpp"
#include "pgw/tls/context.hpp"

namespace pgw::proxy {

struct Runtime {
  std::shared_ptr<const config::Config> config;
  tls::ContextPtr client_tls;  // null when client_tls.mode = disable
  tls::ContextPtr server_tls;  // null when server_tls.mode = disable
  tls::ServerLegPolicy server_policy;
  std::shared_ptr<const AuthStore> auth;
  // [[access]] rules or the hba file's; null when neither is configured (every address allowed).
  std::shared_ptr<const std::vector<config::AccessRule>> access;
  std::vector<config::Cidr> proxy_protocol_from;  // load balancers that must send a PROXY header
  tls::ContextPtr metrics_tls;                    // /metrics over HTTPS; null = plain HTTP or off
  // The key behind the salts a client sees for users without a stored SCRAM secret (see AuthStore::salt_key).
  std::string auth_salt_key;
};

struct RuntimeResult {
  std::shared_ptr<const Runtime> runtime;  // null when diagnostics is not empty
  std::vector<config::Diagnostic> diagnostics;
};

// How pgwarden logs in to a database's server as server_user: the database's password wins, else that user's
// secret from the auth file (SCRAM passthrough keys are added by the session that learnt them).
pool::ConnectRequest connect_request(const Runtime& rt, const config::DatabaseSettings& db,
                                     const std::string& server_user);
pool::PoolLimits pool_limits(const config::PoolSettings& p);

// Loads every file the config names (certificates, keys, CAs, auth file); problems are reported at the
// position of the key that names the file, or inside the auth file.
RuntimeResult build_runtime(std::shared_ptr<const config::Config> config);

}  // namespace pgw::proxy
