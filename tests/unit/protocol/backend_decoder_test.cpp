// Unit tests for the backend message decoders, the SASL mechanism list and CommandComplete row counts.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "pgw/protocol/messages.hpp"

namespace pgw::protocol::backend {
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

TEST(BackendDecoder, KnownTypes) {
  for (char t : std::string_view("RK23CWdcGHDIEVvnNAtS1sZT"))
    EXPECT_TRUE(is_known_type(t)) << t;
  for (char t : std::string_view("QPBXpfbxz"))
    EXPECT_FALSE(is_known_type(t)) << t;
  EXPECT_FALSE(is_known_type('\0'));
}

TEST(BackendDecoder, AuthenticationWithoutData) {
  for (AuthCode code :
       {AuthCode::ok, AuthCode::kerberos_v5, AuthCode::cleartext_password, AuthCode::gss, AuthCode::sspi}) {
    Body b;
    b.i32(static_cast<std::int32_t>(code));
    Authentication a;
    ASSERT_EQ(decode(b.view(), a), Error::none);
    EXPECT_EQ(a.code, code);
    EXPECT_TRUE(a.data.empty());
    expect_strict<Authentication>(b);
  }
}

TEST(BackendDecoder, AuthenticationMd5Salt) {
  Body b;
  b.i32(5).u8(0xde).u8(0xad).u8(0xbe).u8(0xef);
  Authentication a;
  ASSERT_EQ(decode(b.view(), a), Error::none);
  EXPECT_EQ(a.code, AuthCode::md5_password);
  ASSERT_EQ(a.data.size(), 4u);
  EXPECT_EQ(a.data[0], 0xde);
  EXPECT_EQ(a.data[3], 0xef);
  expect_strict<Authentication>(b);
}

TEST(BackendDecoder, AuthenticationSaslFamilyKeepsTheRest) {
  for (AuthCode code :
       {AuthCode::sasl, AuthCode::sasl_continue, AuthCode::sasl_final, AuthCode::gss_continue}) {
    Body b;
    b.i32(static_cast<std::int32_t>(code)).raw("r=abc,s=xyz,i=4096");
    Authentication a;
    ASSERT_EQ(decode(b.view(), a), Error::none);
    EXPECT_EQ(a.code, code);
    EXPECT_EQ(as_text(a.data), "r=abc,s=xyz,i=4096");
    for (std::size_t n = 0; n < 4; ++n) {
      EXPECT_EQ(decode(Bytes(b.b.data(), n), a), Error::truncated) << n;
    }
  }
}

TEST(BackendDecoder, AuthenticationUnknownCode) {
  for (std::int32_t code : {1, 4, 6, 13, -1, 1000}) {
    Body b;
    b.i32(code);
    Authentication a;
    EXPECT_EQ(decode(b.view(), a), Error::invalid_value) << code;
  }
}

TEST(BackendDecoder, BackendKeyData) {
  Body b;
  b.i32(31337).i32(-5);
  BackendKeyData k;
  ASSERT_EQ(decode(b.view(), k), Error::none);
  EXPECT_EQ(k.process_id, 31337);
  EXPECT_EQ(k.secret_key, -5);
  expect_strict<BackendKeyData>(b);
}

TEST(BackendDecoder, ParameterStatus) {
  Body b;
  b.str("server_version").str("15.4");
  ParameterStatus p;
  ASSERT_EQ(decode(b.view(), p), Error::none);
  EXPECT_EQ(p.name, "server_version");
  EXPECT_EQ(p.value, "15.4");
  expect_strict<ParameterStatus>(b);
}

TEST(BackendDecoder, ReadyForQuery) {
  for (char s : {'I', 'T', 'E'}) {
    Body b;
    b.u8(static_cast<std::uint8_t>(s));
    ReadyForQuery z;
    ASSERT_EQ(decode(b.view(), z), Error::none);
    EXPECT_EQ(static_cast<char>(z.status), s);
    expect_strict<ReadyForQuery>(b);
  }
  for (char s : {'i', 'X', '\0'}) {
    Body b;
    b.u8(static_cast<std::uint8_t>(s));
    ReadyForQuery z;
    EXPECT_EQ(decode(b.view(), z), Error::invalid_value) << int{s};
  }
}

TEST(BackendDecoder, CommandComplete) {
  Body b;
  b.str("INSERT 0 5");
  CommandComplete c;
  ASSERT_EQ(decode(b.view(), c), Error::none);
  EXPECT_EQ(c.tag, "INSERT 0 5");
  expect_strict<CommandComplete>(b);
}

TEST(BackendDecoder, NegotiateProtocolVersion) {
  Body b;
  b.i32(0).i32(2).str("_pq_.a").str("_pq_.b");
  NegotiateProtocolVersion v;
  ASSERT_EQ(decode(b.view(), v), Error::none);
  EXPECT_EQ(v.newest_minor, 0);
  EXPECT_EQ(v.num_options, 2);
  EXPECT_EQ(v.options.size(), 14u);
  expect_strict<NegotiateProtocolVersion>(b);

  Body none;
  none.i32(1).i32(0);
  ASSERT_EQ(decode(none.view(), v), Error::none);
  EXPECT_EQ(v.newest_minor, 1);
  expect_strict<NegotiateProtocolVersion>(none);
}

TEST(BackendDecoder, NegotiateProtocolVersionBadCounts) {
  NegotiateProtocolVersion v;
  Body negative;
  negative.i32(0).i32(-1);
  EXPECT_EQ(decode(negative.view(), v), Error::invalid_value);
  Body too_many;  // a huge count must not be trusted
  too_many.i32(0).i32(INT32_MAX).str("_pq_.a");
  EXPECT_EQ(decode(too_many.view(), v), Error::missing_terminator);
}

TEST(BackendDecoder, CopyResponse) {
  Body b;
  b.u8(1).i16(3).i16(1).i16(1).i16(0);
  CopyResponse c;
  ASSERT_EQ(decode(b.view(), c), Error::none);
  EXPECT_EQ(c.format, 1);
  EXPECT_EQ(c.num_columns, 3);
  expect_strict<CopyResponse>(b);

  Body text;
  text.u8(0).i16(0);
  ASSERT_EQ(decode(text.view(), c), Error::none);
  expect_strict<CopyResponse>(text);
}

TEST(BackendDecoder, CopyResponseInvalidValues) {
  CopyResponse c;
  Body bad_format;
  bad_format.u8(2).i16(0);
  EXPECT_EQ(decode(bad_format.view(), c), Error::invalid_value);
  Body negative_columns;
  negative_columns.u8(0).i16(-1);
  EXPECT_EQ(decode(negative_columns.view(), c), Error::invalid_value);
  Body missing_columns;
  missing_columns.u8(0).i16(2).i16(0);
  EXPECT_EQ(decode(missing_columns.view(), c), Error::truncated);
}

TEST(BackendDecoder, NotificationResponse) {
  Body b;
  b.i32(777).str("jobs").str("{\"id\":1}");
  NotificationResponse n;
  ASSERT_EQ(decode(b.view(), n), Error::none);
  EXPECT_EQ(n.process_id, 777);
  EXPECT_EQ(n.channel, "jobs");
  EXPECT_EQ(n.payload, "{\"id\":1}");
  expect_strict<NotificationResponse>(b);
}

TEST(BackendDecoder, ErrorFieldsKnownAndUnknownCodes) {
  Body b;
  b.u8('S').str("FEHLER").u8('V').str("ERROR").u8('C').str("42P01").u8('M').str(
      "relation \"t\" does not exist");
  b.u8('D').str("some detail").u8('H').str("a hint").u8('P').str("15");
  b.u8('F').str("parse_relation.c").u8('L').str("1392").u8('R').str("parserOpenTable").u8('z').str("future");
  b.u8(0);
  ErrorFields f;
  ASSERT_EQ(decode(b.view(), f), Error::none);
  EXPECT_EQ(f.severity, "FEHLER");
  EXPECT_EQ(f.severity_nonlocalized, "ERROR");
  EXPECT_EQ(f.sqlstate, "42P01");
  EXPECT_EQ(f.message, "relation \"t\" does not exist");
  EXPECT_EQ(f.detail, "some detail");
  EXPECT_EQ(f.hint, "a hint");
  EXPECT_EQ(f.position, "15");
  expect_strict<ErrorFields>(b);
}

TEST(BackendDecoder, ErrorFieldsResetsPreviousValues) {
  Body full;
  full.u8('M').str("old").u8('D').str("old detail").u8(0);
  Body small;
  small.u8('M').str("new").u8(0);
  ErrorFields f;
  ASSERT_EQ(decode(full.view(), f), Error::none);
  ASSERT_EQ(decode(small.view(), f), Error::none);
  EXPECT_EQ(f.message, "new");
  EXPECT_EQ(f.detail, "");
}

TEST(BackendDecoder, ErrorFieldsMissingTerminator) {
  ErrorFields f;
  Body no_final_nul;
  no_final_nul.u8('M').str("boom");
  EXPECT_EQ(decode(no_final_nul.view(), f), Error::truncated);
  Body unterminated_value;
  unterminated_value.u8('M').raw("boom");
  EXPECT_EQ(decode(unterminated_value.view(), f), Error::missing_terminator);
  Body empty;
  EXPECT_EQ(decode(empty.view(), f), Error::truncated);
  Body only_terminator;
  only_terminator.u8(0);
  EXPECT_EQ(decode(only_terminator.view(), f), Error::none);
}

// A default-constructed view has a null data pointer: every decoder must cope (run under UBSan in CI).
TEST(BackendDecoder, EmptyNullViewIsRejectedNotRead) {
  ParameterStatus p;
  EXPECT_EQ(decode(Bytes{}, p), Error::missing_terminator);
  CommandComplete c;
  EXPECT_EQ(decode(Bytes{}, c), Error::missing_terminator);
  ErrorFields f;
  EXPECT_EQ(decode(Bytes{}, f), Error::truncated);
  Authentication a;
  EXPECT_EQ(decode(Bytes{}, a), Error::truncated);
  EXPECT_EQ(for_each_sasl_mechanism(Bytes{}, [](std::string_view) {}), Error::missing_terminator);
}

TEST(BackendDecoder, ForEachSaslMechanism) {
  Body b;
  b.str("SCRAM-SHA-256-PLUS").str("SCRAM-SHA-256").u8(0);
  std::vector<std::string> seen;
  EXPECT_EQ(for_each_sasl_mechanism(b.view(), [&](std::string_view m) { seen.emplace_back(m); }),
            Error::none);
  EXPECT_EQ(seen, (std::vector<std::string>{"SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"}));

  for (std::size_t n = 0; n < b.b.size(); ++n) {
    EXPECT_NE(for_each_sasl_mechanism(Bytes(b.b.data(), n), [](std::string_view) {}), Error::none) << n;
  }
  Body trailing = b;
  trailing.raw("x");
  EXPECT_EQ(for_each_sasl_mechanism(trailing.view(), [](std::string_view) {}), Error::trailing_bytes);

  Body empty_list;
  empty_list.u8(0);
  int calls = 0;
  EXPECT_EQ(for_each_sasl_mechanism(empty_list.view(), [&](std::string_view) { ++calls; }), Error::none);
  EXPECT_EQ(calls, 0);
}

TEST(BackendDecoder, RowsFromTag) {
  EXPECT_EQ(rows_from_tag("INSERT 0 5"), 5u);
  EXPECT_EQ(rows_from_tag("UPDATE 3"), 3u);
  EXPECT_EQ(rows_from_tag("DELETE 0"), 0u);
  EXPECT_EQ(rows_from_tag("SELECT 10"), 10u);
  EXPECT_EQ(rows_from_tag("MERGE 2"), 2u);
  EXPECT_EQ(rows_from_tag("MOVE 4"), 4u);
  EXPECT_EQ(rows_from_tag("FETCH 6"), 6u);
  EXPECT_EQ(rows_from_tag("COPY 7"), 7u);
  EXPECT_EQ(rows_from_tag("SELECT 18446744073709551615"), 18446744073709551615u);
}

TEST(BackendDecoder, RowsFromTagWithoutACount) {
  for (std::string_view tag :
       {"CREATE TABLE", "BEGIN", "SELECT", "INSERT", "INSERT ", "INSERT 0 ", "SELECT x", "SELECT -1",
        "SELECT 18446744073709551616", "UPDATE 3 ", "SELECTED 3", ""}) {
    EXPECT_FALSE(rows_from_tag(tag).has_value()) << '"' << tag << '"';
  }
}

TEST(BackendDecoder, DataRow) {
  const std::uint8_t body[] = {0, 3, 0, 0, 0, 2, 'h', 'i', 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0};
  DataRow row;
  ASSERT_EQ(decode(Bytes(body, sizeof body), row), Error::none);
  ASSERT_EQ(row.columns.size(), 3u);
  ASSERT_TRUE(row.columns[0].has_value());
  EXPECT_EQ(as_text(*row.columns[0]), "hi");
  EXPECT_FALSE(row.columns[1].has_value());
  ASSERT_TRUE(row.columns[2].has_value());
  EXPECT_TRUE(row.columns[2]->empty());
}

TEST(BackendDecoder, DataRowMalformed) {
  DataRow row;
  const std::uint8_t negative_count[] = {0xff, 0xff};
  EXPECT_NE(decode(Bytes(negative_count, sizeof negative_count), row), Error::none);
  const std::uint8_t overrun[] = {0, 1, 0, 0, 0, 9, 'x'};
  EXPECT_NE(decode(Bytes(overrun, sizeof overrun), row), Error::none);
  const std::uint8_t bad_length[] = {0, 1, 0xff, 0xff, 0xff, 0xfe};
  EXPECT_NE(decode(Bytes(bad_length, sizeof bad_length), row), Error::none);
  const std::uint8_t trailing[] = {0, 0, 'x'};
  EXPECT_NE(decode(Bytes(trailing, sizeof trailing), row), Error::none);
  const std::uint8_t missing_column[] = {0, 2, 0, 0, 0, 0};
  EXPECT_NE(decode(Bytes(missing_column, sizeof missing_column), row), Error::none);
}

}  // namespace
}  // namespace pgw::protocol::backend
