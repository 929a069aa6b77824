// Fuzz target: every backend decoder, chosen by the first input byte, with round trips through the encoder.
// Views must stay inside the body; accepted messages must re-encode identically.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string_view>
#include <vector>

#include "pgw/protocol/encoder.hpp"
#include "pgw/protocol/framer.hpp"
#include "pgw/protocol/messages.hpp"
#include "pgw/protocol/server_login.hpp"

namespace {

using namespace pgw::protocol;
using namespace pgw::protocol::backend;

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

// The body of the single message `write` encodes, compared with the body that was decoded.
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

void decode_authentication(Bytes body) {
  Authentication a;
  if (decode(body, a) != Error::none) return;
  check(inside(body, a.data));
  switch (a.code) {
    case AuthCode::ok:
      expect_same_encoding('R', body, [](Encoder& e) { encode::authentication_ok(e); });
      break;
    case AuthCode::cleartext_password:
      expect_same_encoding('R', body, [](Encoder& e) { encode::authentication_cleartext(e); });
      break;
    case AuthCode::md5_password: {
      check(a.data.size() == 4);
      std::span<const std::uint8_t, 4> salt(a.data.data(), 4);
      expect_same_encoding('R', body, [&](Encoder& e) { encode::authentication_md5(e, salt); });
      break;
    }
    case AuthCode::sasl: {
      std::vector<std::string_view> names;
      Error e = for_each_sasl_mechanism(a.data, [&](std::string_view m) {
        check(!m.empty() && inside(a.data, m));
        names.push_back(m);
      });
      if (e == Error::none) {
        expect_same_encoding('R', body, [&](Encoder& enc) { encode::authentication_sasl(enc, names); });
      }
      break;
    }
    case AuthCode::sasl_continue:
      expect_same_encoding('R', body,
                           [&](Encoder& e) { encode::authentication_sasl_continue(e, as_text(a.data)); });
      break;
    case AuthCode::sasl_final:
      expect_same_encoding('R', body,
                           [&](Encoder& e) { encode::authentication_sasl_final(e, as_text(a.data)); });
      break;
    default:
      break;
  }
}

void decode_error_fields(char type, Bytes body) {
  ErrorFields f;
  if (decode(body, f) != Error::none) return;
  for (auto s : {f.severity, f.severity_nonlocalized, f.sqlstate, f.message, f.detail, f.hint, f.position}) {
    check(inside(body, s) && s.find('\0') == std::string_view::npos);
  }
  ServerError owned = ServerError::from(f);
  check(owned.message == f.message && owned.sqlstate == f.sqlstate);
  // pgwarden's own notices round-trip through the same decoder.
  Notice n{f.severity.empty() ? "ERROR" : f.severity, f.sqlstate, f.message, f.detail, f.hint};
  std::vector<std::uint8_t> out;
  Encoder e(out);
  if (type == 'N') {
    encode::notice_response(e, n);
  } else {
    encode::error_response(e, n);
  }
  FrameResult fr = parse_frame(out, protocol_max_message_length);
  check(fr.status == FrameStatus::complete);
  ErrorFields again;
  check(decode(fr.frame.body, again) == Error::none);
  check(again.message == f.message && again.sqlstate == f.sqlstate && again.detail == f.detail &&
        again.hint == f.hint && again.severity == n.severity);
}

void decode_one(char type, Bytes body) {
  switch (type) {
    case authentication:
      decode_authentication(body);
      break;
    case backend_key_data: {
      BackendKeyData k;
      if (decode(body, k) == Error::none) {
        expect_same_encoding(type, body, [&](Encoder& e) {
          encode::backend_key_data(e, {k.process_id, k.secret_key});
        });
      }
      break;
    }
    case parameter_status: {
      ParameterStatus p;
      if (decode(body, p) == Error::none) {
        check(inside(body, p.name) && inside(body, p.value));
        expect_same_encoding(type, body, [&](Encoder& e) { encode::parameter_status(e, p.name, p.value); });
      }
      break;
    }
    case ready_for_query: {
      ReadyForQuery z;
      if (decode(body, z) == Error::none) {
        check(z.status == TransactionStatus::idle || z.status == TransactionStatus::in_transaction ||
              z.status == TransactionStatus::failed);
        expect_same_encoding(type, body, [&](Encoder& e) { encode::ready_for_query(e, z.status); });
      }
      break;
    }
    case command_complete: {
      CommandComplete c;
      if (decode(body, c) == Error::none) {
        check(inside(body, c.tag));
        (void)rows_from_tag(c.tag);
        expect_same_encoding(type, body, [&](Encoder& e) { encode::command_complete(e, c.tag); });
      }
      break;
    }
    case negotiate_protocol_version: {
      NegotiateProtocolVersion v;
      if (decode(body, v) == Error::none) {
        check(v.num_options >= 0 && inside(body, v.options));
        std::vector<std::string_view> options;
        Reader r(v.options);
        for (std::int32_t i = 0; i < v.num_options; ++i)
          options.push_back(r.cstring());
        check(r.finish() == Error::none);
        expect_same_encoding(
            type, body, [&](Encoder& e) { encode::negotiate_protocol_version(e, v.newest_minor, options); });
      }
      break;
    }
    case copy_in_response:
    case copy_out_response:
    case copy_both_response: {
      CopyResponse c;
      if (decode(body, c) == Error::none) {
        check((c.format == 0 || c.format == 1) && c.num_columns >= 0);
        check(body.size() == 3 + 2 * static_cast<std::size_t>(c.num_columns));
      }
      break;
    }
    case notification_response: {
      NotificationResponse n;
      if (decode(body, n) == Error::none) check(inside(body, n.channel) && inside(body, n.payload));
      break;
    }
    case error_response:
    case notice_response:
      decode_error_fields(type, body);
      break;
    case empty_query_response:
      if (body.empty()) expect_same_encoding(type, body, [](Encoder& e) { encode::empty_query_response(e); });
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
  (void)is_known_type(type);
  decode_one(type, body);
  // Whatever the type byte, the body also goes through the decoders most exposed to a hostile server.
  decode_authentication(body);
  decode_error_fields('E', body);
  (void)rows_from_tag(as_text(body));
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
