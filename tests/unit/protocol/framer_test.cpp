// Unit tests for the framer: need-more on every prefix, complete frames, length bounds checked before bodies.
#include <gtest/gtest.h>

#include <cstdint>
#include <string_view>
#include <vector>

#include "pgw/protocol/framer.hpp"

namespace pgw::protocol {
namespace {

using namespace std::string_view_literals;

using ByteVec = std::vector<std::uint8_t>;

void put_u32(ByteVec& v, std::uint32_t x) {
  v.push_back(static_cast<std::uint8_t>(x >> 24));
  v.push_back(static_cast<std::uint8_t>(x >> 16));
  v.push_back(static_cast<std::uint8_t>(x >> 8));
  v.push_back(static_cast<std::uint8_t>(x));
}

// A typed message with the given body; the length word counts itself and the body.
ByteVec typed(char type, std::string_view body) {
  ByteVec v{static_cast<std::uint8_t>(type)};
  put_u32(v, static_cast<std::uint32_t>(body.size() + 4));
  v.insert(v.end(), body.begin(), body.end());
  return v;
}

// A header with an arbitrary length word and no body.
ByteVec header_only(char type, std::uint32_t length_word) {
  ByteVec v{static_cast<std::uint8_t>(type)};
  put_u32(v, length_word);
  return v;
}

ByteVec startup_packet(std::string_view body) {
  ByteVec v;
  put_u32(v, static_cast<std::uint32_t>(body.size() + 4));
  v.insert(v.end(), body.begin(), body.end());
  return v;
}

Bytes view(const ByteVec& v, std::size_t n) {
  return Bytes(v.data(), n);
}
Bytes view(const ByteVec& v) {
  return Bytes(v.data(), v.size());
}

TEST(Framer, HeaderNeedsFiveBytes) {
  ByteVec m = typed('Q', "select 1\0"sv);
  for (std::size_t n = 0; n < typed_header_size; ++n) {
    HeaderResult h = parse_header(view(m, n), 1024);
    EXPECT_EQ(h.status, FrameStatus::need_more) << "prefix " << n;
    EXPECT_EQ(h.error, Error::none);
  }
  HeaderResult h = parse_header(view(m, typed_header_size), 1024);
  ASSERT_EQ(h.status, FrameStatus::complete);
  EXPECT_EQ(h.header.type, 'Q');
  EXPECT_EQ(h.header.body_length, 9u);
  EXPECT_EQ(h.header.wire_size(), 14u);
}

TEST(Framer, FrameNeedMoreOnEveryPrefixThenComplete) {
  ByteVec m = typed('P', "s1\0select $1\0\0\0"sv);
  for (std::size_t n = 0; n < m.size(); ++n) {
    FrameResult r = parse_frame(view(m, n), 1024);
    ASSERT_EQ(r.status, FrameStatus::need_more) << "prefix " << n;
    EXPECT_EQ(r.error, Error::none);
    EXPECT_EQ(r.needed, n < typed_header_size ? typed_header_size : m.size()) << "prefix " << n;
  }
  FrameResult r = parse_frame(view(m), 1024);
  ASSERT_EQ(r.status, FrameStatus::complete);
  EXPECT_EQ(r.frame.type, 'P');
  EXPECT_EQ(r.frame.wire_size, m.size());
  EXPECT_EQ(r.frame.body.size(), 15u);
  EXPECT_EQ(r.frame.body.data(), m.data() + typed_header_size);  // a view, not a copy
}

TEST(Framer, EmptyBodyMessageIsCompleteAtFiveBytes) {
  ByteVec m = typed('S', "");
  FrameResult r = parse_frame(view(m), 0);
  ASSERT_EQ(r.status, FrameStatus::complete);
  EXPECT_EQ(r.frame.type, 'S');
  EXPECT_TRUE(r.frame.body.empty());
  EXPECT_EQ(r.frame.wire_size, 5u);
}

TEST(Framer, LengthBelowFourIsAnError) {
  for (std::uint32_t len = 0; len < 4; ++len) {
    ByteVec m = header_only('Q', len);
    HeaderResult h = parse_header(view(m), 1024);
    EXPECT_EQ(h.status, FrameStatus::error) << "length " << len;
    EXPECT_EQ(h.error, Error::length_too_small) << "length " << len;
    FrameResult r = parse_frame(view(m), 1024);
    EXPECT_EQ(r.status, FrameStatus::error) << "length " << len;
    EXPECT_EQ(r.error, Error::length_too_small) << "length " << len;
  }
}

TEST(Framer, LengthOverCapIsAnErrorBeforeTheBodyArrives) {
  // Only the header is here: a huge length must fail now, not ask for gigabytes more.
  for (std::uint32_t len : {0xffffffffu, 0x80000000u, 0x40000000u, 1025u + 4u}) {
    ByteVec m = header_only('D', len);
    HeaderResult h = parse_header(view(m), 1024);
    EXPECT_EQ(h.status, FrameStatus::error) << "length " << len;
    EXPECT_EQ(h.error, Error::length_too_large) << "length " << len;
    FrameResult r = parse_frame(view(m), 1024);
    EXPECT_EQ(r.status, FrameStatus::error) << "length " << len;
    EXPECT_EQ(r.error, Error::length_too_large) << "length " << len;
  }
}

TEST(Framer, ExactCapBoundary) {
  const std::uint32_t cap = 100;
  ByteVec at_cap = header_only('Q', cap + 4);
  FrameResult r = parse_frame(view(at_cap), cap);
  EXPECT_EQ(r.status, FrameStatus::need_more);
  EXPECT_EQ(r.needed, typed_header_size + cap);
  at_cap.resize(typed_header_size + cap, 'x');
  r = parse_frame(view(at_cap), cap);
  ASSERT_EQ(r.status, FrameStatus::complete);
  EXPECT_EQ(r.frame.body.size(), cap);

  ByteVec over = header_only('Q', cap + 5);
  r = parse_frame(view(over), cap);
  EXPECT_EQ(r.status, FrameStatus::error);
  EXPECT_EQ(r.error, Error::length_too_large);
}

TEST(Framer, ProtocolBoundAppliesEvenWithALargerCap) {
  ByteVec at_bound = header_only('d', protocol_max_message_length + 4);
  HeaderResult h = parse_header(view(at_bound), 0xffffffffu);
  ASSERT_EQ(h.status, FrameStatus::complete);
  EXPECT_EQ(h.header.body_length, protocol_max_message_length);
  ByteVec over = header_only('d', protocol_max_message_length + 5);
  h = parse_header(view(over), 0xffffffffu);
  EXPECT_EQ(h.status, FrameStatus::error);
  EXPECT_EQ(h.error, Error::length_too_large);
}

TEST(Framer, MessagesBackToBack) {
  ByteVec stream;
  const std::vector<std::pair<char, std::string>> messages = {
      {'Q', std::string("select 1\0", 9)}, {'S', ""}, {'H', ""}, {'X', ""}, {'d', std::string(300, 'z')}};
  for (const auto& [type, body] : messages) {
    ByteVec m = typed(type, body);
    stream.insert(stream.end(), m.begin(), m.end());
  }
  std::size_t pos = 0;
  for (const auto& [type, body] : messages) {
    FrameResult r = parse_frame(Bytes(stream).subspan(pos), 1024);
    ASSERT_EQ(r.status, FrameStatus::complete);
    EXPECT_EQ(r.frame.type, type);
    EXPECT_EQ(std::string(as_text(r.frame.body)), body);
    pos += r.frame.wire_size;
  }
  EXPECT_EQ(pos, stream.size());
  EXPECT_EQ(parse_frame(Bytes(stream).subspan(pos), 1024).status, FrameStatus::need_more);
}

TEST(StartupFramer, NeedMoreOnEveryPrefix) {
  ByteVec p = startup_packet("\x00\x03\x00\x00user\0bob\0\0"sv);
  for (std::size_t n = 0; n < p.size(); ++n) {
    FrameResult r = parse_startup_frame(view(p, n));
    ASSERT_EQ(r.status, FrameStatus::need_more) << "prefix " << n;
    EXPECT_EQ(r.needed, n < 4 ? 4u : p.size()) << "prefix " << n;
  }
  FrameResult r = parse_startup_frame(view(p));
  ASSERT_EQ(r.status, FrameStatus::complete);
  EXPECT_EQ(r.frame.type, 0);
  EXPECT_EQ(r.frame.wire_size, p.size());
  EXPECT_EQ(r.frame.body.size(), p.size() - 4);
}

TEST(StartupFramer, LengthBelowEightIsAnError) {
  for (std::uint32_t len = 0; len < 8; ++len) {
    ByteVec p;
    put_u32(p, len);
    FrameResult r = parse_startup_frame(view(p));
    EXPECT_EQ(r.status, FrameStatus::error) << "length " << len;
    EXPECT_EQ(r.error, Error::length_too_small) << "length " << len;
  }
  ByteVec ssl;
  put_u32(ssl, 8);
  put_u32(ssl, 80877103);
  FrameResult r = parse_startup_frame(view(ssl));
  ASSERT_EQ(r.status, FrameStatus::complete);
  EXPECT_EQ(r.frame.body.size(), 4u);
}

TEST(StartupFramer, LengthAboveTenThousandIsAnErrorBeforeTheBody) {
  for (std::uint32_t len : {10001u, 65536u, 0xffffffffu}) {
    ByteVec p;
    put_u32(p, len);
    FrameResult r = parse_startup_frame(view(p));
    EXPECT_EQ(r.status, FrameStatus::error) << "length " << len;
    EXPECT_EQ(r.error, Error::length_too_large) << "length " << len;
  }
  ByteVec at_limit;
  put_u32(at_limit, max_startup_packet_length);
  FrameResult r = parse_startup_frame(view(at_limit));
  EXPECT_EQ(r.status, FrameStatus::need_more);
  EXPECT_EQ(r.needed, max_startup_packet_length);
  at_limit.resize(max_startup_packet_length, 0);
  r = parse_startup_frame(view(at_limit));
  ASSERT_EQ(r.status, FrameStatus::complete);
  EXPECT_EQ(r.frame.wire_size, max_startup_packet_length);
}

TEST(StartupFramer, SecondPacketAfterTheFirstIsLeftAlone) {
  ByteVec stream;
  put_u32(stream, 8);
  put_u32(stream, 80877103);
  ByteVec startup = startup_packet("\x00\x03\x00\x00user\0u\0\0"sv);
  stream.insert(stream.end(), startup.begin(), startup.end());
  FrameResult r = parse_startup_frame(view(stream));
  ASSERT_EQ(r.status, FrameStatus::complete);
  EXPECT_EQ(r.frame.wire_size, 8u);
  r = parse_startup_frame(Bytes(stream).subspan(8));
  ASSERT_EQ(r.status, FrameStatus::complete);
  EXPECT_EQ(r.frame.wire_size, startup.size());
}

}  // namespace
}  // namespace pgw::protocol
