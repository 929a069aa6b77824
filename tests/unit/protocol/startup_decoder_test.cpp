// Unit tests for decode_initial_packet: StartupMessage, SSLRequest, GSSENCRequest and CancelRequest bodies.
#include <gtest/gtest.h>

#include <cstdint>
#include <string_view>
#include <vector>

#include "pgw/protocol/messages.hpp"

namespace pgw::protocol {
namespace {

// Builds a message body field by field, independently of the encoder under test.
struct Body {
  std::vector<std::uint8_t> b;
  Body& i32(std::uint32_t x) {
    for (int shift = 24; shift >= 0; shift -= 8)
      b.push_back(static_cast<std::uint8_t>(x >> shift));
    return *this;
  }
  Body& str(std::string_view s) {  // C string with its NUL
    b.insert(b.end(), s.begin(), s.end());
    b.push_back(0);
    return *this;
  }
  Body& raw(std::string_view s) {
    b.insert(b.end(), s.begin(), s.end());
    return *this;
  }
  Body& u8(std::uint8_t x) {
    b.push_back(x);
    return *this;
  }
  Bytes view() const { return Bytes(b.data(), b.size()); }
};

constexpr std::uint32_t v3_0 = 3u << 16;

// Every strict prefix fails with truncated or missing_terminator, and one extra byte fails with
// trailing_bytes.
void expect_strict(const Body& body) {
  InitialPacket ok;
  ASSERT_EQ(decode_initial_packet(body.view(), ok), Error::none);
  for (std::size_t n = 0; n < body.b.size(); ++n) {
    InitialPacket p;
    Error e = decode_initial_packet(Bytes(body.b.data(), n), p);
    EXPECT_TRUE(e == Error::truncated || e == Error::missing_terminator)
        << "prefix " << n << ": " << describe(e);
  }
  Body longer = body;
  longer.u8('x');
  InitialPacket p;
  EXPECT_EQ(decode_initial_packet(longer.view(), p), Error::trailing_bytes);
}

TEST(StartupDecoder, SslRequest) {
  Body b;
  b.i32(80877103);
  InitialPacket p;
  ASSERT_EQ(decode_initial_packet(b.view(), p), Error::none);
  EXPECT_EQ(p.kind, InitialPacketKind::ssl_request);
  expect_strict(b);
}

TEST(StartupDecoder, GssEncRequest) {
  Body b;
  b.i32(80877104);
  InitialPacket p;
  ASSERT_EQ(decode_initial_packet(b.view(), p), Error::none);
  EXPECT_EQ(p.kind, InitialPacketKind::gssenc_request);
  expect_strict(b);
}

TEST(StartupDecoder, CancelRequest) {
  Body b;
  b.i32(80877102).i32(4242).i32(0xdeadbeef);
  InitialPacket p;
  ASSERT_EQ(decode_initial_packet(b.view(), p), Error::none);
  EXPECT_EQ(p.kind, InitialPacketKind::cancel_request);
  EXPECT_EQ(p.cancel.process_id, 4242);
  EXPECT_EQ(p.cancel.secret_key, static_cast<std::int32_t>(0xdeadbeef));
  expect_strict(b);
}

TEST(StartupDecoder, StartupMessageWithParameters) {
  Body b;
  b.i32(v3_0).str("user").str("alice").str("database").str("shop").str("application_name").str("psql").u8(0);
  InitialPacket p;
  ASSERT_EQ(decode_initial_packet(b.view(), p), Error::none);
  ASSERT_EQ(p.kind, InitialPacketKind::startup);
  const StartupMessage& s = p.startup;
  EXPECT_EQ(s.major, 3);
  EXPECT_EQ(s.minor, 0);
  ASSERT_EQ(s.parameters.size(), 3u);
  EXPECT_EQ(s.parameters[2].name, "application_name");
  EXPECT_EQ(s.parameters[2].value, "psql");
  EXPECT_EQ(s.user(), "alice");
  EXPECT_EQ(s.database(), "shop");
  EXPECT_EQ(s.get("application_name"), "psql");
  EXPECT_FALSE(s.get("options").has_value());
  EXPECT_FALSE(s.needs_protocol_negotiation());
  expect_strict(b);
}

TEST(StartupDecoder, ValuesAreViewsIntoTheBody) {
  Body b;
  b.i32(v3_0).str("user").str("alice").u8(0);
  InitialPacket p;
  ASSERT_EQ(decode_initial_packet(b.view(), p), Error::none);
  EXPECT_EQ(reinterpret_cast<const std::uint8_t*>(p.startup.user().data()), b.b.data() + 9);
}

TEST(StartupDecoder, DatabaseDefaultsToUser) {
  Body b;
  b.i32(v3_0).str("user").str("bob").u8(0);
  InitialPacket p;
  ASSERT_EQ(decode_initial_packet(b.view(), p), Error::none);
  EXPECT_EQ(p.startup.database(), "bob");

  Body empty_db;
  empty_db.i32(v3_0).str("database").str("").str("user").str("bob").u8(0);
  ASSERT_EQ(decode_initial_packet(empty_db.view(), p), Error::none);
  EXPECT_EQ(p.startup.database(), "bob");
}

TEST(StartupDecoder, LaterDuplicateParameterWins) {
  Body b;
  b.i32(v3_0)
      .str("user")
      .str("first")
      .str("database")
      .str("d1")
      .str("user")
      .str("second")
      .str("database")
      .str("d2");
  b.u8(0);
  InitialPacket p;
  ASSERT_EQ(decode_initial_packet(b.view(), p), Error::none);
  EXPECT_EQ(p.startup.user(), "second");
  EXPECT_EQ(p.startup.database(), "d2");
}

TEST(StartupDecoder, ProtocolOptionsAreKeptApartAndNeedNegotiation) {
  Body b;
  b.i32(v3_0).str("_pq_.compression").str("on").str("user").str("u").str("_pq_.other").str("x").u8(0);
  InitialPacket p;
  ASSERT_EQ(decode_initial_packet(b.view(), p), Error::none);
  const StartupMessage& s = p.startup;
  ASSERT_EQ(s.protocol_options.size(), 2u);
  EXPECT_EQ(s.protocol_options[0], "_pq_.compression");
  EXPECT_EQ(s.protocol_options[1], "_pq_.other");
  ASSERT_EQ(s.parameters.size(), 1u);
  EXPECT_FALSE(s.get("_pq_.compression").has_value());
  EXPECT_TRUE(s.needs_protocol_negotiation());
  expect_strict(b);
}

TEST(StartupDecoder, NewerMinorVersionNeedsNegotiation) {
  Body b;
  b.i32(v3_0 | 2).str("user").str("u").u8(0);
  InitialPacket p;
  ASSERT_EQ(decode_initial_packet(b.view(), p), Error::none);
  EXPECT_EQ(p.startup.major, 3);
  EXPECT_EQ(p.startup.minor, 2);
  EXPECT_TRUE(p.startup.needs_protocol_negotiation());
}

TEST(StartupDecoder, UnsupportedMajorVersion) {
  for (std::uint32_t version : {2u << 16, 4u << 16, 0u, 1234u << 16 | 5681u}) {
    Body b;
    b.i32(version).str("user").str("u").u8(0);
    InitialPacket p;
    EXPECT_EQ(decode_initial_packet(b.view(), p), Error::unsupported_protocol) << version;
  }
}

TEST(StartupDecoder, MissingUser) {
  Body none;
  none.i32(v3_0).str("database").str("d").u8(0);
  InitialPacket p;
  EXPECT_EQ(decode_initial_packet(none.view(), p), Error::missing_user);
  Body empty_user;
  empty_user.i32(v3_0).str("user").str("").u8(0);
  EXPECT_EQ(decode_initial_packet(empty_user.view(), p), Error::missing_user);
  Body no_params;
  no_params.i32(v3_0).u8(0);
  EXPECT_EQ(decode_initial_packet(no_params.view(), p), Error::missing_user);
}

TEST(StartupDecoder, MissingFinalTerminator) {
  Body b;
  b.i32(v3_0).str("user").str("u");
  InitialPacket p;
  EXPECT_EQ(decode_initial_packet(b.view(), p), Error::missing_terminator);
  Body name_without_value;
  name_without_value.i32(v3_0).str("user").str("u").str("database");
  EXPECT_EQ(decode_initial_packet(name_without_value.view(), p), Error::missing_terminator);
}

TEST(StartupDecoder, TrailingBytesAfterTerminator) {
  Body b;
  b.i32(v3_0).str("user").str("u").u8(0).u8(0);
  InitialPacket p;
  EXPECT_EQ(decode_initial_packet(b.view(), p), Error::trailing_bytes);
}

TEST(StartupDecoder, ReusedOutputIsCleared) {
  Body first;
  first.i32(v3_0).str("user").str("a").str("_pq_.x").str("1").u8(0);
  Body second;
  second.i32(v3_0).str("user").str("b").u8(0);
  InitialPacket p;
  ASSERT_EQ(decode_initial_packet(first.view(), p), Error::none);
  ASSERT_EQ(decode_initial_packet(second.view(), p), Error::none);
  EXPECT_EQ(p.startup.parameters.size(), 1u);
  EXPECT_TRUE(p.startup.protocol_options.empty());
  EXPECT_EQ(p.startup.user(), "b");
}

TEST(StartupDecoder, EmptyBodyIsTruncated) {
  InitialPacket p;
  EXPECT_EQ(decode_initial_packet(Bytes{}, p), Error::truncated);
}

}  // namespace
}  // namespace pgw::protocol
