// Unit tests for the frontend message decoders: fields, limits, truncation at every byte and trailing bytes.
#include <gtest/gtest.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "pgw/protocol/messages.hpp"

namespace pgw::protocol::frontend {
namespace {

// Builds a message body field by field, independently of the encoder under test.
struct Body {
  std::vector<std::uint8_t> b;
  Body& u8(std::uint8_t x) {
    b.push_back(x);
    return *this;
  }
  Body& i16(std::int16_t x) {
    auto u = static_cast<std::uint16_t>(x);
    b.push_back(static_cast<std::uint8_t>(u >> 8));
    b.push_back(static_cast<std::uint8_t>(u));
    return *this;
  }
  Body& i32(std::int32_t x) {
    auto u = static_cast<std::uint32_t>(x);
    for (int shift = 24; shift >= 0; shift -= 8)
      b.push_back(static_cast<std::uint8_t>(u >> shift));
    return *this;
  }
  Body& str(std::string_view s) {
    raw(s);
    b.push_back(0);
    return *this;
  }
  Body& raw(std::string_view s) {
    b.insert(b.end(), s.begin(), s.end());
    return *this;
  }
  Bytes view() const { return Bytes(b.data(), b.size()); }
};

// Every strict prefix fails as truncated or unterminated; one extra byte fails as trailing_bytes.
template <class Message>
void expect_strict(const Body& body) {
  Message ok;
  ASSERT_EQ(decode(body.view(), ok), Error::none);
  for (std::size_t n = 0; n < body.b.size(); ++n) {
    Message m;
    Error e = decode(Bytes(body.b.data(), n), m);
    EXPECT_TRUE(e == Error::truncated || e == Error::missing_terminator)
        << "prefix " << n << ": " << protocol::describe(e);
  }
  for (std::uint8_t extra : {std::uint8_t{0}, std::uint8_t{'x'}}) {
    Body longer = body;
    longer.u8(extra);
    Message m;
    EXPECT_EQ(decode(longer.view(), m), Error::trailing_bytes) << "extra byte " << int{extra};
  }
}

TEST(FrontendDecoder, KnownTypes) {
  for (char t : std::string_view("BCdcfDEHFPpQSX"))
    EXPECT_TRUE(is_known_type(t)) << t;
  for (char t : std::string_view("ZTRKabz\x01\x7f"))
    EXPECT_FALSE(is_known_type(t)) << t;
  EXPECT_FALSE(is_known_type('\0'));
}

// A default-constructed view has a null data pointer: every decoder must cope (run under UBSan in CI).
TEST(FrontendDecoder, EmptyNullViewIsRejectedNotRead) {
  Query q;
  EXPECT_EQ(decode(Bytes{}, q), Error::missing_terminator);
  Parse p;
  EXPECT_EQ(decode(Bytes{}, p), Error::missing_terminator);
  Bind b;
  EXPECT_EQ(decode(Bytes{}, b), Error::missing_terminator);
  Describe d;
  EXPECT_EQ(decode(Bytes{}, d), Error::truncated);
  Execute x;
  EXPECT_EQ(decode(Bytes{}, x), Error::missing_terminator);
  CopyFail f;
  EXPECT_EQ(decode(Bytes{}, f), Error::missing_terminator);
  PasswordMessage pw;
  EXPECT_EQ(decode(Bytes{}, pw), Error::missing_terminator);
  SASLInitialResponse s;
  EXPECT_EQ(decode(Bytes{}, s), Error::missing_terminator);
}

TEST(FrontendDecoder, Query) {
  Body b;
  b.str("select 1; select 2");
  Query q;
  ASSERT_EQ(decode(b.view(), q), Error::none);
  EXPECT_EQ(q.query, "select 1; select 2");
  expect_strict<Query>(b);
}

TEST(FrontendDecoder, QueryWithEmbeddedNulHasTrailingBytes) {
  Body b;
  b.str("select 1").str("junk");
  Query q;
  EXPECT_EQ(decode(b.view(), q), Error::trailing_bytes);
}

TEST(FrontendDecoder, Parse) {
  Body b;
  b.str("stmt").str("select $1, $2").i16(2).i32(23).i32(25);
  Parse p;
  ASSERT_EQ(decode(b.view(), p), Error::none);
  EXPECT_EQ(p.statement, "stmt");
  EXPECT_EQ(p.query, "select $1, $2");
  EXPECT_EQ(p.num_parameter_types, 2);
  ASSERT_EQ(p.parameter_types.size(), 8u);
  EXPECT_EQ(load_u32(p.parameter_types.data() + 4), 25u);
  expect_strict<Parse>(b);

  Body unnamed;
  unnamed.str("").str("select 1").i16(0);
  ASSERT_EQ(decode(unnamed.view(), p), Error::none);
  EXPECT_EQ(p.statement, "");
  EXPECT_TRUE(p.parameter_types.empty());
  expect_strict<Parse>(unnamed);
}

TEST(FrontendDecoder, ParseNegativeCountIsInvalid) {
  Body b;
  b.str("").str("select 1").i16(-1).i32(23);
  Parse p;
  EXPECT_EQ(decode(b.view(), p), Error::invalid_value);
  Body min;
  min.str("").str("select 1").i16(-32768);
  EXPECT_EQ(decode(min.view(), p), Error::invalid_value);
}

TEST(FrontendDecoder, ParseCountLargerThanBodyIsTruncated) {
  Body b;
  b.str("").str("select 1").i16(3).i32(23).i32(23);
  Parse p;
  EXPECT_EQ(decode(b.view(), p), Error::truncated);
}

Body sample_bind() {
  Body b;
  b.str("portal").str("stmt").i16(2).i16(0).i16(1);  // parameter formats
  b.i16(3).i32(3).raw("abc").i32(-1).i32(0);         // "abc", NULL, ""
  b.i16(1).i16(1);                                   // result formats
  return b;
}

TEST(FrontendDecoder, Bind) {
  Body b = sample_bind();
  Bind m;
  ASSERT_EQ(decode(b.view(), m), Error::none);
  EXPECT_EQ(m.portal, "portal");
  EXPECT_EQ(m.statement, "stmt");
  EXPECT_EQ(m.num_parameter_formats, 2);
  EXPECT_EQ(m.parameter_formats.size(), 4u);
  EXPECT_EQ(m.num_parameters, 3);
  EXPECT_EQ(m.parameters.size(), 4u + 3u + 4u + 4u);
  EXPECT_EQ(m.num_result_formats, 1);
  EXPECT_EQ(m.result_formats.size(), 2u);
  expect_strict<Bind>(b);
}

TEST(FrontendDecoder, BindForEachParameter) {
  Body b = sample_bind();
  Bind m;
  ASSERT_EQ(decode(b.view(), m), Error::none);
  std::vector<std::pair<std::int16_t, std::optional<std::string>>> seen;
  for_each_parameter(m, [&](std::int16_t i, std::optional<Bytes> v) {
    seen.emplace_back(i, v ? std::optional<std::string>(std::string(as_text(*v))) : std::nullopt);
  });
  ASSERT_EQ(seen.size(), 3u);
  EXPECT_EQ(seen[0].first, 0);
  EXPECT_EQ(seen[0].second, "abc");
  EXPECT_EQ(seen[1].first, 1);
  EXPECT_FALSE(seen[1].second.has_value());
  EXPECT_EQ(seen[2].first, 2);
  EXPECT_EQ(seen[2].second, "");
}

TEST(FrontendDecoder, BindNoParameters) {
  Body b;
  b.str("").str("").i16(0).i16(0).i16(0);
  Bind m;
  ASSERT_EQ(decode(b.view(), m), Error::none);
  int calls = 0;
  for_each_parameter(m, [&](std::int16_t, std::optional<Bytes>) { ++calls; });
  EXPECT_EQ(calls, 0);
  expect_strict<Bind>(b);
}

TEST(FrontendDecoder, BindNegativeCountsAreInvalid) {
  Bind m;
  Body formats;
  formats.str("").str("").i16(-1).i16(0).i16(0);
  EXPECT_EQ(decode(formats.view(), m), Error::invalid_value);
  Body params;
  params.str("").str("").i16(0).i16(-2).i16(0);
  EXPECT_EQ(decode(params.view(), m), Error::invalid_value);
  Body results;
  results.str("").str("").i16(0).i16(0).i16(-1);
  EXPECT_EQ(decode(results.view(), m), Error::invalid_value);
}

TEST(FrontendDecoder, BindParameterLengthBelowMinusOneIsInvalid) {
  for (std::int32_t len : {-2, -100, INT32_MIN}) {
    Body b;
    b.str("").str("").i16(0).i16(1).i32(len).i16(0);
    Bind m;
    EXPECT_EQ(decode(b.view(), m), Error::invalid_value) << len;
  }
}

TEST(FrontendDecoder, BindTruncatedParameters) {
  Bind m;
  Body short_value;  // declares 10 bytes, carries 3
  short_value.str("").str("").i16(0).i16(1).i32(10).raw("abc");
  EXPECT_EQ(decode(short_value.view(), m), Error::truncated);
  Body huge_length;  // a length far beyond the body must not be trusted
  huge_length.str("").str("").i16(0).i16(1).i32(INT32_MAX).i16(0);
  EXPECT_EQ(decode(huge_length.view(), m), Error::truncated);
  Body missing_parameter;  // declares two parameters, carries one
  missing_parameter.str("").str("").i16(0).i16(2).i32(1).raw("a");
  EXPECT_EQ(decode(missing_parameter.view(), m), Error::truncated);
}

TEST(FrontendDecoder, Describe) {
  for (char target : {'S', 'P'}) {
    Body b;
    b.u8(static_cast<std::uint8_t>(target)).str("name");
    Describe d;
    ASSERT_EQ(decode(b.view(), d), Error::none);
    EXPECT_EQ(d.target, target);
    EXPECT_EQ(d.name, "name");
    expect_strict<Describe>(b);
  }
  Body bad;
  bad.u8('X').str("name");
  Describe d;
  EXPECT_EQ(decode(bad.view(), d), Error::invalid_value);
}

TEST(FrontendDecoder, Execute) {
  Body b;
  b.str("portal").i32(100);
  Execute e;
  ASSERT_EQ(decode(b.view(), e), Error::none);
  EXPECT_EQ(e.portal, "portal");
  EXPECT_EQ(e.max_rows, 100);
  expect_strict<Execute>(b);
}

TEST(FrontendDecoder, Close) {
  for (char target : {'S', 'P'}) {
    Body b;
    b.u8(static_cast<std::uint8_t>(target)).str("");
    Close c;
    ASSERT_EQ(decode(b.view(), c), Error::none);
    EXPECT_EQ(c.target, target);
    EXPECT_EQ(c.name, "");
    expect_strict<Close>(b);
  }
  Body bad;
  bad.u8('s').str("x");
  Close c;
  EXPECT_EQ(decode(bad.view(), c), Error::invalid_value);
}

TEST(FrontendDecoder, CopyFail) {
  Body b;
  b.str("client gave up");
  CopyFail f;
  ASSERT_EQ(decode(b.view(), f), Error::none);
  EXPECT_EQ(f.message, "client gave up");
  expect_strict<CopyFail>(b);
}

TEST(FrontendDecoder, PasswordMessage) {
  Body b;
  b.str("hunter2");
  PasswordMessage p;
  ASSERT_EQ(decode(b.view(), p), Error::none);
  EXPECT_EQ(p.password, "hunter2");
  expect_strict<PasswordMessage>(b);
}

TEST(FrontendDecoder, SaslInitialResponse) {
  Body b;
  b.str("SCRAM-SHA-256").i32(9).raw("n,,n=,r=x");
  SASLInitialResponse s;
  ASSERT_EQ(decode(b.view(), s), Error::none);
  EXPECT_EQ(s.mechanism, "SCRAM-SHA-256");
  EXPECT_TRUE(s.has_data);
  EXPECT_EQ(as_text(s.data), "n,,n=,r=x");
  expect_strict<SASLInitialResponse>(b);

  Body empty_data;
  empty_data.str("SCRAM-SHA-256").i32(0);
  ASSERT_EQ(decode(empty_data.view(), s), Error::none);
  EXPECT_TRUE(s.has_data);
  EXPECT_TRUE(s.data.empty());
}

TEST(FrontendDecoder, SaslInitialResponseWithoutData) {
  Body b;
  b.str("SCRAM-SHA-256").i32(-1);
  SASLInitialResponse s;
  s.has_data = true;
  ASSERT_EQ(decode(b.view(), s), Error::none);
  EXPECT_FALSE(s.has_data);
  EXPECT_TRUE(s.data.empty());
  expect_strict<SASLInitialResponse>(b);
}

TEST(FrontendDecoder, SaslInitialResponseBadLengths) {
  SASLInitialResponse s;
  Body negative;
  negative.str("SCRAM-SHA-256").i32(-2);
  EXPECT_EQ(decode(negative.view(), s), Error::invalid_value);
  Body longer_than_body;
  longer_than_body.str("SCRAM-SHA-256").i32(100).raw("n,,");
  EXPECT_EQ(decode(longer_than_body.view(), s), Error::truncated);
  Body shorter_than_body;
  shorter_than_body.str("SCRAM-SHA-256").i32(1).raw("n,,");
  EXPECT_EQ(decode(shorter_than_body.view(), s), Error::trailing_bytes);
}

TEST(FrontendDecoder, SaslResponseIsTheWholeBody) {
  Body b;
  b.raw("c=biws,r=abc,p=xyz");
  SASLResponse s;
  ASSERT_EQ(decode(b.view(), s), Error::none);
  EXPECT_EQ(as_text(s.data), "c=biws,r=abc,p=xyz");
  EXPECT_EQ(s.data.data(), b.b.data());
  ASSERT_EQ(decode(Bytes{}, s), Error::none);
  EXPECT_TRUE(s.data.empty());
}

}  // namespace
}  // namespace pgw::protocol::frontend
