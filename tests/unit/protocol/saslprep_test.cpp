// SASLprep (RFC 4013) and SCRAM secrets checked against what PostgreSQL 15 itself stores in pg_authid.
#include <gtest/gtest.h>

#include <string>

#include "pgw/protocol/scram.hpp"

namespace pgw::protocol::scram {
namespace {

// RFC 4013 section 3 examples, plus the pieces of the profile that real passwords hit.
TEST(Saslprep, Rfc4013Examples) {
  EXPECT_EQ(saslprep("I\u00adX"), "IX");     // soft hyphen maps to nothing
  EXPECT_EQ(saslprep("user"), "user");       // no transformation
  EXPECT_EQ(saslprep("USER"), "USER");       // case preserved
  EXPECT_EQ(saslprep("\u00aa"), "a");        // NFKC
  EXPECT_EQ(saslprep("\u2168"), "IX");       // NFKC: ROMAN NUMERAL NINE
  EXPECT_EQ(saslprep("a\u00a0b"), "a b");    // non-ASCII space maps to space
  EXPECT_EQ(saslprep("\ufb01x"), "fix");     // ligature
  EXPECT_EQ(saslprep("A\u030a"), "\u00c5");  // composed
}

// Where PostgreSQL's pg_saslprep gives up, it uses the password exactly as given; so must we.
TEST(Saslprep, FallsBackToTheRawPasswordLikePostgres) {
  EXPECT_EQ(saslprep(std::string("a\x07z")), std::string("a\x07z"));  // ASCII (even control chars): unchanged
  EXPECT_EQ(saslprep("\u0007\u00e9"), "\u0007\u00e9");                // prohibited control character
  EXPECT_EQ(saslprep("\u0627\u0031"), "\u0627\u0031");                // RandALCat not at both ends: bidi
  std::string invalid_utf8 = "caf\xc3";
  EXPECT_EQ(saslprep(invalid_utf8), invalid_utf8);
  EXPECT_EQ(saslprep(""), "");
  EXPECT_EQ(saslprep("\u00ad"), "\u00ad");  // maps to nothing at all: PostgreSQL keeps it
}

// Secrets made by PostgreSQL 15 (CREATE ROLE ... PASSWORD '...'; SELECT rolpassword FROM pg_authid):
// deriving with the same salt and iteration count must give the same StoredKey and ServerKey.
TEST(Saslprep, DeriveSecretMatchesPostgres15Secrets) {
  struct Case {
    std::string password;
    std::string secret;
  };
  const Case cases[] = {
      {"pencil",
       "SCRAM-SHA-256$4096:1KtkpCPv0kKwqxBLN4VBCg==$/S7r925OeFeMgc8yimJsVr0jEFusZsXzgvnVM4DcRxE=:"
       "eu1Ig2hgG+yEe9nBSfafMpY2SR4sJw/3NbJT1PX6BeE="},
      {"p\u00e4\u00a0ss\ufb01",
       "SCRAM-SHA-256$4096:wJxcpXabz5R6SPziz2V4bA==$PWwE2d1KfqJILN68mrrBdKxjApeEMGU6JuHaipUXyEw=:"
       "sbfetKuh3yLIhOWqqpiCbB1qIx2S+P/zxVVyy+qb7KI="},
      {"I\u00adX",
       "SCRAM-SHA-256$4096:dWd+TKn5ocq9iW2FBOxFlg==$2iq1VO54umIiQjJzJO3TUX/iJjQYOkJA014a5fNKfE4=:"
       "A0KAcJzdQuNyoBuumQVElwT0B1Fpxl2Woyao6M7UZ8A="},
      {"\u2168",
       "SCRAM-SHA-256$4096:YxFdIg5boUM7pwWf1xaVhA==$qYIP9tlYlt5zmi32mN3Je/G7Su4IM6HJf9w5j9zvKdo=:"
       "N2nmKgo1XK+UVZb4XcJgDrz73z2bqXslWrRqM6tbb4g="},
  };
  for (const auto& c : cases) {
    auto stored = parse_secret(c.secret);
    ASSERT_TRUE(stored) << c.secret;
    Secret derived;
    ASSERT_EQ(derive_secret(c.password, stored->salt, stored->iterations, derived), Error::none);
    EXPECT_EQ(format_secret(derived), c.secret) << c.password;
  }
  // The non-ASCII passwords really change under SASLprep, so matching them shows it is applied.
  for (const auto* c : {&cases[1], &cases[2], &cases[3]})
    EXPECT_NE(saslprep(c->password), c->password);
}

}  // namespace
}  // namespace pgw::protocol::scram
