// Statement digests (SHA-256 of text and parameter types, first 16 bytes) and the two statement maps.
#include "pgw/pool/statements.hpp"

#include <openssl/evp.h>

#include <cstring>

namespace pgw::pool {

std::uint64_t StatementKey::tag() const noexcept {
  std::uint64_t t = 0;
  std::memcpy(&t, digest.data(), sizeof t);
  return t == 0 ? 1 : t;
}

std::size_t StatementKeyHash::operator()(const StatementKey& k) const noexcept {
  std::size_t h = 0;
  std::memcpy(&h, k.digest.data(), sizeof h);
  return h;
}

std::shared_ptr<const PreparedStatement> make_statement(std::string_view query,
                                                        protocol::Bytes parameter_types,
                                                        std::int16_t num_parameter_types) {
  auto s = std::make_shared<PreparedStatement>();
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr);
  EVP_DigestUpdate(ctx, query.data(), query.size());
  std::uint8_t sep = 0;  // the text cannot contain a NUL, so it cannot run into the types
  EVP_DigestUpdate(ctx, &sep, 1);
  EVP_DigestUpdate(ctx, parameter_types.data(), parameter_types.size());
  EVP_DigestFinal_ex(ctx, md, &len);
  EVP_MD_CTX_free(ctx);
  std::memcpy(s->key.digest.data(), md, s->key.digest.size());
  static constexpr char hex[] = "0123456789abcdef";
  s->server_name = "pgw_";
  for (std::uint8_t b : s->key.digest) {
    s->server_name.push_back(hex[b >> 4]);
    s->server_name.push_back(hex[b & 15]);
  }
  s->query = std::string(query);
  s->num_parameter_types = num_parameter_types;
  s->parameter_types.assign(parameter_types.begin(), parameter_types.end());
  return s;
}

namespace {
// PostgreSQL compares statement names by their first NAMEDATALEN - 1 bytes.
constexpr std::size_t name_bytes = 63;
std::string_view name_key(std::string_view name) noexcept {
  return name.substr(0, name_bytes);
}
std::size_t charge(std::string_view key, const PreparedStatement& s) noexcept {
  return key.size() + s.query.size() + s.parameter_types.size() + 128;
}
}  // namespace

ClientStatements::Added ClientStatements::add(std::string_view name,
                                              std::shared_ptr<const PreparedStatement> statement) {
  const std::string_view key = name_key(name);
  const std::size_t cost = charge(key, *statement);
  auto it = names_.find(key);
  const std::size_t freed = it == names_.end() ? 0 : charge(key, *it->second);
  if (it == names_.end() && names_.size() >= max_) return Added::too_many;
  if (bytes_ - freed + cost > max_bytes_) return Added::too_large;
  bytes_ = bytes_ - freed + cost;
  if (it != names_.end()) {
    it->second = std::move(statement);
  } else {
    names_.emplace(std::string(key), std::move(statement));
  }
  return Added::ok;
}

const PreparedStatement* ClientStatements::find(std::string_view name) const noexcept {
  auto it = names_.find(name_key(name));
  return it == names_.end() ? nullptr : it->second.get();
}

void ClientStatements::remove(std::string_view name) {
  auto it = names_.find(name_key(name));
  if (it == names_.end()) return;
  bytes_ -= charge(it->first, *it->second);
  names_.erase(it);
}

bool ServerStatements::touch(const StatementKey& key) {
  auto it = index_.find(key);
  if (it == index_.end()) return false;
  lru_.splice(lru_.end(), lru_, it->second);
  return true;
}

std::optional<std::string> ServerStatements::add(const PreparedStatement& statement, std::size_t capacity) {
  if (touch(statement.key)) return std::nullopt;
  lru_.push_back({statement.key, statement.server_name});
  index_[statement.key] = std::prev(lru_.end());
  if (lru_.size() <= capacity) return std::nullopt;
  std::string evicted = std::move(lru_.front().server_name);
  index_.erase(lru_.front().key);
  lru_.pop_front();
  return evicted;
}

void ServerStatements::remove(const StatementKey& key) {
  auto it = index_.find(key);
  if (it == index_.end()) return;
  lru_.erase(it->second);
  index_.erase(it);
}

void ServerStatements::remove_tag(std::uint64_t tag) {
  for (auto it = lru_.begin(); it != lru_.end(); ++it) {
    if (it->key.tag() == tag) {
      index_.erase(it->key);
      lru_.erase(it);
      return;
    }
  }
}

}  // namespace pgw::pool
