// Decoders for startup-family, frontend and backend messages (PostgreSQL docs 55.7).
#include "pgw/protocol/messages.hpp"

#include <algorithm>
#include <charconv>

namespace pgw::protocol {

std::optional<std::string_view> StartupMessage::get(std::string_view name) const noexcept {
  std::optional<std::string_view> found;
  for (const auto& p : parameters) {
    if (p.name == name) found = p.value;
  }
  return found;
}

std::string_view StartupMessage::database() const noexcept {
  auto db = get("database");
  if (db && !db->empty()) return *db;
  return user();
}

Error decode_initial_packet(Bytes body, InitialPacket& out) {
  Reader r(body);
  std::int32_t code = r.i32();
  if (r.error() != Error::none) return r.error();
  switch (code) {
    case ssl_request_code:
      out.kind = InitialPacketKind::ssl_request;
      return r.finish();
    case gssenc_request_code:
      out.kind = InitialPacketKind::gssenc_request;
      return r.finish();
    case cancel_request_code:
      out.kind = InitialPacketKind::cancel_request;
      out.cancel.process_id = r.i32();
      out.cancel.secret_key = r.i32();
      return r.finish();
    default:
      break;
  }
  out.kind = InitialPacketKind::startup;
  auto& s = out.startup;
  s.major = static_cast<std::uint16_t>(static_cast<std::uint32_t>(code) >> 16);
  s.minor = static_cast<std::uint16_t>(static_cast<std::uint32_t>(code) & 0xffff);
  s.parameters.clear();
  s.protocol_options.clear();
  if (s.major != protocol_major) return Error::unsupported_protocol;
  // Name/value pairs, then a single NUL that must be the last byte (ProcessStartupPacket).
  for (;;) {
    std::string_view name = r.cstring();
    if (r.error() != Error::none) return r.error();
    if (name.empty()) break;
    std::string_view value = r.cstring();
    if (r.error() != Error::none) return r.error();
    if (name.starts_with("_pq_.")) {
      s.protocol_options.push_back(name);
    } else {
      s.parameters.push_back({name, value});
    }
  }
  if (Error e = r.finish(); e != Error::none) return e;
  if (s.user().empty()) return Error::missing_user;
  return Error::none;
}

namespace frontend {

bool is_known_type(char type) noexcept {
  switch (type) {
    case bind:
    case close:
    case copy_data:
    case copy_done:
    case copy_fail:
    case describe:
    case execute:
    case flush:
    case function_call:
    case parse:
    case password:
    case query:
    case sync:
    case terminate:
      return true;
    default:
      return false;
  }
}

Error decode(Bytes body, Query& out) {
  Reader r(body);
  out.query = r.cstring();
  return r.finish();
}

Error decode(Bytes body, Parse& out) {
  Reader r(body);
  out.statement = r.cstring();
  out.query = r.cstring();
  out.num_parameter_types = r.i16();
  if (out.num_parameter_types < 0) r.fail(Error::invalid_value);
  out.parameter_types =
      r.bytes(static_cast<std::size_t>(std::max<std::int16_t>(out.num_parameter_types, 0)) * 4);
  return r.finish();
}

Error decode(Bytes body, Bind& out) {
  Reader r(body);
  out.portal = r.cstring();
  out.statement = r.cstring();
  out.num_parameter_formats = r.i16();
  if (out.num_parameter_formats < 0) r.fail(Error::invalid_value);
  out.parameter_formats =
      r.bytes(static_cast<std::size_t>(std::max<std::int16_t>(out.num_parameter_formats, 0)) * 2);
  out.num_parameters = r.i16();
  if (out.num_parameters < 0) r.fail(Error::invalid_value);
  if (r.error() != Error::none) return r.error();
  // Validate every parameter length now so for_each_parameter never reads past the body.
  const std::uint8_t* params_begin = r.position();
  for (std::int16_t i = 0; i < out.num_parameters && r.error() == Error::none; ++i) {
    std::int32_t len = r.i32();
    if (len < -1) r.fail(Error::invalid_value);
    if (len > 0) r.bytes(static_cast<std::size_t>(len));
  }
  if (r.error() != Error::none) return r.error();
  out.parameters = Bytes(params_begin, static_cast<std::size_t>(r.position() - params_begin));
  out.num_result_formats = r.i16();
  if (out.num_result_formats < 0) r.fail(Error::invalid_value);
  out.result_formats =
      r.bytes(static_cast<std::size_t>(std::max<std::int16_t>(out.num_result_formats, 0)) * 2);
  return r.finish();
}

Error decode(Bytes body, Describe& out) {
  Reader r(body);
  out.target = static_cast<char>(r.u8());
  out.name = r.cstring();
  if (r.error() == Error::none && out.target != 'S' && out.target != 'P') r.fail(Error::invalid_value);
  return r.finish();
}

Error decode(Bytes body, Execute& out) {
  Reader r(body);
  out.portal = r.cstring();
  out.max_rows = r.i32();
  return r.finish();
}

Error decode(Bytes body, Close& out) {
  Reader r(body);
  out.target = static_cast<char>(r.u8());
  out.name = r.cstring();
  if (r.error() == Error::none && out.target != 'S' && out.target != 'P') r.fail(Error::invalid_value);
  return r.finish();
}

Error decode(Bytes body, CopyFail& out) {
  Reader r(body);
  out.message = r.cstring();
  return r.finish();
}

Error decode(Bytes body, PasswordMessage& out) {
  Reader r(body);
  out.password = r.cstring();
  return r.finish();
}

Error decode(Bytes body, SASLInitialResponse& out) {
  Reader r(body);
  out.mechanism = r.cstring();
  std::int32_t len = r.i32();
  if (r.error() != Error::none) return r.error();
  if (len == -1) {
    out.has_data = false;
    out.data = {};
  } else if (len < 0) {
    return Error::invalid_value;
  } else {
    out.has_data = true;
    out.data = r.bytes(static_cast<std::size_t>(len));
  }
  return r.finish();
}

Error decode(Bytes body, SASLResponse& out) {
  out.data = body;
  return Error::none;
}

}  // namespace frontend

namespace backend {

bool is_known_type(char type) noexcept {
  switch (type) {
    case authentication:
    case backend_key_data:
    case bind_complete:
    case close_complete:
    case command_complete:
    case copy_both_response:
    case copy_data:
    case copy_done:
    case copy_in_response:
    case copy_out_response:
    case data_row:
    case empty_query_response:
    case error_response:
    case function_call_response:
    case negotiate_protocol_version:
    case no_data:
    case notice_response:
    case notification_response:
    case parameter_description:
    case parameter_status:
    case parse_complete:
    case portal_suspended:
    case ready_for_query:
    case row_description:
      return true;
    default:
      return false;
  }
}

Error decode(Bytes body, Authentication& out) {
  Reader r(body);
  std::int32_t code = r.i32();
  if (r.error() != Error::none) return r.error();
  out.code = static_cast<AuthCode>(code);
  switch (out.code) {
    case AuthCode::ok:
    case AuthCode::kerberos_v5:
    case AuthCode::cleartext_password:
    case AuthCode::gss:
    case AuthCode::sspi:
      out.data = {};
      break;
    case AuthCode::md5_password:
      out.data = r.bytes(4);
      break;
    case AuthCode::sasl:
    case AuthCode::sasl_continue:
    case AuthCode::sasl_final:
    case AuthCode::gss_continue:
      out.data = r.rest();
      break;
    default:
      return Error::invalid_value;
  }
  return r.finish();
}

Error decode(Bytes body, BackendKeyData& out) {
  Reader r(body);
  out.process_id = r.i32();
  out.secret_key = r.i32();
  return r.finish();
}

Error decode(Bytes body, ParameterStatus& out) {
  Reader r(body);
  out.name = r.cstring();
  out.value = r.cstring();
  return r.finish();
}

Error decode(Bytes body, ReadyForQuery& out) {
  Reader r(body);
  char s = static_cast<char>(r.u8());
  if (r.error() == Error::none && s != 'I' && s != 'T' && s != 'E') r.fail(Error::invalid_value);
  out.status = static_cast<TransactionStatus>(s);
  return r.finish();
}

Error decode(Bytes body, CommandComplete& out) {
  Reader r(body);
  out.tag = r.cstring();
  return r.finish();
}

Error decode(Bytes body, DataRow& out) {
  Reader r(body);
  std::int16_t n = r.i16();
  if (r.error() != Error::none) return r.error();
  if (n < 0) return Error::invalid_value;
  out.columns.clear();
  out.columns.reserve(static_cast<std::size_t>(n));
  for (std::int16_t i = 0; i < n; ++i) {
    std::int32_t len = r.i32();
    if (r.error() != Error::none) return r.error();
    if (len == -1) {
      out.columns.emplace_back(std::nullopt);
      continue;
    }
    if (len < 0) return Error::invalid_value;
    out.columns.emplace_back(r.bytes(static_cast<std::size_t>(len)));
  }
  return r.finish();
}

Error decode(Bytes body, NegotiateProtocolVersion& out) {
  Reader r(body);
  out.newest_minor = r.i32();
  out.num_options = r.i32();
  if (r.error() != Error::none) return r.error();
  if (out.num_options < 0) return Error::invalid_value;
  Bytes opts = r.rest();
  Reader o(opts);
  for (std::int32_t i = 0; i < out.num_options; ++i) {
    o.cstring();
    if (o.error() != Error::none) return o.error();
  }
  out.options = opts;
  return o.finish();
}

Error decode(Bytes body, CopyResponse& out) {
  Reader r(body);
  out.format = static_cast<std::int8_t>(r.u8());
  out.num_columns = r.i16();
  if (r.error() != Error::none) return r.error();
  if (out.num_columns < 0 || (out.format != 0 && out.format != 1)) return Error::invalid_value;
  r.bytes(static_cast<std::size_t>(out.num_columns) * 2);
  return r.finish();
}

Error decode(Bytes body, NotificationResponse& out) {
  Reader r(body);
  out.process_id = r.i32();
  out.channel = r.cstring();
  out.payload = r.cstring();
  return r.finish();
}

Error decode(Bytes body, ErrorFields& out) {
  out = ErrorFields{};
  Reader r(body);
  for (;;) {
    std::uint8_t code = r.u8();
    if (r.error() != Error::none) return r.error();
    if (code == 0) break;
    std::string_view value = r.cstring();
    if (r.error() != Error::none) return r.error();
    switch (code) {
      case 'S':
        out.severity = value;
        break;
      case 'V':
        out.severity_nonlocalized = value;
        break;
      case 'C':
        out.sqlstate = value;
        break;
      case 'M':
        out.message = value;
        break;
      case 'D':
        out.detail = value;
        break;
      case 'H':
        out.hint = value;
        break;
      case 'P':
        out.position = value;
        break;
      default:
        break;
    }
  }
  return r.finish();
}

std::optional<std::uint64_t> rows_from_tag(std::string_view tag) noexcept {
  // The count is the last space-separated word, for the commands that report one (55.7 CommandComplete).
  static constexpr std::string_view counted[] = {"INSERT ", "DELETE ", "UPDATE ", "MERGE ",
                                                 "SELECT ", "MOVE ",   "FETCH ",  "COPY "};
  bool has_count = false;
  for (auto prefix : counted) {
    if (tag.starts_with(prefix)) has_count = true;
  }
  if (!has_count) return std::nullopt;
  auto sp = tag.rfind(' ');
  std::string_view digits = tag.substr(sp + 1);
  std::uint64_t v = 0;
  auto [p, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), v);
  if (ec != std::errc{} || p != digits.data() + digits.size() || digits.empty()) return std::nullopt;
  return v;
}

}  // namespace backend

}  // namespace pgw::protocol
