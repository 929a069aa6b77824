// Fuzz target: decode_initial_packet on startup-family packets, framed and unframed, with re-encoding checks.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>
#include <vector>

#include "pgw/protocol/encoder.hpp"
#include "pgw/protocol/framer.hpp"
#include "pgw/protocol/messages.hpp"

namespace {

using namespace pgw::protocol;

void check(bool ok) {
  if (!ok) std::abort();
}

bool inside(Bytes outer, std::string_view s) {
  auto lo = reinterpret_cast<std::uintptr_t>(outer.data());
  auto p = reinterpret_cast<std::uintptr_t>(s.data());
  return s.empty() || (p >= lo && p + s.size() <= lo + outer.size());
}

void decode_and_check(Bytes body) {
  InitialPacket p;
  Error e = decode_initial_packet(body, p);
  if (e != Error::none) return;
  switch (p.kind) {
    case InitialPacketKind::ssl_request:
    case InitialPacketKind::gssenc_request:
      check(body.size() == 4);
      return;
    case InitialPacketKind::cancel_request:
      check(body.size() == 12);
      return;
    case InitialPacketKind::startup:
      break;
  }
  const StartupMessage& s = p.startup;
  check(s.major == protocol_major);
  check(!s.user().empty() && !s.database().empty());
  check(body.size() >= 4 && body[body.size() - 1] == 0);
  for (const auto& param : s.parameters) {
    check(inside(body, param.name) && inside(body, param.value) && !param.name.empty());
    check(!param.name.starts_with("_pq_."));
    check(param.name.find('\0') == std::string_view::npos &&
          param.value.find('\0') == std::string_view::npos);
  }
  for (auto o : s.protocol_options)
    check(inside(body, o) && o.starts_with("_pq_."));
  check(s.needs_protocol_negotiation() == (s.minor > 0 || !s.protocol_options.empty()));

  // Re-encoding the parameters gives a 3.0 packet that decodes to the same parameters.
  std::vector<std::uint8_t> out;
  Encoder enc(out);
  encode::startup_message(enc, s.parameters);
  check(enc.error() == Error::none);
  FrameResult f = parse_startup_frame(out);
  if (out.size() > max_startup_packet_length) {
    check(f.status == FrameStatus::error);
    return;
  }
  check(f.status == FrameStatus::complete && f.frame.wire_size == out.size());
  InitialPacket again;
  check(decode_initial_packet(f.frame.body, again) == Error::none);
  check(again.kind == InitialPacketKind::startup && again.startup.minor == 0);
  check(again.startup.parameters.size() == s.parameters.size());
  for (std::size_t i = 0; i < s.parameters.size(); ++i) {
    check(again.startup.parameters[i].name == s.parameters[i].name);
    check(again.startup.parameters[i].value == s.parameters[i].value);
  }
  check(again.startup.user() == s.user() && again.startup.database() == s.database());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  Bytes in(data, size);
  // The input as a packet body...
  decode_and_check(in);
  // ...and as a framed packet, as a client would send it.
  FrameResult f = parse_startup_frame(in);
  if (f.status == FrameStatus::complete) decode_and_check(f.frame.body);
  return 0;
}
