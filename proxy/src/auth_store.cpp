// Auth file entries classified as SCRAM, MD5 or plain; malformed SCRAM secrets are errors at their position.
#include "auth_store.hpp"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <fstream>
#include <iterator>
#include <sstream>

#include "pgw/config/auth_file.hpp"
#include "pgw/protocol/md5.hpp"

namespace pgw::proxy {

namespace {
std::string hmac_sha256(std::string_view key, std::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), out, &len);
  return std::string(reinterpret_cast<const char*>(out), len);
}
}  // namespace

std::string AuthStore::salt_key(const config::ClientTlsSettings& tls) {
  if (!tls.key.empty()) {
    std::ifstream in(tls.key, std::ios::binary);
    std::string key_bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::string derived =
        key_bytes.empty() ? std::string() : hmac_sha256(key_bytes, "pgwarden auth salt key 1");
    OPENSSL_cleanse(key_bytes.data(), key_bytes.size());  // the TLS private key, read once more
    if (!derived.empty()) return derived;
  }
  static const std::string process_key = [] {
    std::string k(32, '\0');
    RAND_bytes(reinterpret_cast<unsigned char*>(k.data()), static_cast<int>(k.size()));
    return k;
  }();
  return process_key;
}

AuthStore::LoadResult AuthStore::parse(std::string_view text, const std::filesystem::path& file_name,
                                       std::string_view salt_key) {
  auto parsed = config::parse_auth_file(text, file_name);
  LoadResult r;
  r.diagnostics = std::move(parsed.diagnostics);
  auto store = std::make_shared<AuthStore>();
  for (auto& e : parsed.entries) {
    // An empty password lets nobody in (as in PostgreSQL and PgBouncer): the user is one without a secret, so
    // a password login gets the same 28P01 as an unknown user; trust and cert logins do not look here.
    if (e.secret.empty()) {
      store->locked_.insert(e.user);  // and auth.query is not asked about it either
      continue;
    }
    std::string problem;
    auto secret = classify(e.user, e.secret, salt_key, problem);
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
                                                        std::string_view salt_key, std::string& problem) {
  if (secret.starts_with("SCRAM-SHA-256$")) {
    auto s = protocol::scram::parse_secret(secret);
    if (!s) {
      problem = "malformed SCRAM secret for user \"" + std::string(user) +
                "\": expected SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey> as in pg_authid, "
                "with at most " +
                std::to_string(protocol::scram::max_iterations) + " iterations";
      return std::nullopt;
    }
    return protocol::UserSecret(std::move(*s));
  }
  if (protocol::md5::is_secret(secret)) return protocol::UserSecret(protocol::Md5Secret{std::string(secret)});
  // A plain password: derive the SCRAM secret once, as PostgreSQL would store it, with a salt that stays the
  // same while the password does (keyed: a salt computed from the password alone would give it away).
  protocol::PlainSecret p;
  p.password = std::string(secret);
  std::string material(user);
  material.push_back('\0');
  material.append(secret);
  std::string salt = hmac_sha256(salt_key, material).substr(0, protocol::scram::salt_length);
  OPENSSL_cleanse(material.data(), material.size());
  if (protocol::scram::derive_secret(p.password, salt, protocol::scram::default_iterations, p.scram) !=
      protocol::Error::none) {
    problem = "cannot derive a SCRAM secret for user \"" + std::string(user) + "\"";
    return std::nullopt;
  }
  return protocol::UserSecret(std::move(p));
}

AuthStore::LoadResult AuthStore::load(const std::filesystem::path& file, std::string_view salt_key) {
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    LoadResult r;
    r.diagnostics.push_back({config::Position{file.string(), 1, 1}, "cannot read the auth file"});
    return r;
  }
  std::stringstream ss;
  ss << in.rdbuf();
  return parse(ss.str(), file, salt_key);
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
