// MD5 password authentication (PostgreSQL docs 55.3.2): the stored "md5..." secret and the salted response.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace pgw::protocol::md5 {

// "md5" + hex(md5(password || user)): what pg_authid and PgBouncer's auth file hold.
std::string secret(std::string_view password, std::string_view user);
// True for a well-formed "md5" + 32 lowercase hex digits secret.
bool is_secret(std::string_view text) noexcept;
// The PasswordMessage answering AuthenticationMD5Password: "md5" + hex(md5(hex-part-of-secret || salt)).
std::string response(std::string_view md5_secret, std::span<const std::uint8_t, 4> salt);

}  // namespace pgw::protocol::md5
