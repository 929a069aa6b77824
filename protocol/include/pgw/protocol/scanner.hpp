// Walks a relayed byte stream message by message: whole messages where the proxy must look inside them
// (bounded by a cap), pass-through chunks of long messages it only forwards (DataRow, CopyData), so memory
// per session is bounded by its buffers and never by the largest row (STYLE.md practice 4).
#pragma once

#include <cstddef>
#include <cstdint>

#include "pgw/protocol/framer.hpp"

namespace pgw::protocol {

class Scanner {
 public:
  enum class Kind : std::uint8_t { message, passthrough, need_more, error };
  struct Item {
    Kind kind = Kind::need_more;
    Header header;                // message, and a passthrough chunk that starts a message
    Bytes wire;                   // message: header + body; passthrough: the bytes of this chunk
    Bytes body;                   // message only
    bool starts_message = false;  // passthrough chunk that holds the header
    std::size_t needed = 0;       // need_more: input size that completes the item
    Error error = Error::none;
  };

  // inspect_cap bounds messages the caller wants whole; streamed messages are bounded by the protocol's 1 GB.
  explicit Scanner(std::uint32_t inspect_cap) noexcept : inspect_cap_(inspect_cap) {}

  // The next item at the start of input. must_inspect(type) says whether a message must be seen whole; a
  // message that is complete in input is returned whole either way.
  template <class MustInspect>
  Item next(Bytes input, MustInspect&& must_inspect) noexcept {
    Item it;
    if (remaining_ > 0) {
      if (input.empty()) {
        it.needed = 1;
        return it;
      }
      std::size_t n = input.size() < remaining_ ? input.size() : remaining_;
      remaining_ -= n;
      it.kind = Kind::passthrough;
      it.wire = input.first(n);
      return it;
    }
    HeaderResult h = parse_header(input, protocol_max_message_length);
    if (h.status == FrameStatus::need_more) {
      it.needed = typed_header_size;
      return it;
    }
    if (h.status == FrameStatus::error) {
      it.kind = Kind::error;
      it.error = h.error;
      return it;
    }
    it.header = h.header;
    bool inspect = must_inspect(h.header.type);
    if (inspect && h.header.body_length > inspect_cap_) {
      it.kind = Kind::error;
      it.error = Error::length_too_large;
      return it;
    }
    std::size_t total = h.header.wire_size();
    if (input.size() >= total) {
      it.kind = Kind::message;
      it.wire = input.first(total);
      it.body = input.subspan(typed_header_size, h.header.body_length);
      return it;
    }
    if (inspect) {
      it.needed = total;
      return it;
    }
    it.kind = Kind::passthrough;
    it.starts_message = true;
    it.wire = input;
    remaining_ = total - input.size();
    return it;
  }

  // True while in the middle of a streamed message: no message boundary here.
  bool mid_message() const noexcept { return remaining_ > 0; }
  void set_inspect_cap(std::uint32_t cap) noexcept { inspect_cap_ = cap; }

 private:
  std::uint32_t inspect_cap_;
  std::size_t remaining_ = 0;
};

}  // namespace pgw::protocol
