// Unit tests for the PROXY protocol parser: v1 and v2 headers, need-more on every prefix, invalid input
// early.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "pgw/protocol/proxy_header.hpp"

namespace pgw::protocol::proxy_header {
namespace {

using namespace std::string_view_literals;

using ByteVec = std::vector<std::uint8_t>;

ByteVec bytes(std::string_view s) {
  return ByteVec(s.begin(), s.end());
}

Result parse_all(const ByteVec& v) {
  return parse(Bytes(v.data(), v.size()));
}

constexpr std::string_view v2_sig = "\r\n\r\n\0\r\nQUIT\n"sv;

// A v2 header: signature, version/command byte, family byte, then the payload with its length word.
ByteVec v2(std::uint8_t ver_cmd, std::uint8_t fam, const ByteVec& payload) {
  ByteVec v = bytes(v2_sig);
  v.push_back(ver_cmd);
  v.push_back(fam);
  v.push_back(static_cast<std::uint8_t>(payload.size() >> 8));
  v.push_back(static_cast<std::uint8_t>(payload.size()));
  v.insert(v.end(), payload.begin(), payload.end());
  return v;
}

ByteVec cat(ByteVec a, const ByteVec& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

Address v4(std::uint8_t a, std::uint8_t b, std::uint8_t c, std::uint8_t d, std::uint16_t port) {
  Address x;
  x.family = Address::Family::inet;
  x.bytes[0] = a;
  x.bytes[1] = b;
  x.bytes[2] = c;
  x.bytes[3] = d;
  x.port = port;
  return x;
}

// Every strict prefix needs more; the whole header, and the header with bytes after it, is done at its size.
void expect_prefixes_need_more(const ByteVec& header) {
  for (std::size_t n = 0; n < header.size(); ++n) {
    Result r = parse(Bytes(header.data(), n));
    EXPECT_EQ(r.status, Status::need_more) << "prefix " << n << ": " << r.reason;
  }
  ByteVec more = cat(header, bytes("\x00\x00\x00\x08\x04\xd2\x16\x2f"sv));
  Result r = parse_all(more);
  ASSERT_EQ(r.status, Status::done) << r.reason;
  EXPECT_EQ(r.header.size, header.size());
}

void expect_invalid(const ByteVec& v, std::string_view reason_part = {}) {
  Result r = parse_all(v);
  EXPECT_EQ(r.status, Status::invalid);
  EXPECT_FALSE(r.reason.empty());
  EXPECT_NE(r.reason.find(reason_part), std::string_view::npos) << r.reason;
}

void expect_invalid(std::string_view text, std::string_view reason_part = {}) {
  expect_invalid(bytes(text), reason_part);
}

// The connection both ProxyHeaderV1.Tcp4 and ProxyHeaderV2.ProxyInet describe, in text and in binary.
void expect_example_connection(const Result& r) {
  EXPECT_EQ(r.header.command, Command::proxy);
  ASSERT_TRUE(r.header.source && r.header.destination);
  EXPECT_EQ(*r.header.source, v4(192, 168, 0, 1, 56324));
  EXPECT_EQ(*r.header.destination, v4(10, 0, 0, 2, 6432));
  EXPECT_TRUE(r.header.tlvs.empty());
}

TEST(ProxyHeaderV1, Tcp4) {
  ByteVec h = bytes("PROXY TCP4 192.168.0.1 10.0.0.2 56324 6432\r\n");
  Result r = parse_all(h);
  ASSERT_EQ(r.status, Status::done) << r.reason;
  EXPECT_EQ(r.header.version, 1);
  EXPECT_EQ(r.header.size, h.size());
  expect_example_connection(r);
  expect_prefixes_need_more(h);
}

TEST(ProxyHeaderV1, Tcp6) {
  ByteVec h = bytes("PROXY TCP6 2001:db8::1 ::ffff:10.0.0.2 0 65535\r\n");
  Result r = parse_all(h);
  ASSERT_EQ(r.status, Status::done) << r.reason;
  ASSERT_TRUE(r.header.source && r.header.destination);
  EXPECT_EQ(r.header.source->family, Address::Family::inet6);
  EXPECT_EQ(r.header.source->bytes,
            (std::array<std::uint8_t, 16>{0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}));
  EXPECT_EQ(r.header.source->port, 0);
  EXPECT_EQ(r.header.destination->bytes,
            (std::array<std::uint8_t, 16>{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 2}));
  EXPECT_EQ(r.header.destination->port, 65535);
  expect_prefixes_need_more(h);
}

TEST(ProxyHeaderV1, LongestLinesAreAccepted) {
  // 104 bytes: the longest TCP6 line; 107: the worst-case UNKNOWN line of the specification.
  const std::string full6 = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff";
  ByteVec tcp6 = bytes("PROXY TCP6 " + full6 + " " + full6 + " 65535 65535\r\n");
  ASSERT_EQ(tcp6.size(), 104u);
  EXPECT_EQ(parse_all(tcp6).status, Status::done);
  ByteVec unknown = bytes("PROXY UNKNOWN " + full6 + " " + full6 + " 65535 65535\r\n");
  ASSERT_EQ(unknown.size(), max_v1_size);
  Result r = parse_all(unknown);
  ASSERT_EQ(r.status, Status::done) << r.reason;
  EXPECT_EQ(r.header.size, max_v1_size);
  expect_prefixes_need_more(unknown);
}

TEST(ProxyHeaderV1, UnknownGivesNoAddress) {
  for (std::string_view line : {"PROXY UNKNOWN\r\n"sv, "PROXY UNKNOWN anything at all, ignored\r\n"sv}) {
    ByteVec h = bytes(line);
    Result r = parse_all(h);
    ASSERT_EQ(r.status, Status::done) << line;
    EXPECT_FALSE(r.header.source);
    EXPECT_FALSE(r.header.destination);
    EXPECT_EQ(r.header.size, h.size());
    expect_prefixes_need_more(h);
  }
}

TEST(ProxyHeaderV1, TooLongIsInvalid) {
  ByteVec h = bytes("PROXY UNKNOWN " + std::string(92, 'x') + "\r\n");  // 108 bytes
  ASSERT_EQ(h.size(), max_v1_size + 1);
  expect_invalid(h, "107");
  // Invalid as soon as 107 bytes hold no CRLF, and when the CR is byte 107.
  ByteVec no_crlf = bytes("PROXY UNKNOWN " + std::string(200, 'x'));
  expect_invalid(ByteVec(no_crlf.begin(), no_crlf.begin() + max_v1_size), "107");
  EXPECT_EQ(parse(Bytes(no_crlf.data(), max_v1_size - 1)).status, Status::need_more);
  ByteVec cr_last = bytes("PROXY UNKNOWN " + std::string(92, 'x') + "\r");
  ASSERT_EQ(cr_last.size(), max_v1_size);
  expect_invalid(cr_last, "107");
}

TEST(ProxyHeaderV1, BadPorts) {
  for (std::string_view port :
       {"65536"sv, "99999"sv, "+1"sv, "-1"sv, "01"sv, "00"sv, "1a"sv, "123456"sv, ""sv, "0x10"sv}) {
    expect_invalid("PROXY TCP4 1.2.3.4 5.6.7.8 " + std::string(port) + " 80\r\n", "port");
    expect_invalid("PROXY TCP4 1.2.3.4 5.6.7.8 80 " + std::string(port) + "\r\n", "");
  }
}

TEST(ProxyHeaderV1, BadAddresses) {
  for (std::string_view line : {
           "PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n"sv,
           "PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n"sv,
           "PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n"sv,    // heading zero
           "PROXY TCP4 ::1 5.6.7.8 1 2\r\n"sv,         // family mismatch
           "PROXY TCP6 1.2.3.4 ::1 1 2\r\n"sv,         // family mismatch
           "PROXY TCP6 ::1::2 ::1 1 2\r\n"sv,          // two ::
           "PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n"sv,    // zone id
           "PROXY TCP4 localhost 5.6.7.8 1 2\r\n"sv,   // host name
           "PROXY TCP4 0x7f.0.0.1 5.6.7.8 1 2\r\n"sv,  // not decimal
           "PROXY TCP4 1.2.3.4 5.6.7.8.9 1 2\r\n"sv,
       }) {
    expect_invalid(line, "address");
  }
}

TEST(ProxyHeaderV1, BadSyntax) {
  expect_invalid("PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n"sv, "few");
  expect_invalid("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n"sv, "many");
  expect_invalid("PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n"sv);  // two spaces
  expect_invalid("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n"sv);  // trailing space
  expect_invalid("PROXY TCP4\r\n"sv);
  expect_invalid("PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n"sv, "protocol");
  expect_invalid("PROXY UNKNOWNX\r\n"sv, "protocol");
  expect_invalid("PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n"sv, "protocol");
  expect_invalid("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n"sv, "control");  // LF without CR
  expect_invalid("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX"sv, "CR");
  expect_invalid("PROXY TCP4 1.2.3.4\t5.6.7.8 1 2\r\n"sv, "control");
  expect_invalid("PROXY UNKNOWN \xff\r\n"sv, "non-ASCII");
  expect_invalid("PROXY\r\n"sv, "not a PROXY");
  expect_invalid("proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n"sv, "not a PROXY");
}

TEST(ProxyHeaderV1, WrongProtocolWordFailsBeforeTheLineEnds) {
  expect_invalid("PROXY X"sv, "protocol");
  expect_invalid("PROXY TCP5"sv, "protocol");
  expect_invalid("PROXY TCP "sv, "protocol");
  expect_invalid("PROXY UNKNOWN4"sv, "protocol");
  expect_invalid("PROXY  "sv, "protocol");
  EXPECT_EQ(parse_all(bytes("PROXY UNKN")).status, Status::need_more);
  EXPECT_EQ(parse_all(bytes("PROXY TCP6 ")).status, Status::need_more);
}

TEST(ProxyHeaderV2, ProxyInet) {
  ByteVec h = v2(0x21, 0x11, {192, 168, 0, 1, 10, 0, 0, 2, 0xdc, 0x04, 0x19, 0x20});
  Result r = parse_all(h);
  ASSERT_EQ(r.status, Status::done) << r.reason;
  EXPECT_EQ(r.header.version, 2);
  EXPECT_EQ(r.header.size, 28u);
  expect_example_connection(r);
  expect_prefixes_need_more(h);
}

TEST(ProxyHeaderV2, ProxyInet6) {
  ByteVec payload{0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,  // source
                  0,    0,    0,    0,    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,  // destination
                  0xff, 0xff, 0x19, 0x20};
  ByteVec h = v2(0x21, 0x21, payload);
  Result r = parse_all(h);
  ASSERT_EQ(r.status, Status::done) << r.reason;
  ASSERT_TRUE(r.header.source && r.header.destination);
  EXPECT_EQ(r.header.source->family, Address::Family::inet6);
  EXPECT_EQ(r.header.source->bytes[0], 0x20);
  EXPECT_EQ(r.header.source->bytes[15], 1);
  EXPECT_EQ(r.header.source->port, 65535);
  EXPECT_EQ(r.header.destination->bytes[15], 1);
  EXPECT_EQ(r.header.destination->port, 6432);
  EXPECT_EQ(r.header.size, 52u);
  expect_prefixes_need_more(h);
}

TEST(ProxyHeaderV2, TlvsAreSkippedAndExposed) {
  ByteVec addresses{1, 2, 3, 4, 5, 6, 7, 8, 0, 1, 0, 2};
  ByteVec tlvs{0x04, 0x00, 0x00,                             // NOOP, empty
               0x05, 0x00, 0x03, 'a',  'b', 'c',             // UNIQUE_ID
               0xea, 0x00, 0x05, 0x01, 'v', 'p', 'c', 'e'};  // AWS VPC endpoint
  ByteVec h = v2(0x21, 0x11, cat(addresses, tlvs));
  Result r = parse_all(h);
  ASSERT_EQ(r.status, Status::done) << r.reason;
  EXPECT_EQ(*r.header.source, v4(1, 2, 3, 4, 1));
  EXPECT_EQ(*r.header.destination, v4(5, 6, 7, 8, 2));
  ASSERT_EQ(r.header.tlvs.size(), tlvs.size());
  EXPECT_TRUE(std::equal(tlvs.begin(), tlvs.end(), r.header.tlvs.begin()));
  EXPECT_EQ(r.header.tlvs.data(), h.data() + 16 + 12);
  expect_prefixes_need_more(h);
}

TEST(ProxyHeaderV2, TlvOverrunIsInvalid) {
  ByteVec addresses{1, 2, 3, 4, 5, 6, 7, 8, 0, 1, 0, 2};
  expect_invalid(v2(0x21, 0x11, cat(addresses, {0x05, 0x00, 0x04, 'a', 'b', 'c'})), "TLV");
  expect_invalid(v2(0x21, 0x11, cat(addresses, {0x05, 0x00})), "TLV");
  expect_invalid(v2(0x21, 0x11, cat(addresses, {0x05})), "TLV");
  expect_invalid(v2(0x21, 0x11, cat(addresses, {0x04, 0x00, 0x00, 0x05, 0xff, 0xff})), "TLV");
}

TEST(ProxyHeaderV2, LocalGivesNoAddress) {
  // LOCAL (health checks): the block, whatever its family, is discarded.
  for (const ByteVec& h : {v2(0x20, 0x00, {}), v2(0x20, 0x11, {1, 2, 3, 4, 5, 6, 7, 8, 0, 1, 0, 2}),
                           v2(0x20, 0x99, {0xde, 0xad})}) {
    Result r = parse_all(h);
    ASSERT_EQ(r.status, Status::done) << r.reason;
    EXPECT_EQ(r.header.command, Command::local);
    EXPECT_FALSE(r.header.source);
    EXPECT_FALSE(r.header.destination);
    EXPECT_EQ(r.header.size, h.size());
    expect_prefixes_need_more(h);
  }
}

TEST(ProxyHeaderV2, OurLocalHeaderParsesAsLocal) {
  const auto h = pgw::protocol::proxy_header::v2_local_header();
  EXPECT_EQ(ByteVec(h.begin(), h.end()), v2(0x20, 0x00, {}));
  Result r = parse_all(ByteVec(h.begin(), h.end()));
  ASSERT_EQ(r.status, Status::done) << r.reason;
  EXPECT_EQ(r.header.command, Command::local);
  EXPECT_EQ(r.header.size, h.size());
}

TEST(ProxyHeaderV2, UnspecAndUnixGiveNoAddress) {
  ByteVec unspec = v2(0x21, 0x00, {});
  Result r = parse_all(unspec);
  ASSERT_EQ(r.status, Status::done) << r.reason;
  EXPECT_EQ(r.header.command, Command::proxy);
  EXPECT_FALSE(r.header.source);
  expect_prefixes_need_more(unspec);

  ByteVec unix_block(216, 0);
  unix_block[0] = '/';
  ByteVec unix_stream = v2(0x21, 0x31, cat(unix_block, {0x04, 0x00, 0x00}));
  r = parse_all(unix_stream);
  ASSERT_EQ(r.status, Status::done) << r.reason;
  EXPECT_FALSE(r.header.source);
  EXPECT_EQ(r.header.tlvs.size(), 3u);
  expect_invalid(v2(0x21, 0x31, ByteVec(215, 0)), "address block");
}

TEST(ProxyHeaderV2, HeaderFieldsAreCheckedBeforeThePayloadArrives) {
  // 16 bytes are enough to refuse: the payload is never waited for.
  auto head = [](std::uint8_t ver_cmd, std::uint8_t fam, std::uint16_t len) {
    ByteVec v = bytes(v2_sig);
    v.insert(v.end(), {ver_cmd, fam, static_cast<std::uint8_t>(len >> 8), static_cast<std::uint8_t>(len)});
    return v;
  };
  expect_invalid(head(0x11, 0x11, 12), "version");
  expect_invalid(head(0x31, 0x11, 12), "version");
  expect_invalid(head(0x01, 0x11, 12), "version");
  expect_invalid(head(0x22, 0x11, 12), "command");
  expect_invalid(head(0x2f, 0x11, 12), "command");
  expect_invalid(head(0x21, 0x12, 12), "datagram");
  expect_invalid(head(0x21, 0x22, 36), "datagram");
  expect_invalid(head(0x21, 0x32, 216), "datagram");
  expect_invalid(head(0x21, 0x10, 12), "family");
  expect_invalid(head(0x21, 0x41, 12), "family");
  expect_invalid(head(0x21, 0x01, 0), "family");
  expect_invalid(head(0x21, 0x11, 11), "address block");
  expect_invalid(head(0x21, 0x21, 35), "address block");
  expect_invalid(head(0x21, 0x11, max_v2_payload + 1), "longer");
  expect_invalid(head(0x20, 0x00, 0xffff), "longer");
  EXPECT_EQ(parse_all(head(0x21, 0x11, max_v2_payload)).status, Status::need_more);
}

TEST(ProxyHeaderV2, LargestPayloadIsAccepted) {
  ByteVec payload{1, 2, 3, 4, 5, 6, 7, 8, 0, 1, 0, 2};
  const std::size_t value = max_v2_payload - payload.size() - 3;
  payload.insert(payload.end(),
                 {0x04, static_cast<std::uint8_t>(value >> 8), static_cast<std::uint8_t>(value)});
  payload.resize(max_v2_payload, 0);
  Result r = parse_all(v2(0x21, 0x11, payload));
  ASSERT_EQ(r.status, Status::done) << r.reason;
  EXPECT_EQ(r.header.size, v2_fixed_size + max_v2_payload);
}

TEST(ProxyHeaderV2, BadSignature) {
  ByteVec h = v2(0x21, 0x11, {1, 2, 3, 4, 5, 6, 7, 8, 0, 1, 0, 2});
  for (std::size_t i = 0; i < 12; ++i) {
    ByteVec bad = h;
    bad[i] ^= 0x20;
    // Invalid as soon as the wrong byte is in, not only when the whole header is.
    expect_invalid(ByteVec(bad.begin(), bad.begin() + static_cast<std::ptrdiff_t>(i) + 1), "not a PROXY");
  }
}

TEST(ProxyHeader, PostgresTrafficIsInvalidAtOnce) {
  // SSLRequest, GSSENCRequest, CancelRequest and StartupMessage all begin with a length word's zero byte.
  expect_invalid(bytes("\x00\x00\x00\x08\x04\xd2\x16\x2f"sv), "not a PROXY");
  expect_invalid(bytes("\x00\x00\x00\x08\x04\xd2\x16\x30"sv), "not a PROXY");
  expect_invalid(bytes("\x00\x00\x00\x29\x00\x03\x00\x00user\0alice\0database\0db\0\0"sv), "not a PROXY");
  expect_invalid(bytes("\x00"sv), "not a PROXY");
  // A TLS ClientHello sent without SSLRequest, and HTTP.
  expect_invalid(bytes("\x16\x03\x01\x02\x00"sv), "not a PROXY");
  expect_invalid(bytes("GET / HTTP/1.1\r\n"sv), "not a PROXY");
  expect_invalid(bytes("PRI * HTTP/2.0"sv), "not a PROXY");
  EXPECT_EQ(parse(Bytes{}).status, Status::need_more);
}

TEST(ProxyHeader, OutcomeDoesNotChangeWithMoreBytes) {
  // Once done or invalid, any suffix gives the same answer.
  const std::vector<ByteVec> inputs{
      bytes("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n"),
      bytes("PROXY TCP4 1.2.3.4 5.6.7.8 1 02\r\n"),
      v2(0x21, 0x11, {1, 2, 3, 4, 5, 6, 7, 8, 0, 1, 0, 2}),
      v2(0x21, 0x11, {1, 2, 3, 4, 5, 6, 7, 8, 0, 1, 0, 2, 0x01}),
      bytes("PROXY X"),
  };
  for (const ByteVec& in : inputs) {
    Result base = parse_all(in);
    ASSERT_NE(base.status, Status::need_more);
    for (std::string_view tail : {"\r\n"sv, "\0\0\0\x08"sv, "PROXY UNKNOWN\r\n"sv}) {
      Result r = parse_all(cat(in, bytes(tail)));
      EXPECT_EQ(r.status, base.status);
      EXPECT_EQ(r.reason, base.reason);
      EXPECT_EQ(r.header.size, base.header.size);
      EXPECT_EQ(r.header.source, base.header.source);
    }
  }
}

}  // namespace
}  // namespace pgw::protocol::proxy_header
