// Auth file entries classified as SCRAM, MD5 or plain; malformed SCRAM secrets are errors at their position.
#include "auth_store.hpp"

#include <openssl/rand.h>

#include <fstream>
#include <sstream>

#include "pgw/config/auth_file.hpp"
#include "pgw/protocol/md5.hpp"

namespace pgw::proxy {

AuthStore::LoadResult AuthStore::parse(std::string_view text, const std::filesystem::path& file_name) {
  auto parsed = config::parse_auth_file(text, file_name);
  LoadResult r;
  r.diagnostics = std::move(parsed.diagnostics);
  auto store = std::make_shared<AuthStore>();
  for (auto& e : parsed.entries) {
    std::string problem;
    auto secret = classify(e.user, e.secret, problem);
    if (!secret) {
      r.diagnostics.push_back({e.where, std::move(problem)});
      continue;
    }
    store->users_.emplace(e.user, std::move(*secret));
  }
  if (r.diagnostics.empty()) r.store = std::move(store);
  return r;
}

std::optional<protocol::UserSecret> AuthStore::classify(std::string_view user, std::string_view secret,
                                                        std::string& problem) {
  if (secret.starts_with("SCRAM-SHA-256$")) {
    auto s = protocol::scram::parse_secret(secret);
    if (!s) {
      problem = "malformed SCRAM secret for user \"" + std::string(user) +
                "\": expected SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey> as in pg_authid";
      return std::nullopt;
    }
    return protocol::UserSecret(std::move(*s));
  }
  if (protocol::md5::is_secret(secret)) return protocol::UserSecret(protocol::Md5Secret{std::string(secret)});
  // A plain password: derive the SCRAM secret once, with a fresh salt, as PostgreSQL would store it.
  protocol::PlainSecret p;
  p.password = std::string(secret);
  std::string salt(protocol::scram::salt_length, '\0');
  RAND_bytes(reinterpret_cast<unsigned char*>(salt.data()), static_cast<int>(salt.size()));
  if (protocol::scram::derive_secret(p.password, salt, protocol::scram::default_iterations, p.scram) !=
      protocol::Error::none) {
    problem = "cannot derive a SCRAM secret for user \"" + std::string(user) + "\"";
    return std::nullopt;
  }
  return protocol::UserSecret(std::move(p));
}

AuthStore::LoadResult AuthStore::load(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    LoadResult r;
    r.diagnostics.push_back({config::Position{file.string(), 1, 1}, "cannot read the auth file"});
    return r;
  }
  std::stringstream ss;
  ss << in.rdbuf();
  return parse(ss.str(), file);
}

const protocol::UserSecret* AuthStore::find(std::string_view user) const noexcept {
  auto it = users_.find(user);
  return it == users_.end() ? nullptr : &it->second;
}

std::vector<std::string> AuthStore::names() const {
  std::vector<std::string> out;
  out.reserve(users_.size());
  for (const auto& [name, secret] : users_)
    out.push_back(name);
  return out;
}

}  // namespace pgw::proxy
