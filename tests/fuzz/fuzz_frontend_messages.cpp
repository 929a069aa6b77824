// Fuzz target: every frontend decoder, chosen by the first input byte, with Bind walks and round trips.
// Views must stay inside the body; accepted messages must re-encode identically.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string_view>
#include <vector>

#include "pgw/protocol/encoder.hpp"
#include "pgw/protocol/framer.hpp"
#include "pgw/protocol/messages.hpp"

namespace {

using namespace pgw::protocol;
namespace fe = pgw::protocol::frontend;

void check(bool ok) {
  if (!ok) std::abort();
}

bool inside(Bytes outer, Bytes inner) {
  auto lo = reinterpret_cast<std::uintptr_t>(outer.data());
  auto p = reinterpret_cast<std::uintptr_t>(inner.data());
  return inner.empty() || (p >= lo && p + inner.size() <= lo + outer.size());
}
bool inside(Bytes outer, std::string_view s) {
  return inside(outer, as_bytes(s));
}

template <class Write>
void expect_same_encoding(char type, Bytes body, Write&& write) {
  std::vector<std::uint8_t> out;
  Encoder e(out);
  write(e);
  check(e.error() == Error::none);
  FrameResult f = parse_frame(out, protocol_max_message_length);
  check(f.status == FrameStatus::complete && f.frame.type == type && f.frame.wire_size == out.size());
  check(f.frame.body.size() == body.size() &&
        (body.empty() || std::memcmp(f.frame.body.data(), body.data(), body.size()) == 0));
}

void decode_bind(Bytes body) {
  fe::Bind b;
  if (fe::decode(body, b) != Error::none) return;
  check(inside(body, b.portal) && inside(body, b.statement));
  check(b.num_parameter_formats >= 0 && b.num_parameters >= 0 && b.num_result_formats >= 0);
  check(b.parameter_formats.size() == 2 * static_cast<std::size_t>(b.num_parameter_formats));
  check(b.result_formats.size() == 2 * static_cast<std::size_t>(b.num_result_formats));
  check(inside(body, b.parameters) && inside(body, b.parameter_formats) && inside(body, b.result_formats));
  std::int16_t expected_index = 0;
  std::size_t walked = 0;
  fe::for_each_parameter(b, [&](std::int16_t i, std::optional<Bytes> v) {
    check(i == expected_index++);
    walked += 4;
    if (v) {
      check(inside(b.parameters, *v));
      walked += v->size();
    }
  });
  check(expected_index == b.num_parameters);
  check(walked == b.parameters.size());
}

void decode_parse(Bytes body) {
  fe::Parse p;
  if (fe::decode(body, p) != Error::none) return;
  check(p.num_parameter_types >= 0);
  check(p.parameter_types.size() == 4 * static_cast<std::size_t>(p.num_parameter_types));
  check(inside(body, p.statement) && inside(body, p.query) && inside(body, p.parameter_types));
  expect_same_encoding('P', body, [&](Encoder& e) {
    encode::parse(e, p.statement, p.query, p.parameter_types, p.num_parameter_types);
  });
}

void decode_sasl_initial(Bytes body) {
  fe::SASLInitialResponse s;
  if (fe::decode(body, s) != Error::none) return;
  check(inside(body, s.mechanism) && inside(body, s.data));
  if (s.has_data) {
    expect_same_encoding('p', body,
                         [&](Encoder& e) { encode::sasl_initial_response(e, s.mechanism, as_text(s.data)); });
  } else {
    check(s.data.empty());
  }
}

void decode_one(char type, Bytes body) {
  switch (type) {
    case fe::query: {
      fe::Query q;
      if (fe::decode(body, q) == Error::none) {
        check(inside(body, q.query));
        expect_same_encoding(type, body, [&](Encoder& e) { encode::query(e, q.query); });
      }
      break;
    }
    case fe::parse:
      decode_parse(body);
      break;
    case fe::bind:
      decode_bind(body);
      break;
    case fe::describe: {
      fe::Describe d;
      if (fe::decode(body, d) == Error::none) {
        check(d.target == 'S' || d.target == 'P');
        expect_same_encoding(type, body, [&](Encoder& e) { encode::describe(e, d.target, d.name); });
      }
      break;
    }
    case fe::close: {
      fe::Close c;
      if (fe::decode(body, c) == Error::none) {
        check(c.target == 'S' || c.target == 'P');
        expect_same_encoding(type, body, [&](Encoder& e) { encode::close(e, c.target, c.name); });
      }
      break;
    }
    case fe::execute: {
      fe::Execute x;
      if (fe::decode(body, x) == Error::none)
        check(inside(body, x.portal) && body.size() == x.portal.size() + 5);
      break;
    }
    case fe::copy_fail: {
      fe::CopyFail f;
      if (fe::decode(body, f) == Error::none) check(inside(body, f.message));
      break;
    }
    case fe::password: {
      // The same type byte carries all four: decode the body as each.
      fe::PasswordMessage p;
      if (fe::decode(body, p) == Error::none) {
        check(inside(body, p.password));
        expect_same_encoding(type, body, [&](Encoder& e) { encode::password_message(e, p.password); });
      }
      decode_sasl_initial(body);
      fe::SASLResponse r;
      check(fe::decode(body, r) == Error::none && r.data.size() == body.size());
      expect_same_encoding(type, body, [&](Encoder& e) { encode::sasl_response(e, as_text(r.data)); });
      break;
    }
    case fe::sync:
    case fe::flush:
    case fe::terminate:
      break;
    default:
      break;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const char type = static_cast<char>(data[0]);
  const Bytes body(data + 1, size - 1);
  (void)fe::is_known_type(type);
  decode_one(type, body);
  // The decoders with counts and lengths see every input, whatever its type byte.
  decode_bind(body);
  decode_parse(body);
  decode_sasl_initial(body);
  // And as a stream of framed messages, each decoded by its own type.
  std::size_t pos = 0;
  for (int i = 0; i < 64 && pos < body.size(); ++i) {
    FrameResult f = parse_frame(body.subspan(pos), 1u << 20);
    if (f.status != FrameStatus::complete) break;
    decode_one(f.frame.type, f.frame.body);
    pos += f.frame.wire_size;
  }
  return 0;
}
