// Fuzz target: proxy_header::parse on any bytes: bounds, outcomes stable under more bytes, prefixes need
// more, and a re-encoded header (v1 text and v2 binary) parses to the same addresses.
#include <arpa/inet.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "pgw/protocol/proxy_header.hpp"

namespace {

using namespace pgw::protocol;
using namespace pgw::protocol::proxy_header;

void check(bool ok) {
  if (!ok) std::abort();
}

bool same(const Result& a, const Result& b) {
  return a.status == b.status && a.reason == b.reason && a.header.version == b.header.version &&
         a.header.command == b.header.command && a.header.size == b.header.size &&
         a.header.source == b.header.source && a.header.destination == b.header.destination &&
         a.header.tlvs.size() == b.header.tlvs.size();
}

void check_result(Bytes in, const Result& r) {
  switch (r.status) {
    case Status::need_more:
      check(r.reason.empty());
      check(in.size() < v2_fixed_size + max_v2_payload);
      break;
    case Status::invalid:
      check(!r.reason.empty());
      break;
    case Status::done: {
      const Header& h = r.header;
      check(r.reason.empty());
      check(h.size <= in.size());
      check(h.source.has_value() == h.destination.has_value());
      if (h.version == 1) {
        check(h.size <= max_v1_size && h.command == Command::proxy && h.tlvs.empty());
        check(in[h.size - 2] == '\r' && in[h.size - 1] == '\n');
      } else {
        check(h.version == 2 && h.size >= v2_fixed_size && h.size <= v2_fixed_size + max_v2_payload);
        check(h.command == Command::proxy || !h.source);
        if (!h.tlvs.empty()) {
          check(h.tlvs.data() >= in.data() + v2_fixed_size &&
                h.tlvs.data() + h.tlvs.size() == in.data() + h.size);
        }
      }
      for (const auto& a : {h.source, h.destination}) {
        if (a && a->family == Address::Family::inet) {
          check(std::all_of(a->bytes.begin() + 4, a->bytes.end(), [](std::uint8_t b) { return b == 0; }));
        }
      }
      break;
    }
  }
}

std::vector<std::uint8_t> encode_v2(const Address& src, const Address& dst) {
  const bool v4 = src.family == Address::Family::inet;
  const std::size_t n = v4 ? 4 : 16;
  // Byte by byte: GCC 12 misreads a range insert after a 16-element initializer list (-Warray-bounds).
  std::vector<std::uint8_t> v;
  v.reserve(16 + 2 * n + 4);
  for (char c : std::string_view("\r\n\r\n\0\r\nQUIT\n", 12))
    v.push_back(static_cast<std::uint8_t>(c));
  v.push_back(0x21);
  v.push_back(v4 ? 0x11 : 0x21);
  v.push_back(0);
  v.push_back(static_cast<std::uint8_t>(2 * n + 4));
  for (const Address* a : {&src, &dst}) {
    for (std::size_t i = 0; i < n; ++i)
      v.push_back(a->bytes[i]);
  }
  for (std::uint16_t p : {src.port, dst.port}) {
    v.push_back(static_cast<std::uint8_t>(p >> 8));
    v.push_back(static_cast<std::uint8_t>(p));
  }
  return v;
}

std::string text(const Address& a) {
  char buf[64];
  check(inet_ntop(a.family == Address::Family::inet ? AF_INET : AF_INET6, a.bytes.data(), buf, sizeof buf) !=
        nullptr);
  return buf;
}

std::vector<std::uint8_t> encode_v1(const Address& src, const Address& dst) {
  std::string line = std::string("PROXY ") + (src.family == Address::Family::inet ? "TCP4 " : "TCP6 ") +
                     text(src) + " " + text(dst) + " " + std::to_string(src.port) + " " +
                     std::to_string(dst.port) + "\r\n";
  return {line.begin(), line.end()};
}

void check_round_trip(const Header& h) {
  if (!h.source) return;
  for (const auto& wire : {encode_v2(*h.source, *h.destination), encode_v1(*h.source, *h.destination)}) {
    Result r = parse(Bytes(wire.data(), wire.size()));
    check(r.status == Status::done && r.header.size == wire.size());
    check(r.header.source == h.source && r.header.destination == h.destination);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const Bytes in(data, size);
  const Result whole = parse(in);
  check_result(in, whole);
  if (whole.status == Status::done) check_round_trip(whole.header);

  // Every prefix: need_more until the outcome is known, then the same outcome. Past the first 200 bytes only
  // around the header's end, to keep each input linear.
  const std::size_t end = whole.status == Status::done ? whole.header.size : size;
  bool decided = false;
  for (std::size_t n = 0; n <= size; ++n) {
    if (n > 200 && n + 2 < end && n != size) continue;
    if (n > end + 2 && n != size) continue;
    const Result r = parse(in.first(n));
    check_result(in.first(n), r);
    if (r.status == Status::need_more) {
      check(!decided);
      continue;
    }
    decided = true;
    check(same(r, whole));
  }
  return 0;
}
