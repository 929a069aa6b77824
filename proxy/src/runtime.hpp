// An immutable snapshot of everything sessions read: config, TLS contexts, auth file. Replaced whole on
// reload.
#pragma once

#include <memory>
#include <vector>

#include "auth_store.hpp"
#include "pgw/config/config.hpp"
#include "pgw/tls/context.hpp"

namespace pgw::proxy {

struct Runtime {
  std::shared_ptr<const config::Config> config;
  tls::ContextPtr client_tls;  // null when client_tls.mode = disable
  tls::ContextPtr server_tls;  // null when server_tls.mode = disable
  tls::ServerLegPolicy server_policy;
  std::shared_ptr<const AuthStore> auth;
};

struct RuntimeResult {
  std::shared_ptr<const Runtime> runtime;  // null when diagnostics is not empty
  std::vector<config::Diagnostic> diagnostics;
};

// Loads every file the config names (certificates, keys, CAs, auth file); problems are reported at the
// position of the key that names the file, or inside the auth file.
RuntimeResult build_runtime(std::shared_ptr<const config::Config> config);

}  // namespace pgw::proxy
