// PROXY protocol headers (HAProxy's proxy-protocol.txt, versions 1 and 2) that a load balancer sends before
// the client's first byte: sans-IO, looks only at a prefix of the stream, three outcomes.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

#include "pgw/protocol/bytes.hpp"

namespace pgw::protocol::proxy_header {

// proxy-protocol.txt 2.1: the longest line a receiver must take, "PROXY UNKNOWN" with two full IPv6 addresses
// and ports, CRLF included.
inline constexpr std::size_t max_v1_size = 107;
// proxy-protocol.txt 2.2: 12-byte signature, version/command, family/transport, 16-bit length.
inline constexpr std::size_t v2_fixed_size = 16;
// The v2 length word allows 65535 bytes; balancers send the addresses and a few small TLVs (AWS VPC endpoint
// id, Azure link id, TLS details), so a longer block is refused instead of being buffered before any check.
inline constexpr std::size_t max_v2_payload = 4096;

struct Address {
  enum class Family : std::uint8_t { inet, inet6 };
  Family family = Family::inet;
  std::array<std::uint8_t, 16> bytes{};  // network byte order; IPv4 uses the first 4, the rest stay zero
  std::uint16_t port = 0;
  friend bool operator==(const Address&, const Address&) = default;
};

enum class Command : std::uint8_t { local, proxy };

struct Header {
  std::uint8_t version = 1;          // 1 (text) or 2 (binary)
  Command command = Command::proxy;  // v1 has no LOCAL
  // Both set or neither. Absent for v1 UNKNOWN, v2 LOCAL and the v2 UNSPEC and UNIX families: the caller then
  // keeps the balancer's own address, as the specification asks.
  std::optional<Address> source;
  std::optional<Address> destination;
  Bytes tlvs;            // v2 PROXY: the TLV vectors after the addresses (a view into the input), well formed
  std::size_t size = 0;  // bytes the header occupies; the PostgreSQL stream starts right after them
};

enum class Status : std::uint8_t { need_more, done, invalid };

struct Result {
  Status status = Status::need_more;
  Header header;            // done only
  std::string_view reason;  // invalid only: static text for the log (the peer gets no reply, SPEC "Errors")
};

// Parses the header at the start of input, which may hold bytes after it. need_more only while the bytes so
// far can still begin a header this parser accepts, so anything else (a plain SSLRequest or StartupMessage,
// junk, a malformed or oversized header) is invalid as early as it can be told. Once done or invalid, more
// bytes do not change the outcome.
Result parse(Bytes input) noexcept;

// A v2 header with the LOCAL command and no addresses: "this connection is the sender itself" (2.2), for
// pgwarden's own connections to a peer that expects a header from the address they come from.
std::array<std::uint8_t, 16> v2_local_header() noexcept;

}  // namespace pgw::protocol::proxy_header
