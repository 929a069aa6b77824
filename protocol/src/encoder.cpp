// Message builders: append to a byte vector, patch the length word at end().
#include "pgw/protocol/encoder.hpp"

#include "pgw/protocol/framer.hpp"

namespace pgw::protocol {

namespace {
void put_u32(std::vector<std::uint8_t>& out, std::size_t at, std::uint32_t v) {
  out[at] = static_cast<std::uint8_t>(v >> 24);
  out[at + 1] = static_cast<std::uint8_t>(v >> 16);
  out[at + 2] = static_cast<std::uint8_t>(v >> 8);
  out[at + 3] = static_cast<std::uint8_t>(v);
}
}  // namespace

Encoder& Encoder::begin(char type) {
  out_.push_back(static_cast<std::uint8_t>(type));
  return begin_untyped();
}

Encoder& Encoder::begin_untyped() {
  length_at_ = out_.size();
  out_.insert(out_.end(), 4, 0);
  open_ = true;
  return *this;
}

Encoder& Encoder::u8(std::uint8_t v) {
  out_.push_back(v);
  return *this;
}

Encoder& Encoder::i16(std::int16_t v) {
  auto u = static_cast<std::uint16_t>(v);
  out_.push_back(static_cast<std::uint8_t>(u >> 8));
  out_.push_back(static_cast<std::uint8_t>(u));
  return *this;
}

Encoder& Encoder::i32(std::int32_t v) {
  std::size_t at = out_.size();
  out_.insert(out_.end(), 4, 0);
  put_u32(out_, at, static_cast<std::uint32_t>(v));
  return *this;
}

Encoder& Encoder::cstring(std::string_view s) {
  if (s.find('\0') != std::string_view::npos && error_ == Error::none) error_ = Error::string_has_nul;
  out_.insert(out_.end(), s.begin(), s.end());
  out_.push_back(0);
  return *this;
}

Encoder& Encoder::raw(Bytes b) {
  out_.insert(out_.end(), b.begin(), b.end());
  return *this;
}

Encoder& Encoder::end() {
  if (!open_) return *this;
  std::size_t len = out_.size() - length_at_;
  if (len > protocol_max_message_length && error_ == Error::none) error_ = Error::message_too_large;
  put_u32(out_, length_at_, static_cast<std::uint32_t>(len));
  open_ = false;
  return *this;
}

namespace encode {

void ssl_request(Encoder& e) {
  e.begin_untyped().i32(ssl_request_code).end();
}

void cancel_request(Encoder& e, CancelRequest key) {
  e.begin_untyped().i32(cancel_request_code).i32(key.process_id).i32(key.secret_key).end();
}

void startup_message(Encoder& e, std::span<const StartupParameter> parameters) {
  e.begin_untyped().i32(
      static_cast<std::int32_t>(std::uint32_t{protocol_major} << 16 | protocol_latest_minor));
  for (const auto& p : parameters)
    e.cstring(p.name).cstring(p.value);
  e.u8(0).end();
}

void password_message(Encoder& e, std::string_view password) {
  e.begin(frontend::password).cstring(password).end();
}

void sasl_initial_response(Encoder& e, std::string_view mechanism, std::string_view data) {
  e.begin(frontend::password).cstring(mechanism).i32(static_cast<std::int32_t>(data.size())).raw(data).end();
}

void sasl_response(Encoder& e, std::string_view data) {
  e.begin(frontend::password).raw(data).end();
}

void query(Encoder& e, std::string_view sql) {
  e.begin(frontend::query).cstring(sql).end();
}
void sync(Encoder& e) {
  e.begin(frontend::sync).end();
}
void flush(Encoder& e) {
  e.begin(frontend::flush).end();
}
void terminate(Encoder& e) {
  e.begin(frontend::terminate).end();
}

void parse(Encoder& e, std::string_view statement, std::string_view sql, Bytes parameter_types,
           std::int16_t num_parameter_types) {
  e.begin(frontend::parse)
      .cstring(statement)
      .cstring(sql)
      .i16(num_parameter_types)
      .raw(parameter_types)
      .end();
}

void bind_text(Encoder& e, std::string_view portal, std::string_view statement,
               std::span<const std::optional<std::string_view>> parameters) {
  e.begin(frontend::bind).cstring(portal).cstring(statement).i16(0);
  e.i16(static_cast<std::int16_t>(parameters.size()));
  for (const auto& p : parameters) {
    if (!p) {
      e.i32(-1);
      continue;
    }
    e.i32(static_cast<std::int32_t>(p->size())).raw(*p);
  }
  e.i16(0).end();
}

void execute(Encoder& e, std::string_view portal, std::int32_t max_rows) {
  e.begin(frontend::execute).cstring(portal).i32(max_rows).end();
}

void describe(Encoder& e, char target, std::string_view name) {
  e.begin(frontend::describe).u8(static_cast<std::uint8_t>(target)).cstring(name).end();
}

void close(Encoder& e, char target, std::string_view name) {
  e.begin(frontend::close).u8(static_cast<std::uint8_t>(target)).cstring(name).end();
}

void authentication_ok(Encoder& e) {
  e.begin(backend::authentication).i32(0).end();
}

void authentication_cleartext(Encoder& e) {
  e.begin(backend::authentication)
      .i32(static_cast<std::int32_t>(backend::AuthCode::cleartext_password))
      .end();
}

void authentication_md5(Encoder& e, std::span<const std::uint8_t, 4> salt) {
  e.begin(backend::authentication).i32(static_cast<std::int32_t>(backend::AuthCode::md5_password));
  e.raw(Bytes(salt.data(), salt.size())).end();
}

void authentication_sasl(Encoder& e, std::span<const std::string_view> mechanisms) {
  e.begin(backend::authentication).i32(static_cast<std::int32_t>(backend::AuthCode::sasl));
  for (auto m : mechanisms)
    e.cstring(m);
  e.u8(0).end();
}

void authentication_sasl_continue(Encoder& e, std::string_view data) {
  e.begin(backend::authentication)
      .i32(static_cast<std::int32_t>(backend::AuthCode::sasl_continue))
      .raw(data)
      .end();
}

void authentication_sasl_final(Encoder& e, std::string_view data) {
  e.begin(backend::authentication)
      .i32(static_cast<std::int32_t>(backend::AuthCode::sasl_final))
      .raw(data)
      .end();
}

void backend_key_data(Encoder& e, CancelRequest key) {
  e.begin(backend::backend_key_data).i32(key.process_id).i32(key.secret_key).end();
}

void parameter_status(Encoder& e, std::string_view name, std::string_view value) {
  e.begin(backend::parameter_status).cstring(name).cstring(value).end();
}

void ready_for_query(Encoder& e, backend::TransactionStatus status) {
  e.begin(backend::ready_for_query).u8(static_cast<std::uint8_t>(status)).end();
}

void negotiate_protocol_version(Encoder& e, std::int32_t newest_minor,
                                std::span<const std::string_view> unrecognized_options) {
  e.begin(backend::negotiate_protocol_version).i32(newest_minor);
  e.i32(static_cast<std::int32_t>(unrecognized_options.size()));
  for (auto o : unrecognized_options)
    e.cstring(o);
  e.end();
}

namespace {
void notice_fields(Encoder& e, const Notice& n) {
  e.u8('S').cstring(n.severity);
  e.u8('V').cstring(n.severity);
  e.u8('C').cstring(n.sqlstate);
  e.u8('M').cstring(n.message);
  if (!n.detail.empty()) e.u8('D').cstring(n.detail);
  if (!n.hint.empty()) e.u8('H').cstring(n.hint);
  e.u8(0);
}
}  // namespace

void error_response(Encoder& e, const Notice& n) {
  e.begin(backend::error_response);
  notice_fields(e, n);
  e.end();
}

void notice_response(Encoder& e, const Notice& n) {
  e.begin(backend::notice_response);
  notice_fields(e, n);
  e.end();
}

void command_complete(Encoder& e, std::string_view tag) {
  e.begin(backend::command_complete).cstring(tag).end();
}

void row_description(Encoder& e, std::span<const ColumnDescription> columns) {
  e.begin(backend::row_description).i16(static_cast<std::int16_t>(columns.size()));
  for (const auto& c : columns) {
    e.cstring(c.name).i32(0).i16(0).i32(c.type_oid).i16(c.type_size).i32(-1).i16(0);
  }
  e.end();
}

void data_row(Encoder& e, std::span<const std::optional<std::string_view>> values) {
  e.begin(backend::data_row).i16(static_cast<std::int16_t>(values.size()));
  for (const auto& v : values) {
    if (!v) {
      e.i32(-1);
    } else {
      e.i32(static_cast<std::int32_t>(v->size())).raw(*v);
    }
  }
  e.end();
}

void empty_query_response(Encoder& e) {
  e.begin(backend::empty_query_response).end();
}

}  // namespace encode

}  // namespace pgw::protocol
