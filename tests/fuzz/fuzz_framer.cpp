// Fuzz target: parse_header, parse_frame, parse_startup_frame and Scanner on any bytes, with invariants.
// Input: one control byte (cap, inspection rule, chunking), then the byte stream.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "pgw/protocol/buffer.hpp"
#include "pgw/protocol/framer.hpp"
#include "pgw/protocol/scanner.hpp"

namespace {

using pgw::protocol::Buffer;
using pgw::protocol::Bytes;
using pgw::protocol::Error;
using pgw::protocol::FrameResult;
using pgw::protocol::FrameStatus;
using pgw::protocol::HeaderResult;
using pgw::protocol::Scanner;

void check(bool ok) {
  if (!ok) std::abort();
}

constexpr std::uint32_t caps[] = {0,    1,     5,        64,
                                  1024, 65536, 1u << 24, pgw::protocol::protocol_max_message_length};

// parse_frame over the whole input: every complete frame lies inside it and respects the cap.
void walk_frames(Bytes in, std::uint32_t cap) {
  std::size_t pos = 0;
  while (pos <= in.size()) {
    Bytes rest = in.subspan(pos);
    FrameResult r = pgw::protocol::parse_frame(rest, cap);
    HeaderResult h = pgw::protocol::parse_header(rest, cap);
    if (r.status == FrameStatus::error) {
      check(r.error != Error::none && h.status == FrameStatus::error && h.error == r.error);
      return;
    }
    check(r.error == Error::none);
    if (r.status == FrameStatus::need_more) {
      check(r.needed > rest.size());
      check(rest.size() < pgw::protocol::typed_header_size ? h.status == FrameStatus::need_more
                                                           : h.header.wire_size() == r.needed);
      return;
    }
    check(h.status == FrameStatus::complete && h.header.type == r.frame.type);
    check(r.frame.wire_size == h.header.wire_size() && r.frame.wire_size <= rest.size());
    check(r.frame.body.size() == h.header.body_length && r.frame.body.size() <= cap);
    check(r.frame.body.data() == rest.data() + pgw::protocol::typed_header_size);
    check(static_cast<char>(rest[0]) == r.frame.type);
    pos += r.frame.wire_size;
  }
}

void walk_startup(Bytes in) {
  FrameResult r = pgw::protocol::parse_startup_frame(in);
  switch (r.status) {
    case FrameStatus::error:
      check(r.error == Error::length_too_small || r.error == Error::length_too_large);
      break;
    case FrameStatus::need_more:
      check(r.needed > in.size() && r.needed <= pgw::protocol::max_startup_packet_length);
      break;
    case FrameStatus::complete:
      check(r.frame.wire_size >= 8 && r.frame.wire_size <= pgw::protocol::max_startup_packet_length);
      check(r.frame.wire_size <= in.size() && r.frame.body.size() + 4 == r.frame.wire_size);
      check(r.frame.type == 0 && r.frame.body.data() == in.data() + 4);
      break;
  }
}

// A message boundary the framer finds by itself, to check the scanner against.
struct Boundary {
  std::size_t offset;
  HeaderResult header;
};

std::vector<Boundary> reference_boundaries(Bytes in) {
  std::vector<Boundary> out;
  std::size_t pos = 0;
  while (pos < in.size()) {
    HeaderResult h = pgw::protocol::parse_header(in.subspan(pos), pgw::protocol::protocol_max_message_length);
    if (h.status == FrameStatus::need_more) break;
    out.push_back({pos, h});
    if (h.status == FrameStatus::error) break;
    pos += h.header.wire_size();
  }
  return out;
}

class Relay {
 public:
  Relay(Bytes in, std::uint32_t cap, std::uint8_t rule)
      : in_(in), cap_(cap), rule_(rule), scanner_(cap), boundaries_(reference_boundaries(in)) {}

  bool inspect(char type) const {
    switch (rule_ & 3) {
      case 0:
        return true;
      case 1:
        return false;
      case 2:
        return type != 'D' && type != 'd';
      default:
        return (static_cast<unsigned char>(type) & 1) != 0;
    }
  }

  // Copies in_[from, to) into the buffer and consumes every item the scanner can produce.
  void feed(std::size_t from, std::size_t to) {
    if (failed_) return;
    Bytes chunk = in_.subspan(from, to - from);
    buffer_.reserve(buffer_.size() + chunk.size());
    check(buffer_.writable().size() >= chunk.size());
    if (!chunk.empty()) std::memcpy(buffer_.writable().data(), chunk.data(), chunk.size());
    buffer_.commit(chunk.size());
    auto must_inspect = [this](char t) { return inspect(t); };
    for (std::size_t guard = 0; guard <= in_.size() + 1; ++guard) {
      Scanner::Item it = scanner_.next(buffer_.readable(), must_inspect);
      switch (it.kind) {
        case Scanner::Kind::need_more:
          check(it.needed > buffer_.size());
          return;
        case Scanner::Kind::error: {
          check(it.error != Error::none && next_ < boundaries_.size());
          const Boundary& b = boundaries_[next_];
          check(b.offset == relayed_);
          bool header_error = b.header.status == FrameStatus::error && b.header.error == it.error;
          bool over_cap = b.header.status == FrameStatus::complete && inspect(b.header.header.type) &&
                          b.header.header.body_length > cap_ && it.error == Error::length_too_large;
          check(header_error || over_cap);
          failed_ = true;
          return;
        }
        case Scanner::Kind::message:
          check(!scanner_.mid_message());
          expect_boundary(it.header);
          check(it.wire.size() == it.header.wire_size());
          check(it.body.size() == it.header.body_length);
          check(it.body.data() == it.wire.data() + pgw::protocol::typed_header_size);
          check(!inspect(it.header.type) || it.header.body_length <= cap_);
          relay(it.wire);
          break;
        case Scanner::Kind::passthrough:
          check(!it.wire.empty());
          if (it.starts_message) {
            expect_boundary(it.header);
            check(!inspect(it.header.type));
            check(scanner_.mid_message());
          }
          relay(it.wire);
          break;
      }
    }
    check(false);  // no progress
  }

  void finish() const {
    if (failed_) return;
    // Whatever is left is the start of an incomplete message, and the relayed bytes are exactly the input's.
    check(relayed_ + buffer_.size() == in_.size());
    if (scanner_.mid_message()) check(buffer_.empty());
    if (buffer_.size() >= pgw::protocol::typed_header_size) {
      check(next_ < boundaries_.size() && boundaries_[next_].offset == relayed_);
      check(inspect(boundaries_[next_].header.header.type));
    }
  }

 private:
  void expect_boundary(const pgw::protocol::Header& h) {
    check(next_ < boundaries_.size());
    const Boundary& b = boundaries_[next_++];
    check(b.offset == relayed_ && b.header.status == FrameStatus::complete);
    check(b.header.header.type == h.type && b.header.header.body_length == h.body_length);
  }
  void relay(Bytes wire) {
    check(relayed_ + wire.size() <= in_.size());
    check(wire.data() == buffer_.readable().data());
    check(std::memcmp(wire.data(), in_.data() + relayed_, wire.size()) == 0);
    relayed_ += wire.size();
    buffer_.consume(wire.size());
  }

  Bytes in_;
  std::uint32_t cap_;
  std::uint8_t rule_;
  Scanner scanner_;
  Buffer buffer_;
  std::vector<Boundary> boundaries_;
  std::size_t relayed_ = 0;
  std::size_t next_ = 0;
  bool failed_ = false;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::uint8_t ctl = data[0];
  const Bytes in(data + 1, size - 1);
  const std::uint32_t cap = caps[ctl & 7];
  const std::uint8_t rule = static_cast<std::uint8_t>(ctl >> 3);

  walk_frames(in, cap);
  walk_startup(in);

  // Two chunks split at a point derived from the input.
  std::size_t split = (std::size_t{data[size - 1]} * 131 + size) % (in.size() + 1);
  Relay two(in, cap, rule);
  two.feed(0, split);
  two.feed(split, in.size());
  two.finish();

  // Three chunks, the middle one possibly empty.
  std::size_t second = split + (in.size() - split) / 2;
  Relay three(in, cap, rule);
  three.feed(0, split);
  three.feed(split, second);
  three.feed(second, second);
  three.feed(second, in.size());
  three.finish();

  // Byte by byte, for short inputs.
  if (in.size() <= 512 && (ctl & 0x80) != 0) {
    Relay bytes(in, cap, rule);
    for (std::size_t i = 0; i < in.size(); ++i)
      bytes.feed(i, i + 1);
    bytes.finish();
  }
  return 0;
}
