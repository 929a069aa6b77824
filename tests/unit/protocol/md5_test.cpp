// Unit tests for MD5 password hashing, checked against values computed independently with Python's hashlib.
#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "pgw/protocol/md5.hpp"

namespace pgw::protocol::md5 {
namespace {

using namespace std::string_view_literals;

TEST(Md5, SecretIsMd5OfPasswordThenUser) {
  // python3 -c 'import hashlib; print("md5" + hashlib.md5(b"pwuser").hexdigest())'
  EXPECT_EQ(secret("pw", "user"), "md5871c429757b7a0bf1654fad112b77bd4");
  // python3 -c 'import hashlib; print("md5" + hashlib.md5(b"secretalice").hexdigest())'
  EXPECT_EQ(secret("secret", "alice"), "md54a0a68b43b6cd5cf266fa02f196e2371");
  // The order matters: password first, then the user name.
  EXPECT_NE(secret("user", "pw"), secret("pw", "user"));
}

TEST(Md5, ResponseSaltsTheSecret) {
  // python3: s = "md5" + md5(b"pwuser").hexdigest(); "md5" + md5(s[3:].encode() + bytes([1, 2, 3,
  // 4])).hexdigest()
  const std::array<std::uint8_t, 4> salt{1, 2, 3, 4};
  EXPECT_EQ(response("md5871c429757b7a0bf1654fad112b77bd4", salt), "md546eacb7412409e1444bde22e56e70744");
  const std::array<std::uint8_t, 4> salt2{0xde, 0xad, 0xbe, 0xef};
  EXPECT_EQ(response(secret("secret", "alice"), salt2), "md53e1d73ba00a55e8805aa0277d29996c5");
  EXPECT_NE(response(secret("secret", "alice"), salt), response(secret("secret", "alice"), salt2));
}

TEST(Md5, IsSecret) {
  EXPECT_TRUE(is_secret("md5871c429757b7a0bf1654fad112b77bd4"));
  EXPECT_TRUE(is_secret(secret("", "")));
  EXPECT_FALSE(is_secret(""));
  EXPECT_FALSE(is_secret("md5"));
  EXPECT_FALSE(is_secret("md5871c429757b7a0bf1654fad112b77bd"));    // 31 digits
  EXPECT_FALSE(is_secret("md5871c429757b7a0bf1654fad112b77bd4a"));  // 33 digits
  EXPECT_FALSE(is_secret("md5871C429757B7A0BF1654FAD112B77BD4"));   // uppercase
  EXPECT_FALSE(is_secret("md5871c429757b7a0bf1654fad112b77bdg"));   // not hex
  EXPECT_FALSE(is_secret("MD5871c429757b7a0bf1654fad112b77bd4"));
  EXPECT_FALSE(is_secret("xyz871c429757b7a0bf1654fad112b77bd4"));
  EXPECT_FALSE(is_secret("SCRAM-SHA-256$4096:c2FsdA==$xx:yy"));
  EXPECT_FALSE(is_secret("md5871c429757b7a0bf1654fad112b77b\0d"sv));
}

}  // namespace
}  // namespace pgw::protocol::md5
