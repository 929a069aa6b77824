// Unit tests for the encoder: every encode:: function round-trips through the framer and its decoder.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "pgw/protocol/encoder.hpp"
#include "pgw/protocol/framer.hpp"
#include "pgw/protocol/messages.hpp"

namespace pgw::protocol {
namespace {

using namespace std::string_view_literals;

// Frames the single typed message in out, checking that its length word matches the bytes written.
Frame one_typed(const std::vector<std::uint8_t>& out, char type) {
  EXPECT_GE(out.size(), typed_header_size);
  if (out.size() < typed_header_size) return {};
  EXPECT_EQ(out[0], static_cast<std::uint8_t>(type));
  EXPECT_EQ(load_u32(out.data() + 1), out.size() - 1) << "length word";
  FrameResult r = parse_frame(Bytes(out), protocol_max_message_length);
  EXPECT_EQ(r.status, FrameStatus::complete);
  EXPECT_EQ(r.frame.wire_size, out.size());
  EXPECT_EQ(r.frame.type, type);
  return r.frame;
}

Frame one_untyped(const std::vector<std::uint8_t>& out) {
  EXPECT_GE(out.size(), 4u);
  if (out.size() < 4) return {};
  EXPECT_EQ(load_u32(out.data()), out.size()) << "length word";
  FrameResult r = parse_startup_frame(Bytes(out));
  EXPECT_EQ(r.status, FrameStatus::complete);
  EXPECT_EQ(r.frame.wire_size, out.size());
  return r.frame;
}

TEST(Encoder, SslRequest) {
  std::vector<std::uint8_t> out;
  Encoder e(out);
  encode::ssl_request(e);
  ASSERT_EQ(e.error(), Error::none);
  EXPECT_EQ(out, (std::vector<std::uint8_t>{0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f}));
  InitialPacket p;
  ASSERT_EQ(decode_initial_packet(one_untyped(out).body, p), Error::none);
  EXPECT_EQ(p.kind, InitialPacketKind::ssl_request);
}

TEST(Encoder, CancelRequest) {
  std::vector<std::uint8_t> out;
  Encoder e(out);
  encode::cancel_request(e, {123, -456});
  InitialPacket p;
  ASSERT_EQ(decode_initial_packet(one_untyped(out).body, p), Error::none);
  EXPECT_EQ(p.kind, InitialPacketKind::cancel_request);
  EXPECT_EQ(p.cancel.process_id, 123);
  EXPECT_EQ(p.cancel.secret_key, -456);
  EXPECT_EQ(out.size(), 16u);
}

TEST(Encoder, StartupMessage) {
  std::vector<std::uint8_t> out;
  Encoder e(out);
  std::array<StartupParameter, 3> params{
      {{"user", "alice"}, {"database", "db"}, {"application_name", "pgwarden test"}}};
  encode::startup_message(e, params);
  ASSERT_EQ(e.error(), Error::none);
  InitialPacket p;
  ASSERT_EQ(decode_initial_packet(one_untyped(out).body, p), Error::none);
  ASSERT_EQ(p.kind, InitialPacketKind::startup);
  EXPECT_EQ(p.startup.major, 3);
  EXPECT_EQ(p.startup.minor, 0);
  ASSERT_EQ(p.startup.parameters.size(), 3u);
  EXPECT_EQ(p.startup.user(), "alice");
  EXPECT_EQ(p.startup.database(), "db");
  EXPECT_EQ(p.startup.get("application_name"), "pgwarden test");
}

TEST(Encoder, PasswordMessage) {
  std::vector<std::uint8_t> out;
  Encoder e(out);
  encode::password_message(e, "s3cret");
  frontend::PasswordMessage m;
  ASSERT_EQ(frontend::decode(one_typed(out, 'p').body, m), Error::none);
  EXPECT_EQ(m.password, "s3cret");
}

TEST(Encoder, SaslInitialResponse) {
  std::vector<std::uint8_t> out;
  Encoder e(out);
  encode::sasl_initial_response(e, "SCRAM-SHA-256", "n,,n=,r=abc");
  frontend::SASLInitialResponse m;
  ASSERT_EQ(frontend::decode(one_typed(out, 'p').body, m), Error::none);
  EXPECT_EQ(m.mechanism, "SCRAM-SHA-256");
  EXPECT_TRUE(m.has_data);
  EXPECT_EQ(as_text(m.data), "n,,n=,r=abc");
}

TEST(Encoder, SaslResponse) {
  std::vector<std::uint8_t> out;
  Encoder e(out);
  encode::sasl_response(e, "c=biws,r=abc,p=xyz");
  frontend::SASLResponse m;
  ASSERT_EQ(frontend::decode(one_typed(out, 'p').body, m), Error::none);
  EXPECT_EQ(as_text(m.data), "c=biws,r=abc,p=xyz");
}

TEST(Encoder, Query) {
  std::vector<std::uint8_t> out;
  Encoder e(out);
  encode::query(e, "select 'x'");
  frontend::Query m;
  ASSERT_EQ(frontend::decode(one_typed(out, 'Q').body, m), Error::none);
  EXPECT_EQ(m.query, "select 'x'");
}

TEST(Encoder, EmptyBodyMessages) {
  struct Case {
    void (*fn)(Encoder&);
    char type;
  };
  for (Case c : {Case{encode::sync, 'S'}, Case{encode::flush, 'H'}, Case{encode::terminate, 'X'},
                 Case{encode::empty_query_response, 'I'}}) {
    std::vector<std::uint8_t> out;
    Encoder e(out);
    c.fn(e);
    EXPECT_EQ(out, (std::vector<std::uint8_t>{static_cast<std::uint8_t>(c.type), 0, 0, 0, 4}));
    EXPECT_TRUE(one_typed(out, c.type).body.empty());
  }
}

TEST(Encoder, Parse) {
  std::vector<std::uint8_t> out;
  Encoder e(out);
  const std::array<std::uint8_t, 8> oids{0, 0, 0, 23, 0, 0, 0, 25};
  encode::parse(e, "s1", "select $1, $2", oids, 2);
  frontend::Parse m;
  ASSERT_EQ(frontend::decode(one_typed(out, 'P').body, m), Error::none);
  EXPECT_EQ(m.statement, "s1");
  EXPECT_EQ(m.query, "select $1, $2");
  EXPECT_EQ(m.num_parameter_types, 2);
  EXPECT_TRUE(std::equal(m.parameter_types.begin(), m.parameter_types.end(), oids.begin(), oids.end()));
}

TEST(Encoder, DescribeAndClose) {
  for (char target : {'S', 'P'}) {
    std::vector<std::uint8_t> out;
    Encoder e(out);
    encode::describe(e, target, "name");
    frontend::Describe d;
    ASSERT_EQ(frontend::decode(one_typed(out, 'D').body, d), Error::none);
    EXPECT_EQ(d.target, target);
    EXPECT_EQ(d.name, "name");

    out.clear();
    encode::close(e, target, "");
    frontend::Close c;
    ASSERT_EQ(frontend::decode(one_typed(out, 'C').body, c), Error::none);
    EXPECT_EQ(c.target, target);
    EXPECT_EQ(c.name, "");
  }
}

TEST(Encoder, AuthenticationRequests) {
  std::vector<std::uint8_t> out;
  Encoder e(out);
  encode::authentication_ok(e);
  backend::Authentication a;
  ASSERT_EQ(backend::decode(one_typed(out, 'R').body, a), Error::none);
  EXPECT_EQ(a.code, backend::AuthCode::ok);

  out.clear();
  encode::authentication_cleartext(e);
  ASSERT_EQ(backend::decode(one_typed(out, 'R').body, a), Error::none);
  EXPECT_EQ(a.code, backend::AuthCode::cleartext_password);

  out.clear();
  const std::array<std::uint8_t, 4> salt{9, 8, 7, 6};
  encode::authentication_md5(e, salt);
  ASSERT_EQ(backend::decode(one_typed(out, 'R').body, a), Error::none);
  EXPECT_EQ(a.code, backend::AuthCode::md5_password);
  EXPECT_TRUE(std::equal(a.data.begin(), a.data.end(), salt.begin(), salt.end()));
}

TEST(Encoder, AuthenticationSasl) {
  std::vector<std::uint8_t> out;
  Encoder e(out);
  const std::array<std::string_view, 2> mechanisms{"SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"};
  encode::authentication_sasl(e, mechanisms);
  backend::Authentication a;
  ASSERT_EQ(backend::decode(one_typed(out, 'R').body, a), Error::none);
  EXPECT_EQ(a.code, backend::AuthCode::sasl);
  std::vector<std::string> seen;
  ASSERT_EQ(backend::for_each_sasl_mechanism(a.data, [&](std::string_view m) { seen.emplace_back(m); }),
            Error::none);
  EXPECT_EQ(seen, (std::vector<std::string>{"SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"}));
}

TEST(Encoder, AuthenticationSaslContinueAndFinal) {
  std::vector<std::uint8_t> out;
  Encoder e(out);
  encode::authentication_sasl_continue(e, "r=abc,s=c2FsdA==,i=4096");
  backend::Authentication a;
  ASSERT_EQ(backend::decode(one_typed(out, 'R').body, a), Error::none);
  EXPECT_EQ(a.code, backend::AuthCode::sasl_continue);
  EXPECT_EQ(as_text(a.data), "r=abc,s=c2FsdA==,i=4096");

  out.clear();
  encode::authentication_sasl_final(e, "v=xyz");
  ASSERT_EQ(backend::decode(one_typed(out, 'R').body, a), Error::none);
  EXPECT_EQ(a.code, backend::AuthCode::sasl_final);
  EXPECT_EQ(as_text(a.data), "v=xyz");
}

TEST(Encoder, BackendKeyData) {
  std::vector<std::uint8_t> out;
  Encoder e(out);
  encode::backend_key_data(e, {INT32_MAX, INT32_MIN});
  backend::BackendKeyData k;
  ASSERT_EQ(backend::decode(one_typed(out, 'K').body, k), Error::none);
  EXPECT_EQ(k.process_id, INT32_MAX);
  EXPECT_EQ(k.secret_key, INT32_MIN);
}

TEST(Encoder, ParameterStatus) {
  std::vector<std::uint8_t> out;
  Encoder e(out);
  encode::parameter_status(e, "TimeZone", "UTC");
  backend::ParameterStatus p;
  ASSERT_EQ(backend::decode(one_typed(out, 'S').body, p), Error::none);
  EXPECT_EQ(p.name, "TimeZone");
  EXPECT_EQ(p.value, "UTC");
}

TEST(Encoder, ReadyForQuery) {
  using backend::TransactionStatus;
  for (TransactionStatus s :
       {TransactionStatus::idle, TransactionStatus::in_transaction, TransactionStatus::failed}) {
    std::vector<std::uint8_t> out;
    Encoder e(out);
    encode::ready_for_query(e, s);
    backend::ReadyForQuery z;
    ASSERT_EQ(backend::decode(one_typed(out, 'Z').body, z), Error::none);
    EXPECT_EQ(z.status, s);
  }
}

TEST(Encoder, NegotiateProtocolVersion) {
  std::vector<std::uint8_t> out;
  Encoder e(out);
  const std::array<std::string_view, 2> options{"_pq_.a", "_pq_.bb"};
  encode::negotiate_protocol_version(e, 0, options);
  backend::NegotiateProtocolVersion v;
  ASSERT_EQ(backend::decode(one_typed(out, 'v').body, v), Error::none);
  EXPECT_EQ(v.newest_minor, 0);
  EXPECT_EQ(v.num_options, 2);
  EXPECT_EQ(as_text(v.options), "_pq_.a\0_pq_.bb\0"sv);

  out.clear();
  encode::negotiate_protocol_version(e, 0, {});
  ASSERT_EQ(backend::decode(one_typed(out, 'v').body, v), Error::none);
  EXPECT_EQ(v.num_options, 0);
}

TEST(Encoder, ErrorAndNoticeResponse) {
  Notice n{"FATAL", "28P01", "password authentication failed", "for user x", "check the auth file"};
  for (char type : {'E', 'N'}) {
    std::vector<std::uint8_t> out;
    Encoder e(out);
    if (type == 'E') {
      encode::error_response(e, n);
    } else {
      encode::notice_response(e, n);
    }
    backend::ErrorFields f;
    ASSERT_EQ(backend::decode(one_typed(out, type).body, f), Error::none);
    EXPECT_EQ(f.severity, "FATAL");
    EXPECT_EQ(f.severity_nonlocalized, "FATAL");
    EXPECT_EQ(f.sqlstate, "28P01");
    EXPECT_EQ(f.message, "password authentication failed");
    EXPECT_EQ(f.detail, "for user x");
    EXPECT_EQ(f.hint, "check the auth file");
  }
}

TEST(Encoder, ErrorResponseOmitsEmptyDetailAndHint) {
  std::vector<std::uint8_t> out;
  Encoder e(out);
  encode::error_response(e, Notice{"ERROR", "08P01", "bad", "", ""});
  Frame f = one_typed(out, 'E');
  EXPECT_EQ(as_text(f.body), "SERROR\0VERROR\0C08P01\0Mbad\0\0"sv);
}

TEST(Encoder, CommandComplete) {
  std::vector<std::uint8_t> out;
  Encoder e(out);
  encode::command_complete(e, "SELECT 3");
  backend::CommandComplete c;
  ASSERT_EQ(backend::decode(one_typed(out, 'C').body, c), Error::none);
  EXPECT_EQ(c.tag, "SELECT 3");
  EXPECT_EQ(backend::rows_from_tag(c.tag), 3u);
}

TEST(Encoder, MessagesAppendBackToBack) {
  std::vector<std::uint8_t> out;
  Encoder e(out);
  encode::query(e, "a");
  encode::sync(e);
  encode::query(e, "bb");
  std::vector<char> types;
  std::size_t pos = 0;
  while (pos < out.size()) {
    FrameResult r = parse_frame(Bytes(out).subspan(pos), 1024);
    ASSERT_EQ(r.status, FrameStatus::complete);
    types.push_back(r.frame.type);
    pos += r.frame.wire_size;
  }
  EXPECT_EQ(types, (std::vector<char>{'Q', 'S', 'Q'}));
}

TEST(Encoder, CstringWithEmbeddedNulSetsError) {
  std::vector<std::uint8_t> out;
  Encoder e(out);
  encode::query(e, "select 1\0; drop table t"sv);
  EXPECT_EQ(e.error(), Error::string_has_nul);
  // The error sticks through later, valid messages.
  encode::query(e, "select 2");
  EXPECT_EQ(e.error(), Error::string_has_nul);
}

TEST(Encoder, EmbeddedNulInParameterNameSetsError) {
  std::vector<std::uint8_t> out;
  Encoder e(out);
  std::array<StartupParameter, 1> params{{{"us\0er"sv, "x"}}};
  encode::startup_message(e, params);
  EXPECT_EQ(e.error(), Error::string_has_nul);
}

TEST(Encoder, FirstErrorIsKept) {
  std::vector<std::uint8_t> out;
  Encoder e(out);
  EXPECT_EQ(e.error(), Error::none);
  e.begin('Q').cstring("\0"sv).end();
  EXPECT_EQ(e.error(), Error::string_has_nul);
  EXPECT_EQ(&e.buffer(), &out);
}

TEST(Encoder, EndWithoutBeginDoesNothing) {
  std::vector<std::uint8_t> out;
  Encoder e(out);
  e.end();
  EXPECT_TRUE(out.empty());
  e.begin('S').end().end();
  EXPECT_EQ(out, (std::vector<std::uint8_t>{'S', 0, 0, 0, 4}));
}

TEST(Encoder, PrimitivesAreBigEndian) {
  std::vector<std::uint8_t> out;
  Encoder e(out);
  e.u8(0xab).i16(-2).i32(0x01020304).raw(std::string_view("xy"));
  EXPECT_EQ(out, (std::vector<std::uint8_t>{0xab, 0xff, 0xfe, 1, 2, 3, 4, 'x', 'y'}));
}

TEST(Encoder, BindTextAndExecute) {
  std::vector<std::uint8_t> out;
  Encoder e(out);
  std::array<std::optional<std::string_view>, 3> params{"alice"sv, std::nullopt, ""sv};
  encode::bind_text(e, "p1", "s1", params);
  ASSERT_EQ(e.error(), Error::none);
  Frame f = one_typed(out, frontend::bind);
  frontend::Bind b;
  ASSERT_EQ(decode(f.body, b), Error::none);
  EXPECT_EQ(b.portal, "p1");
  EXPECT_EQ(b.statement, "s1");
  EXPECT_EQ(b.num_parameter_formats, 0);
  EXPECT_EQ(b.num_parameters, 3);
  EXPECT_EQ(b.num_result_formats, 0);
  const std::uint8_t expected_params[] = {0,    0,    0,    5,    'a', 'l', 'i', 'c', 'e',
                                          0xff, 0xff, 0xff, 0xff, 0,   0,   0,   0};
  EXPECT_TRUE(std::equal(b.parameters.begin(), b.parameters.end(), std::begin(expected_params),
                         std::end(expected_params)));

  out.clear();
  Encoder x(out);
  encode::execute(x, "p1", 7);
  frontend::Execute ex;
  ASSERT_EQ(decode(one_typed(out, frontend::execute).body, ex), Error::none);
  EXPECT_EQ(ex.portal, "p1");
  EXPECT_EQ(ex.max_rows, 7);
}

TEST(Encoder, RowDescriptionAndDataRowOfALocalResult) {
  std::vector<std::uint8_t> out;
  Encoder e(out);
  const std::array<encode::ColumnDescription, 2> columns{{{"database", 25, -1}, {"cl_active", 23, 4}}};
  encode::row_description(e, columns);
  ASSERT_EQ(e.error(), Error::none);
  Frame f = one_typed(out, backend::row_description);
  // count, then per column: name, table oid, attnum, type oid, size, typmod, format (55.7 RowDescription)
  const std::vector<std::uint8_t> expected{
      0, 2,  'd',  'a',  't',  'a',  'b',  'a',  's', 'e', 0,   0,   0,   0,    0,    0,    0,    0,   0,
      0, 25, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0,   0,   'c', 'l', '_', 'a',  'c',  't',  'i',  'v', 'e',
      0, 0,  0,    0,    0,    0,    0,    0,    0,   0,   23,  0,   4,   0xff, 0xff, 0xff, 0xff, 0,   0};
  EXPECT_EQ(std::vector<std::uint8_t>(f.body.begin(), f.body.end()), expected);

  out.clear();
  const std::array<std::optional<std::string_view>, 3> values{{"app"sv, std::nullopt, ""sv}};
  encode::data_row(e, values);
  ASSERT_EQ(e.error(), Error::none);
  f = one_typed(out, backend::data_row);
  backend::DataRow row;
  ASSERT_EQ(decode(f.body, row), Error::none);
  ASSERT_EQ(row.columns.size(), 3u);
  ASSERT_TRUE(row.columns[0]);
  EXPECT_EQ(std::string(row.columns[0]->begin(), row.columns[0]->end()), "app");
  EXPECT_FALSE(row.columns[1]);
  ASSERT_TRUE(row.columns[2]);
  EXPECT_TRUE(row.columns[2]->empty());
}

}  // namespace
}  // namespace pgw::protocol
