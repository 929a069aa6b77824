// Users and their secrets from the auth file, classified once at load (plain passwords get a derived SCRAM
// secret).
#pragma once

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "pgw/config/config.hpp"
#include "pgw/protocol/client_auth.hpp"

namespace pgw::proxy {

class AuthStore {
 public:
  struct LoadResult {
    std::shared_ptr<const AuthStore> store;  // null when there are diagnostics
    std::vector<config::Diagnostic> diagnostics;
  };
  static LoadResult load(const std::filesystem::path& file, std::string_view salt_key);
  static LoadResult parse(std::string_view text, const std::filesystem::path& file_name,
                          std::string_view salt_key);

  // One secret as the auth file or auth_query gives it: "SCRAM-SHA-256$...", "md5..." or a plain password
  // (whose SCRAM secret gets a salt derived from salt_key, the user and the password).
  static std::optional<protocol::UserSecret> classify(std::string_view user, std::string_view secret,
                                                      std::string_view salt_key, std::string& problem);

  // The key behind the salts a client is shown for a plain password and for an unknown user (the mock
  // exchange). A stored SCRAM secret's salt never changes; these must not either, across reloads, restarts
  // and the instances of a fleet, or comparing them would tell which users exist. Derived from client_tls.key
  // (the same in every instance, and secret); without one, random for the life of the process.
  static std::string salt_key(const config::ClientTlsSettings& tls);

  const protocol::UserSecret* find(std::string_view user) const noexcept;
  // Listed with an empty password: no password logs in as this user.
  bool locked(std::string_view user) const noexcept { return locked_.find(user) != locked_.end(); }
  std::size_t size() const noexcept { return users_.size(); }
  std::vector<std::string> names() const;

 private:
  struct Hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
  };
  std::unordered_map<std::string, protocol::UserSecret, Hash, std::equal_to<>> users_;
  std::unordered_set<std::string, Hash, std::equal_to<>> locked_;
};

}  // namespace pgw::proxy
