// Incremental framing: read the length word, check it against its bound, then wait for the body.
#include "pgw/protocol/framer.hpp"

namespace pgw::protocol {

HeaderResult parse_header(Bytes input, std::uint32_t max_body) noexcept {
  HeaderResult r;
  if (input.size() < typed_header_size) return r;  // need_more
  std::uint32_t len = load_u32(input.data() + 1);
  if (len < 4) {
    r.status = FrameStatus::error;
    r.error = Error::length_too_small;
    return r;
  }
  std::uint32_t body = len - 4;
  if (body > max_body || body > protocol_max_message_length) {
    r.status = FrameStatus::error;
    r.error = Error::length_too_large;
    return r;
  }
  r.status = FrameStatus::complete;
  r.header = Header{static_cast<char>(input[0]), body};
  return r;
}

FrameResult parse_frame(Bytes input, std::uint32_t max_body) noexcept {
  FrameResult r;
  HeaderResult h = parse_header(input, max_body);
  if (h.status == FrameStatus::need_more) {
    r.needed = typed_header_size;
    return r;
  }
  if (h.status == FrameStatus::error) {
    r.status = FrameStatus::error;
    r.error = h.error;
    return r;
  }
  std::size_t total = h.header.wire_size();
  if (input.size() < total) {
    r.needed = total;
    return r;
  }
  r.status = FrameStatus::complete;
  r.frame = Frame{h.header.type, input.subspan(typed_header_size, h.header.body_length), total};
  return r;
}

FrameResult parse_startup_frame(Bytes input) noexcept {
  FrameResult r;
  if (input.size() < 4) {
    r.needed = 4;
    return r;
  }
  std::uint32_t len = load_u32(input.data());
  // The shortest valid packet is the 8-byte SSLRequest; PostgreSQL rejects len < 4 and > 10000.
  if (len < 8) {
    r.status = FrameStatus::error;
    r.error = Error::length_too_small;
    return r;
  }
  if (len > max_startup_packet_length) {
    r.status = FrameStatus::error;
    r.error = Error::length_too_large;
    return r;
  }
  if (input.size() < len) {
    r.needed = len;
    return r;
  }
  r.status = FrameStatus::complete;
  r.frame = Frame{0, input.subspan(4, len - 4), len};
  return r;
}

}  // namespace pgw::protocol
