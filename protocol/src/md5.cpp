// MD5 password hashing as PostgreSQL's pg_md5_encrypt does it.
#include "pgw/protocol/md5.hpp"

#include <openssl/evp.h>

#include <array>

namespace pgw::protocol::md5 {

namespace {
std::string md5_hex(std::string_view a, std::span<const std::uint8_t> b) {
  std::array<unsigned char, 16> digest{};
  unsigned int len = 0;
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  EVP_DigestInit_ex(ctx, EVP_md5(), nullptr);
  EVP_DigestUpdate(ctx, a.data(), a.size());
  EVP_DigestUpdate(ctx, b.data(), b.size());
  EVP_DigestFinal_ex(ctx, digest.data(), &len);
  EVP_MD_CTX_free(ctx);
  static constexpr char hex[] = "0123456789abcdef";
  std::string out;
  out.reserve(32);
  for (unsigned char c : digest) {
    out.push_back(hex[c >> 4]);
    out.push_back(hex[c & 15]);
  }
  return out;
}
}  // namespace

std::string secret(std::string_view password, std::string_view user) {
  return "md5" + md5_hex(password, {reinterpret_cast<const std::uint8_t*>(user.data()), user.size()});
}

bool is_secret(std::string_view text) noexcept {
  if (text.size() != 35 || !text.starts_with("md5")) return false;
  for (char c : text.substr(3)) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

std::string response(std::string_view md5_secret, std::span<const std::uint8_t, 4> salt) {
  // Callers pass a secret that is_secret() accepted; a short one must not throw on a login path.
  std::string_view hex = md5_secret.size() > 3 ? md5_secret.substr(3) : std::string_view{};
  return "md5" + md5_hex(hex, salt);
}

}  // namespace pgw::protocol::md5
