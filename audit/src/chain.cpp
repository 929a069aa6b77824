// The hash chain: HMAC-SHA-256 (with audit.hmac_key_file) or SHA-256 over each line's bytes before ,"hash":.
#include <openssl/evp.h>

#include "pgw/audit/log.hpp"

namespace pgw::audit {

std::string to_hex(const Digest& d) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out(d.size() * 2, '0');
  for (std::size_t i = 0; i < d.size(); ++i) {
    out[2 * i] = digits[d[i] >> 4];
    out[2 * i + 1] = digits[d[i] & 15];
  }
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

Hasher::Hasher(std::string key) : key_(std::move(key)) {}

bool Hasher::hash(std::string_view bytes, Digest& out) const noexcept {
  std::size_t len = 0;
  if (key_.empty()) {
    unsigned int n = 0;
    return EVP_Digest(bytes.data(), bytes.size(), out.data(), &n, EVP_sha256(), nullptr) == 1 &&
           n == out.size();
  }
  return EVP_Q_mac(nullptr, "HMAC", nullptr, "SHA256", nullptr, key_.data(), key_.size(),
                   reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(), out.data(), out.size(),
                   &len) != nullptr &&
         len == out.size();
}

Chain::Chain(Hasher hasher, std::uint64_t last_seq, Digest last_hash)
    : hasher_(std::move(hasher)), last_seq_(last_seq), last_hash_(last_hash) {}

std::optional<std::string> Chain::seal(std::string body, std::uint64_t seq) {
  body += ",\"prev\":\"";
  body += to_hex(last_hash_);
  body += '"';
  Digest h{};
  if (!hasher_.hash(body, h)) return std::nullopt;
  body += ",\"hash\":\"";
  body += to_hex(h);
  body += "\"}\n";
  last_seq_ = seq;
  last_hash_ = h;
  return body;
}

std::string checkpoint_line(std::chrono::system_clock::time_point ts, std::string_view instance,
                            std::uint64_t last_seq, const Digest& last_hash) {
  std::string out = "{\"ts\":";
  append_json_string(out, format_ts(ts));
  out += ",\"seq\":" + std::to_string(last_seq) + ",\"event\":\"checkpoint\",\"instance\":";
  append_json_string(out, instance);
  out += ",\"hash\":\"" + to_hex(last_hash) + "\"}\n";
  return out;
}

}  // namespace pgw::audit
