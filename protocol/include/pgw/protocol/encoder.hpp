// Builders for the messages pgwarden sends itself (PostgreSQL docs 55.7). The encoder remembers its first
// error.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "pgw/protocol/bytes.hpp"
#include "pgw/protocol/error.hpp"
#include "pgw/protocol/messages.hpp"

namespace pgw::protocol {

// Appends messages to a byte vector. begin() opens a message, end() patches its length; an error (a string
// with an embedded NUL, a message over the protocol bound) sticks and the caller checks error() once.
class Encoder {
 public:
  explicit Encoder(std::vector<std::uint8_t>& out) noexcept : out_(out) {}

  Encoder& begin(char type);  // typed message
  Encoder& begin_untyped();   // startup-family packet: length word only
  Encoder& u8(std::uint8_t v);
  Encoder& i16(std::int16_t v);
  Encoder& i32(std::int32_t v);
  Encoder& cstring(std::string_view s);
  Encoder& raw(Bytes b);
  Encoder& raw(std::string_view s) { return raw(as_bytes(s)); }
  Encoder& end();

  Error error() const noexcept { return error_; }
  std::vector<std::uint8_t>& buffer() noexcept { return out_; }

 private:
  std::vector<std::uint8_t>& out_;
  std::size_t length_at_ = 0;  // offset of the open message's length word
  bool open_ = false;
  Error error_ = Error::none;
};

// What pgwarden itself says in an ErrorResponse or NoticeResponse (never text that came from a server).
struct Notice {
  std::string_view severity = "ERROR";  // ERROR | FATAL | WARNING | NOTICE ...
  std::string_view sqlstate;
  std::string_view message;
  std::string_view detail;
  std::string_view hint;
};

namespace encode {

// Frontend messages (pgwarden -> PostgreSQL).
void ssl_request(Encoder& e);
void cancel_request(Encoder& e, CancelRequest key);
void startup_message(Encoder& e, std::span<const StartupParameter> parameters);  // protocol 3.0
void password_message(Encoder& e, std::string_view password);
void sasl_initial_response(Encoder& e, std::string_view mechanism, std::string_view data);
void sasl_response(Encoder& e, std::string_view data);
void query(Encoder& e, std::string_view sql);
void sync(Encoder& e);
void flush(Encoder& e);
void terminate(Encoder& e);
void parse(Encoder& e, std::string_view statement, std::string_view sql, Bytes parameter_types,
           std::int16_t num_parameter_types);
// Bind with every parameter in text format (nullopt = NULL) and text results.
void bind_text(Encoder& e, std::string_view portal, std::string_view statement,
               std::span<const std::optional<std::string_view>> parameters);
void execute(Encoder& e, std::string_view portal, std::int32_t max_rows);
void describe(Encoder& e, char target, std::string_view name);
void close(Encoder& e, char target, std::string_view name);

// Backend messages (pgwarden -> client).
void authentication_ok(Encoder& e);
void authentication_cleartext(Encoder& e);
void authentication_md5(Encoder& e, std::span<const std::uint8_t, 4> salt);
void authentication_sasl(Encoder& e, std::span<const std::string_view> mechanisms);
void authentication_sasl_continue(Encoder& e, std::string_view data);
void authentication_sasl_final(Encoder& e, std::string_view data);
void backend_key_data(Encoder& e, CancelRequest key);
void parameter_status(Encoder& e, std::string_view name, std::string_view value);
void ready_for_query(Encoder& e, backend::TransactionStatus status);
void negotiate_protocol_version(Encoder& e, std::int32_t newest_minor,
                                std::span<const std::string_view> unrecognized_options);
void error_response(Encoder& e, const Notice& n);
void notice_response(Encoder& e, const Notice& n);
void command_complete(Encoder& e, std::string_view tag);
// A column of a result pgwarden makes itself (the admin console): text format, no table.
struct ColumnDescription {
  std::string_view name;
  std::int32_t type_oid;   // 25 text, 23 int4, 20 int8, 1700 numeric, ...
  std::int16_t type_size;  // -1 for variable length
};
void row_description(Encoder& e, std::span<const ColumnDescription> columns);
// Values in text format; nullopt is SQL NULL.
void data_row(Encoder& e, std::span<const std::optional<std::string_view>> values);
void empty_query_response(Encoder& e);

}  // namespace encode

}  // namespace pgw::protocol
