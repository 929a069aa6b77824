// The hash chain: HMAC-SHA-256 (with audit.hmac_key_file) or SHA-256 over each line's bytes before ,"hash":.
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include <memory>

#include "pgw/audit/log.hpp"

namespace pgw::audit {

namespace {

void append_hex(std::string& out, const Digest& d) {
  static constexpr char digits[] = "0123456789abcdef";
  const std::size_t at = out.size();
  out.resize(at + d.size() * 2);
  for (std::size_t i = 0; i < d.size(); ++i) {
    out[at + 2 * i] = digits[d[i] >> 4];
    out[at + 2 * i + 1] = digits[d[i] & 15];
  }
}

}  // namespace

std::string to_hex(const Digest& d) {
  std::string out;
  append_hex(out, d);
  return out;
}

std::optional<Digest> from_hex(std::string_view hex) {
  Digest d{};
  if (hex.size() != d.size() * 2) return std::nullopt;
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;  // upper case is not what the writer writes: a changed byte
  };
  for (std::size_t i = 0; i < d.size(); ++i) {
    const int hi = nibble(hex[2 * i]);
    const int lo = nibble(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    d[i] = static_cast<unsigned char>(hi * 16 + lo);
  }
  return d;
}

struct Hasher::Contexts {
  EVP_MD* md = nullptr;
  EVP_MD_CTX* md_ctx = nullptr;
  EVP_MAC* mac = nullptr;
  EVP_MAC_CTX* mac_ctx = nullptr;

  Contexts() = default;
  Contexts(const Contexts&) = delete;
  Contexts& operator=(const Contexts&) = delete;
  ~Contexts() {
    EVP_MAC_CTX_free(mac_ctx);
    EVP_MAC_free(mac);
    EVP_MD_CTX_free(md_ctx);
    EVP_MD_free(md);
  }

  static std::unique_ptr<Contexts> make(const std::string& key) {
    auto c = std::make_unique<Contexts>();
    if (key.empty()) {
      c->md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
      c->md_ctx = EVP_MD_CTX_new();
      if (c->md == nullptr || c->md_ctx == nullptr) return nullptr;
      return c;
    }
    c->mac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
    if (c->mac == nullptr) return nullptr;
    c->mac_ctx = EVP_MAC_CTX_new(c->mac);
    char digest[] = "SHA256";
    const OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
                                 OSSL_PARAM_construct_end()};
    // The key is set once; EVP_MAC_init without a key restarts with it.
    if (c->mac_ctx == nullptr || EVP_MAC_init(c->mac_ctx, reinterpret_cast<const unsigned char*>(key.data()),
                                              key.size(), params) != 1) {
      return nullptr;
    }
    return c;
  }
};

Hasher::Hasher(std::string key) : key_(std::move(key)), contexts_(Contexts::make(key_)) {}
Hasher::Hasher(const Hasher& other) : Hasher(other.key_) {}
Hasher& Hasher::operator=(const Hasher& other) {
  if (this != &other) *this = Hasher(other.key_);
  return *this;
}
Hasher::Hasher(Hasher&&) noexcept = default;
Hasher& Hasher::operator=(Hasher&&) noexcept = default;
Hasher::~Hasher() = default;

bool Hasher::hash(std::string_view bytes, Digest& out) const noexcept {
  if (!contexts_) return false;
  const auto* data = reinterpret_cast<const unsigned char*>(bytes.data());
  if (key_.empty()) {
    unsigned int n = 0;
    return EVP_DigestInit_ex2(contexts_->md_ctx, contexts_->md, nullptr) == 1 &&
           EVP_DigestUpdate(contexts_->md_ctx, data, bytes.size()) == 1 &&
           EVP_DigestFinal_ex(contexts_->md_ctx, out.data(), &n) == 1 && n == out.size();
  }
  std::size_t len = 0;
  return EVP_MAC_init(contexts_->mac_ctx, nullptr, 0, nullptr) == 1 &&
         EVP_MAC_update(contexts_->mac_ctx, data, bytes.size()) == 1 &&
         EVP_MAC_final(contexts_->mac_ctx, out.data(), &len, out.size()) == 1 && len == out.size();
}

Chain::Chain(Hasher hasher, std::uint64_t last_seq, Digest last_hash)
    : hasher_(std::move(hasher)), last_seq_(last_seq), last_hash_(last_hash) {}

bool Chain::seal_in_place(std::string& body, std::uint64_t seq) {
  const std::size_t size = body.size();
  body.reserve(size + kSealBytes);
  body += ",\"prev\":\"";
  append_hex(body, last_hash_);
  body += '"';
  Digest h{};
  if (!hasher_.hash(body, h)) {
    body.resize(size);
    return false;
  }
  body += ",\"hash\":\"";
  append_hex(body, h);
  body += "\"}\n";
  last_seq_ = seq;
  last_hash_ = h;
  return true;
}

std::optional<std::string> Chain::seal(std::string body, std::uint64_t seq) {
  if (!seal_in_place(body, seq)) return std::nullopt;
  return body;
}

std::string checkpoint_line(std::chrono::system_clock::time_point ts, std::string_view instance,
                            std::uint64_t last_seq, const Digest& last_hash,
                            std::optional<std::uint64_t> kept_from) {
  std::string out = "{\"ts\":";
  out += '"';
  append_ts(out, ts);
  out += '"';
  out += ",\"seq\":" + std::to_string(last_seq) + ",\"event\":\"checkpoint\",\"instance\":";
  append_json_string(out, instance);
  if (kept_from) out += ",\"kept_from\":" + std::to_string(*kept_from);
  out += ",\"hash\":\"" + to_hex(last_hash) + "\"}\n";
  return out;
}

}  // namespace pgw::audit
