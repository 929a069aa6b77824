// PROXY protocol v1/v2 parsing: check the signature byte by byte, bound the header, then read the addresses.
#include "pgw/protocol/proxy_header.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <cstring>

namespace pgw::protocol::proxy_header {

namespace {

constexpr std::string_view v1_signature = "PROXY ";
constexpr std::array<std::uint8_t, 12> v2_signature{0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d,
                                                    0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a};

// proxy-protocol.txt 2.2: the address block's length per family and transport byte.
constexpr std::size_t inet_block = 12;   // two IPv4 addresses, two ports
constexpr std::size_t inet6_block = 36;  // two IPv6 addresses, two ports
constexpr std::size_t unix_block = 216;  // two 108-byte socket paths
constexpr std::size_t tlv_header = 3;    // type, 16-bit length

Result invalid(std::string_view reason) noexcept {
  Result r;
  r.status = Status::invalid;
  r.reason = reason;
  return r;
}

Result done(const Header& h) noexcept {
  Result r;
  r.status = Status::done;
  r.header = h;
  return r;
}

// True when the first n bytes of input equal the first n bytes of sig (n = the shorter of the two).
bool prefix_matches(Bytes input, Bytes sig) noexcept {
  std::size_t n = std::min(input.size(), sig.size());
  return std::equal(sig.begin(), sig.begin() + static_cast<std::ptrdiff_t>(n), input.begin());
}

// ---- version 1 (proxy-protocol.txt 2.1) ----

// The protocol word so far ("TCP4", "TCP6", "UNKNOWN"): complete when a space or CR has followed it.
bool protocol_word_possible(std::string_view word, bool complete) noexcept {
  for (std::string_view p :
       {std::string_view{"TCP4"}, std::string_view{"TCP6"}, std::string_view{"UNKNOWN"}}) {
    if (complete ? word == p : p.starts_with(word)) return true;
  }
  return false;
}

// Decimal 0-65535 with no sign and no leading zero ("heading zeroes are not permitted").
std::optional<std::uint16_t> v1_port(std::string_view s) noexcept {
  if (s.empty() || s.size() > 5 || (s.size() > 1 && s[0] == '0')) return std::nullopt;
  std::uint32_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + static_cast<std::uint32_t>(c - '0');
  }
  if (v > 65535) return std::nullopt;
  return static_cast<std::uint16_t>(v);
}

// inet_pton is strict: dotted quads without leading zeros for IPv4, RFC 4291 text for IPv6.
std::optional<Address> v1_address(std::string_view s, Address::Family family) noexcept {
  char text[48];  // INET6_ADDRSTRLEN (46) and a NUL
  if (s.empty() || s.size() >= sizeof text) return std::nullopt;
  std::memcpy(text, s.data(), s.size());
  text[s.size()] = '\0';
  Address a;
  a.family = family;
  if (inet_pton(family == Address::Family::inet ? AF_INET : AF_INET6, text, a.bytes.data()) != 1) {
    return std::nullopt;
  }
  return a;
}

// The line between "PROXY " and CRLF; size is the whole header's.
Result parse_v1_line(std::string_view line, std::size_t size) noexcept {
  Header h;
  h.version = 1;
  h.command = Command::proxy;
  h.size = size;
  // "the receiver must ignore anything presented before the CRLF" after UNKNOWN.
  if (line == "UNKNOWN" || line.starts_with("UNKNOWN ")) return done(h);

  // Exactly five words separated by exactly one space each.
  std::array<std::string_view, 5> w;
  std::size_t n = 0;
  for (std::size_t start = 0;;) {
    std::size_t sp = line.find(' ', start);
    if (n == w.size()) return invalid("PROXY v1 line has too many fields");
    w[n++] = line.substr(start, sp == std::string_view::npos ? std::string_view::npos : sp - start);
    if (sp == std::string_view::npos) break;
    start = sp + 1;
  }
  if (n != w.size()) return invalid("PROXY v1 line has too few fields");
  // parse_v1 has checked the protocol word.
  const Address::Family family = w[0] == "TCP4" ? Address::Family::inet : Address::Family::inet6;
  auto src = v1_address(w[1], family);
  auto dst = v1_address(w[2], family);
  if (!src || !dst) return invalid("PROXY v1 address is malformed or of the wrong family");
  auto src_port = v1_port(w[3]);
  auto dst_port = v1_port(w[4]);
  if (!src_port || !dst_port) return invalid("PROXY v1 port is not a decimal number from 0 to 65535");
  src->port = *src_port;
  dst->port = *dst_port;
  h.source = src;
  h.destination = dst;
  return done(h);
}

Result parse_v1(Bytes input) noexcept {
  // The protocol word first, so a wrong one fails as soon as it shows, with the same reason at every length.
  const std::size_t limit = std::min(input.size(), max_v1_size);
  const std::size_t start = std::min(limit, v1_signature.size());
  const std::string_view rest = as_text(input.subspan(start, limit - start));
  const std::size_t word_end = rest.find_first_of(" \r");
  if (!protocol_word_possible(rest.substr(0, word_end), word_end != std::string_view::npos)) {
    return invalid("PROXY v1 protocol is not TCP4, TCP6 or UNKNOWN");
  }
  for (std::size_t i = v1_signature.size(); i < limit; ++i) {
    std::uint8_t c = input[i];
    if (c == '\r') {
      // The LF would be byte 108 or later.
      if (i + 1 >= max_v1_size) return invalid("PROXY v1 line is longer than 107 bytes");
      if (i + 1 == input.size()) return Result{};
      if (input[i + 1] != '\n') return invalid("PROXY v1 line has a CR without LF");
      return parse_v1_line(rest.substr(0, i - v1_signature.size()), i + 2);
    }
    if (c < 0x20 || c > 0x7e) return invalid("PROXY v1 line holds a control or non-ASCII byte");
  }
  if (input.size() >= max_v1_size) return invalid("PROXY v1 line is longer than 107 bytes");
  return Result{};
}

// ---- version 2 (proxy-protocol.txt 2.2) ----

// Every TLV's declared length must stay inside the block: a truncated vector means a broken sender.
bool tlvs_well_formed(Bytes tlvs) noexcept {
  while (!tlvs.empty()) {
    if (tlvs.size() < tlv_header) return false;
    std::size_t len = load_u16(tlvs.data() + 1);
    if (len > tlvs.size() - tlv_header) return false;
    tlvs = tlvs.subspan(tlv_header + len);
  }
  return true;
}

Result parse_v2(Bytes input) noexcept {
  if (input.size() < v2_fixed_size) return Result{};
  const std::uint8_t ver_cmd = input[12];
  const std::uint8_t fam = input[13];
  const std::size_t len = load_u16(input.data() + 14);
  if ((ver_cmd >> 4) != 2) return invalid("PROXY v2 header has an unsupported version");
  const std::uint8_t cmd = ver_cmd & 0x0f;
  if (cmd > 1) return invalid("PROXY v2 header has an unknown command");
  if (len > max_v2_payload) return invalid("PROXY v2 header is longer than pgwarden accepts");

  Header h;
  h.version = 2;
  h.size = v2_fixed_size + len;
  if (cmd == 0) {
    // LOCAL: "the receiver must accept this connection ... and must use the real connection endpoints and
    // discard the protocol block including the family".
    h.command = Command::local;
    if (input.size() < h.size) return Result{};
    return done(h);
  }
  h.command = Command::proxy;
  std::size_t block = 0;
  Address::Family family = Address::Family::inet;
  switch (fam) {
    case 0x00:  // UNSPEC: no addresses; keep the connection's own
      break;
    case 0x11:  // TCP over IPv4
      block = inet_block;
      break;
    case 0x21:  // TCP over IPv6
      block = inet6_block;
      family = Address::Family::inet6;
      break;
    case 0x31:  // UNIX stream: no IP address to check; keep the connection's own
      block = unix_block;
      break;
    case 0x12:
    case 0x22:
    case 0x32:
      return invalid("PROXY v2 header announces a datagram transport");
    default:
      return invalid("PROXY v2 header has an unknown address family");
  }
  if (len < block) return invalid("PROXY v2 length does not cover the address block");
  if (input.size() < h.size) return Result{};

  Bytes payload = input.subspan(v2_fixed_size, len);
  h.tlvs = payload.subspan(block);
  if (!tlvs_well_formed(h.tlvs)) return invalid("PROXY v2 TLV overruns the header");
  if (fam == 0x11 || fam == 0x21) {
    const std::size_t addr = family == Address::Family::inet ? 4 : 16;
    Address src;
    Address dst;
    src.family = dst.family = family;
    std::copy_n(payload.begin(), addr, src.bytes.begin());
    std::copy_n(payload.begin() + static_cast<std::ptrdiff_t>(addr), addr, dst.bytes.begin());
    src.port = load_u16(payload.data() + 2 * addr);
    dst.port = load_u16(payload.data() + 2 * addr + 2);
    h.source = src;
    h.destination = dst;
  }
  return done(h);
}

}  // namespace

Result parse(Bytes input) noexcept {
  if (input.empty()) return Result{};
  if (input[0] == v1_signature[0]) {
    if (!prefix_matches(input, as_bytes(v1_signature))) return invalid("not a PROXY protocol header");
    return parse_v1(input);
  }
  if (input[0] == v2_signature[0]) {
    if (!prefix_matches(input, v2_signature)) return invalid("not a PROXY protocol header");
    return parse_v2(input);
  }
  return invalid("not a PROXY protocol header");
}

std::array<std::uint8_t, 16> v2_local_header() noexcept {
  std::array<std::uint8_t, 16> h{};
  std::copy(v2_signature.begin(), v2_signature.end(), h.begin());
  h[12] = 0x20;  // version 2, LOCAL
  return h;      // family UNSPEC, length 0
}

}  // namespace pgw::protocol::proxy_header
