// Incremental framing of the PostgreSQL v3 protocol (PostgreSQL docs 55.2 and 55.7): three outcomes, no
// copies.
#pragma once

#include <cstddef>
#include <cstdint>

#include "pgw/protocol/bytes.hpp"
#include "pgw/protocol/error.hpp"

namespace pgw::protocol {

// MAX_STARTUP_PACKET_LENGTH in PostgreSQL's pqcomm.h: the whole startup-family packet, length word included.
inline constexpr std::uint32_t max_startup_packet_length = 10000;
// PostgreSQL refuses messages of 1 GB and more (PQ_LARGE_MESSAGE_LIMIT); no cap may exceed it.
inline constexpr std::uint32_t protocol_max_message_length = 0x3fffffff;
inline constexpr std::size_t typed_header_size = 5;  // type byte + int32 length

enum class FrameStatus : std::uint8_t { need_more, complete, error };

// Header of a typed message: its type byte and the length of its body (the length word minus 4).
struct Header {
  char type = 0;
  std::uint32_t body_length = 0;
  std::size_t wire_size() const noexcept { return typed_header_size + body_length; }
};

struct HeaderResult {
  FrameStatus status = FrameStatus::need_more;
  Header header;
  Error error = Error::none;
};

// A complete message: its type (0 for startup-family packets) and a view of its body inside the input.
struct Frame {
  char type = 0;
  Bytes body;
  std::size_t wire_size = 0;  // bytes the frame occupies in the input
};

struct FrameResult {
  FrameStatus status = FrameStatus::need_more;
  Frame frame;
  std::size_t needed =
      0;  // need_more: total input size that would complete the frame (5 until the header is in)
  Error error = Error::none;
};

// The header of the typed message at the start of input; the length is checked against max_body before any
// buffering, so a peer cannot make us wait for (or allocate) more than the cap.
HeaderResult parse_header(Bytes input, std::uint32_t max_body) noexcept;

// A whole typed message (type byte + int32 length + body).
FrameResult parse_frame(Bytes input, std::uint32_t max_body) noexcept;

// A whole startup-family packet (int32 length including itself + body): StartupMessage, SSLRequest,
// GSSENCRequest, CancelRequest. Bounded by max_startup_packet_length.
FrameResult parse_startup_frame(Bytes input) noexcept;

}  // namespace pgw::protocol
