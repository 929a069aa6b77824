// Every message split at every byte offset: parse_frame and Scanner find the same messages in any chunks.
// A stream of many message types is fed in two and three chunks; Scanner's output must reassemble it exactly.
#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "pgw/protocol/buffer.hpp"
#include "pgw/protocol/encoder.hpp"
#include "pgw/protocol/framer.hpp"
#include "pgw/protocol/messages.hpp"
#include "pgw/protocol/scanner.hpp"

namespace pgw::protocol {
namespace {

// One message of the stream: its type, where it starts and how long its body is.
struct Expected {
  char type;
  std::size_t offset;
  std::uint32_t body_length;
};

struct Stream {
  std::vector<std::uint8_t> bytes;
  std::vector<Expected> messages;
  Bytes view() const { return Bytes(bytes.data(), bytes.size()); }
};

// A message the encoder has no builder for (DataRow, RowDescription, CopyData...), with a patterned body.
void raw_message(std::vector<std::uint8_t>& out, char type, std::size_t body_length, std::uint8_t seed) {
  out.push_back(static_cast<std::uint8_t>(type));
  auto len = static_cast<std::uint32_t>(body_length + 4);
  for (int shift = 24; shift >= 0; shift -= 8)
    out.push_back(static_cast<std::uint8_t>(len >> shift));
  for (std::size_t i = 0; i < body_length; ++i)
    out.push_back(static_cast<std::uint8_t>(seed + i * 7));
}

// A backend-like stream: login tail, a query result with a small and a large DataRow, COPY OUT, errors.
Stream make_stream(std::size_t large_row) {
  Stream s;
  Encoder e(s.bytes);
  auto mark = [&](auto&& write) {
    std::size_t at = s.bytes.size();
    write();
    s.messages.push_back({static_cast<char>(s.bytes[at]), at,
                          static_cast<std::uint32_t>(s.bytes.size() - at - typed_header_size)});
  };
  mark([&] { encode::authentication_ok(e); });
  mark([&] { encode::parameter_status(e, "server_version", "15.4"); });
  mark([&] { encode::backend_key_data(e, {1234, 5678}); });
  mark([&] { encode::ready_for_query(e, backend::TransactionStatus::idle); });
  mark([&] { raw_message(s.bytes, 'T', 27, 1); });  // RowDescription
  mark([&] { raw_message(s.bytes, 'D', 12, 2); });  // small DataRow
  mark([&] { raw_message(s.bytes, 'D', large_row, 3); });
  mark([&] { raw_message(s.bytes, 'D', 0, 4); });
  mark([&] { encode::command_complete(e, "SELECT 3"); });
  mark([&] { raw_message(s.bytes, 'H', 5, 5); });  // CopyOutResponse
  mark([&] { raw_message(s.bytes, 'd', 40, 6); });
  mark([&] { raw_message(s.bytes, 'd', 1, 7); });
  mark([&] { raw_message(s.bytes, 'c', 0, 8); });  // CopyDone
  mark([&] { raw_message(s.bytes, '2', 0, 9); });  // BindComplete
  mark([&] { encode::notice_response(e, Notice{"WARNING", "01000", "careful", "", ""}); });
  mark([&] { encode::error_response(e, Notice{"ERROR", "42601", "syntax error", "near x", "fix it"}); });
  mark([&] { encode::ready_for_query(e, backend::TransactionStatus::failed); });
  EXPECT_EQ(e.error(), Error::none);
  return s;
}

// ---------------------------------------------------------------------------------------------------------------
// parse_frame over a receive buffer that fills up chunk by chunk (views into the stream, no copies).

class FrameCollector {
 public:
  explicit FrameCollector(const Stream& s) : s_(s) {}

  // Parses every complete frame among the first `available` bytes.
  void advance_to(std::size_t available) {
    for (int guard = 0; guard < 1000; ++guard) {
      FrameResult r = parse_frame(s_.view().subspan(pos_, available - pos_), 1u << 20);
      if (r.status == FrameStatus::need_more) {
        EXPECT_GT(r.needed, available - pos_);
        return;
      }
      ASSERT_EQ(r.status, FrameStatus::complete) << describe(r.error);
      ASSERT_LT(next_, s_.messages.size());
      const Expected& want = s_.messages[next_++];
      ASSERT_EQ(want.offset, pos_);
      EXPECT_EQ(r.frame.type, want.type);
      EXPECT_EQ(r.frame.body.size(), want.body_length);
      EXPECT_EQ(r.frame.body.data(), s_.bytes.data() + want.offset + typed_header_size);
      pos_ += r.frame.wire_size;
    }
    FAIL() << "no progress";
  }
  void expect_all_seen() const {
    EXPECT_EQ(next_, s_.messages.size());
    EXPECT_EQ(pos_, s_.bytes.size());
  }

 private:
  const Stream& s_;
  std::size_t pos_ = 0;
  std::size_t next_ = 0;
};

TEST(SplitStream, ParseFrameTwoChunksAtEveryOffset) {
  Stream s = make_stream(20000);
  for (std::size_t cut = 0; cut <= s.bytes.size(); ++cut) {
    FrameCollector c(s);
    c.advance_to(cut);
    c.advance_to(s.bytes.size());
    c.expect_all_seen();
    if (HasFailure()) FAIL() << "split at " << cut;
  }
}

TEST(SplitStream, ParseFrameThreeChunksAtEveryPairOfOffsets) {
  Stream s = make_stream(300);
  for (std::size_t a = 0; a <= s.bytes.size(); ++a) {
    for (std::size_t b = a; b <= s.bytes.size(); ++b) {
      FrameCollector c(s);
      c.advance_to(a);
      c.advance_to(b);
      c.advance_to(s.bytes.size());
      c.expect_all_seen();
      if (HasFailure()) FAIL() << "split at " << a << ", " << b;
    }
  }
}

TEST(SplitStream, ParseFrameOneByteAtATime) {
  Stream s = make_stream(2000);
  FrameCollector c(s);
  for (std::size_t n = 0; n <= s.bytes.size(); ++n)
    c.advance_to(n);
  c.expect_all_seen();
}

// ---------------------------------------------------------------------------------------------------------------
// Scanner over a real Buffer: chunks are copied in, items consumed, relayed bytes checked against the stream.

bool inspected(char type) {
  return type != 'D' && type != 'd';
}

class ScanRelay {
 public:
  ScanRelay(const Stream& s, std::uint32_t cap) : s_(s), scanner_(cap) {}

  void feed(std::size_t from, std::size_t to) {
    Bytes chunk = s_.view().subspan(from, to - from);
    buffer_.reserve(buffer_.size() + chunk.size());
    if (!chunk.empty()) std::memcpy(buffer_.writable().data(), chunk.data(), chunk.size());
    buffer_.commit(chunk.size());
    for (int guard = 0; guard < 1000; ++guard) {
      Scanner::Item it = scanner_.next(buffer_.readable(), inspected);
      switch (it.kind) {
        case Scanner::Kind::need_more:
          EXPECT_GT(it.needed, buffer_.size());
          return;
        case Scanner::Kind::error:
          FAIL() << "scanner error: " << describe(it.error);
        case Scanner::Kind::message: {
          ASSERT_FALSE(scanner_.mid_message());
          ASSERT_LT(next_, s_.messages.size());
          const Expected& want = s_.messages[next_++];
          ASSERT_EQ(want.offset, relayed_);
          EXPECT_EQ(it.header.type, want.type);
          EXPECT_EQ(it.header.body_length, want.body_length);
          EXPECT_EQ(it.body.size(), want.body_length);
          EXPECT_EQ(it.body.data(), it.wire.data() + typed_header_size);
          ++whole_;
          relay(it.wire);
          break;
        }
        case Scanner::Kind::passthrough: {
          EXPECT_FALSE(it.wire.empty());
          if (it.starts_message) {
            ASSERT_LT(next_, s_.messages.size());
            const Expected& want = s_.messages[next_++];
            ASSERT_EQ(want.offset, relayed_);
            EXPECT_FALSE(inspected(want.type)) << "inspected message " << want.type << " was streamed";
            EXPECT_EQ(it.header.type, want.type);
            EXPECT_EQ(it.header.body_length, want.body_length);
            EXPECT_TRUE(scanner_.mid_message());
          }
          ++chunks_;
          relay(it.wire);
          break;
        }
      }
      if (::testing::Test::HasFailure()) return;
    }
    FAIL() << "no progress";
  }

  void expect_done() const {
    EXPECT_EQ(next_, s_.messages.size());
    EXPECT_EQ(relayed_, s_.bytes.size());
    EXPECT_FALSE(scanner_.mid_message());
    EXPECT_TRUE(buffer_.empty());
  }
  std::size_t whole() const { return whole_; }
  std::size_t chunks() const { return chunks_; }

 private:
  // The relayed bytes must be the stream's bytes, in order, with nothing lost or repeated.
  void relay(Bytes wire) {
    ASSERT_LE(relayed_ + wire.size(), s_.bytes.size());
    ASSERT_EQ(std::memcmp(wire.data(), s_.bytes.data() + relayed_, wire.size()), 0) << "at " << relayed_;
    relayed_ += wire.size();
    buffer_.consume(wire.size());
  }

  const Stream& s_;
  Scanner scanner_;
  Buffer buffer_;
  std::size_t relayed_ = 0;
  std::size_t next_ = 0;
  std::size_t whole_ = 0;
  std::size_t chunks_ = 0;
};

TEST(SplitStream, ScannerTwoChunksAtEveryOffset) {
  Stream s = make_stream(20000);
  std::size_t streamed_splits = 0;
  for (std::size_t cut = 0; cut <= s.bytes.size(); ++cut) {
    ScanRelay r(s, 1024);
    r.feed(0, cut);
    r.feed(cut, s.bytes.size());
    r.expect_done();
    if (r.chunks() > 0) ++streamed_splits;
    if (HasFailure()) FAIL() << "split at " << cut;
  }
  // Cutting inside the large DataRow must have streamed it rather than buffered it.
  EXPECT_GT(streamed_splits, 20000u);
}

TEST(SplitStream, ScannerThreeChunksAtEveryPairOfOffsets) {
  Stream s = make_stream(300);
  for (std::size_t a = 0; a <= s.bytes.size(); ++a) {
    for (std::size_t b = a; b <= s.bytes.size(); ++b) {
      ScanRelay r(s, 128);
      r.feed(0, a);
      r.feed(a, b);
      r.feed(b, s.bytes.size());
      r.expect_done();
      if (HasFailure()) FAIL() << "split at " << a << ", " << b;
    }
  }
}

TEST(SplitStream, ScannerOneByteAtATime) {
  Stream s = make_stream(5000);
  ScanRelay r(s, 1024);
  for (std::size_t n = 0; n < s.bytes.size(); ++n)
    r.feed(n, n + 1);
  r.expect_done();
  EXPECT_GT(r.chunks(), 5000u);
}

TEST(SplitStream, ScannerWholeStreamGivesWholeMessages) {
  Stream s = make_stream(20000);
  ScanRelay r(s, 1024);
  r.feed(0, s.bytes.size());
  r.expect_done();
  EXPECT_EQ(r.whole(), s.messages.size());
  EXPECT_EQ(r.chunks(), 0u);
}

// ---------------------------------------------------------------------------------------------------------------
// Scanner edge cases.

std::vector<std::uint8_t> header(char type, std::uint32_t length_word) {
  std::vector<std::uint8_t> v{static_cast<std::uint8_t>(type)};
  for (int shift = 24; shift >= 0; shift -= 8)
    v.push_back(static_cast<std::uint8_t>(length_word >> shift));
  return v;
}

TEST(Scanner, InspectedTypeOverCapIsAnErrorFromTheHeaderAlone) {
  Scanner sc(100);
  auto h = header('Q', 101 + 4);
  Scanner::Item it = sc.next(Bytes(h), [](char) { return true; });
  EXPECT_EQ(it.kind, Scanner::Kind::error);
  EXPECT_EQ(it.error, Error::length_too_large);

  auto at_cap = header('Q', 100 + 4);
  it = sc.next(Bytes(at_cap), [](char) { return true; });
  EXPECT_EQ(it.kind, Scanner::Kind::need_more);
  EXPECT_EQ(it.needed, 105u);
}

TEST(Scanner, StreamedTypeOverCapIsPassedThrough) {
  Scanner sc(100);
  auto h = header('D', 1000 + 4);
  h.resize(h.size() + 10, 'x');
  Scanner::Item it = sc.next(Bytes(h), [](char t) { return t != 'D'; });
  ASSERT_EQ(it.kind, Scanner::Kind::passthrough);
  EXPECT_TRUE(it.starts_message);
  EXPECT_EQ(it.header.type, 'D');
  EXPECT_EQ(it.header.body_length, 1000u);
  EXPECT_EQ(it.wire.size(), 15u);
  EXPECT_TRUE(sc.mid_message());
}

TEST(Scanner, StreamedTypeStillBoundedByTheProtocol) {
  Scanner sc(100);
  auto h = header('D', protocol_max_message_length + 5);
  Scanner::Item it = sc.next(Bytes(h), [](char) { return false; });
  EXPECT_EQ(it.kind, Scanner::Kind::error);
  EXPECT_EQ(it.error, Error::length_too_large);
  auto tiny = header('D', 3);
  it = sc.next(Bytes(tiny), [](char) { return false; });
  EXPECT_EQ(it.kind, Scanner::Kind::error);
  EXPECT_EQ(it.error, Error::length_too_small);
}

TEST(Scanner, MidMessageUntilTheLastByte) {
  Scanner sc(16);
  std::vector<std::uint8_t> m = header('d', 4 + 10);
  m.resize(m.size() + 10, 'y');
  auto never = [](char) { return false; };
  Scanner::Item it = sc.next(Bytes(m).first(7), never);  // header + 2 body bytes
  ASSERT_EQ(it.kind, Scanner::Kind::passthrough);
  EXPECT_TRUE(sc.mid_message());
  it = sc.next(Bytes{}, never);
  EXPECT_EQ(it.kind, Scanner::Kind::need_more);
  EXPECT_EQ(it.needed, 1u);
  EXPECT_TRUE(sc.mid_message());
  it = sc.next(Bytes(m).subspan(7, 7), never);
  ASSERT_EQ(it.kind, Scanner::Kind::passthrough);
  EXPECT_FALSE(it.starts_message);
  EXPECT_EQ(it.wire.size(), 7u);
  EXPECT_TRUE(sc.mid_message());
  // More input than the message holds: only its last byte belongs to it.
  std::vector<std::uint8_t> tail{'y', 'S', 0, 0, 0, 4};
  it = sc.next(Bytes(tail), never);
  ASSERT_EQ(it.kind, Scanner::Kind::passthrough);
  EXPECT_EQ(it.wire.size(), 1u);
  EXPECT_FALSE(sc.mid_message());
  it = sc.next(Bytes(tail).subspan(1), never);
  ASSERT_EQ(it.kind, Scanner::Kind::message);
  EXPECT_EQ(it.header.type, 'S');
  EXPECT_TRUE(it.body.empty());
}

TEST(Scanner, InspectedMessageWaitsForItsWholeBody) {
  Scanner sc(64);
  std::vector<std::uint8_t> m = header('C', 4 + 9);
  const std::string_view tag("SELECT 1\0", 9);
  m.insert(m.end(), tag.begin(), tag.end());
  for (std::size_t n = 0; n < m.size(); ++n) {
    Scanner::Item it = sc.next(Bytes(m).first(n), [](char) { return true; });
    ASSERT_EQ(it.kind, Scanner::Kind::need_more) << n;
    EXPECT_EQ(it.needed, n < 5 ? 5u : m.size()) << n;
    EXPECT_FALSE(sc.mid_message());
  }
  Scanner::Item it = sc.next(Bytes(m), [](char) { return true; });
  ASSERT_EQ(it.kind, Scanner::Kind::message);
  EXPECT_EQ(as_text(it.body), tag);
}

TEST(Scanner, SetInspectCap) {
  Scanner sc(10);
  auto h = header('Q', 4 + 50);
  EXPECT_EQ(sc.next(Bytes(h), [](char) { return true; }).kind, Scanner::Kind::error);
  sc.set_inspect_cap(50);
  EXPECT_EQ(sc.next(Bytes(h), [](char) { return true; }).kind, Scanner::Kind::need_more);
}

}  // namespace
}  // namespace pgw::protocol
