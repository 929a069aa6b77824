// Decoders for the PostgreSQL v3 messages pgwarden inspects (PostgreSQL docs 55.7 "Message Formats").
// Every decoded field is a view into the frame body; a decoder rejects truncated fields and trailing bytes.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "pgw/protocol/bytes.hpp"
#include "pgw/protocol/error.hpp"

namespace pgw::protocol {

// ---------------------------------------------------------------------------------------------------------------
// Startup-family packets: no type byte (55.7: StartupMessage, SSLRequest, GSSENCRequest, CancelRequest).

inline constexpr std::int32_t cancel_request_code = 80877102;  // 1234 << 16 | 5678
inline constexpr std::int32_t ssl_request_code = 80877103;     // 1234 << 16 | 5679
inline constexpr std::int32_t gssenc_request_code = 80877104;  // 1234 << 16 | 5680
inline constexpr std::uint16_t protocol_major = 3;
inline constexpr std::uint16_t protocol_latest_minor = 0;  // what pgwarden speaks: 3.0, like PostgreSQL 15

struct StartupParameter {
  std::string_view name;
  std::string_view value;
};

struct StartupMessage {
  std::uint16_t major = 0;
  std::uint16_t minor = 0;
  std::vector<StartupParameter> parameters;        // everything except "_pq_." protocol options
  std::vector<std::string_view> protocol_options;  // "_pq_.*" names: none is recognised in 3.0
  // The last value given for a name (PostgreSQL lets a later one win), or nullopt.
  std::optional<std::string_view> get(std::string_view name) const noexcept;
  std::string_view user() const noexcept { return get("user").value_or(std::string_view{}); }
  // "database" defaults to the user name (PostgreSQL docs 55.7, StartupMessage).
  std::string_view database() const noexcept;
  // True when pgwarden must answer with NegotiateProtocolVersion (a newer 3.x minor or any _pq_ option).
  bool needs_protocol_negotiation() const noexcept {
    return minor > protocol_latest_minor || !protocol_options.empty();
  }
};

struct CancelRequest {
  std::int32_t process_id = 0;
  std::int32_t secret_key = 0;
};

enum class InitialPacketKind : std::uint8_t { startup, ssl_request, gssenc_request, cancel_request };

struct InitialPacket {
  InitialPacketKind kind = InitialPacketKind::startup;
  StartupMessage startup;  // kind == startup
  CancelRequest cancel;    // kind == cancel_request
};

// Decodes the body of a startup-family packet (everything after the length word). A StartupMessage must name
// a user, use protocol major version 3 and end with its terminating NUL.
Error decode_initial_packet(Bytes body, InitialPacket& out);

// ---------------------------------------------------------------------------------------------------------------
// Frontend (client -> server) messages.
namespace frontend {

inline constexpr char bind = 'B';
inline constexpr char close = 'C';
inline constexpr char copy_data = 'd';
inline constexpr char copy_done = 'c';
inline constexpr char copy_fail = 'f';
inline constexpr char describe = 'D';
inline constexpr char execute = 'E';
inline constexpr char flush = 'H';
inline constexpr char function_call = 'F';
inline constexpr char parse = 'P';
inline constexpr char password = 'p';  // PasswordMessage, SASLInitialResponse, SASLResponse, GSSResponse
inline constexpr char query = 'Q';
inline constexpr char sync = 'S';
inline constexpr char terminate = 'X';

// True for the type bytes a frontend may send after startup (55.7). Anything else is a protocol violation.
bool is_known_type(char type) noexcept;

struct Query {
  std::string_view query;
};
struct Parse {
  std::string_view statement;  // "" = the unnamed statement
  std::string_view query;
  std::int16_t num_parameter_types = 0;
  Bytes parameter_types;  // num_parameter_types int32 OIDs
};
struct Bind {
  std::string_view portal;
  std::string_view statement;
  std::int16_t num_parameter_formats = 0;
  Bytes parameter_formats;  // int16 each
  std::int16_t num_parameters = 0;
  Bytes parameters;  // each: int32 length (-1 = NULL) + bytes; validated by the decoder
  std::int16_t num_result_formats = 0;
  Bytes result_formats;
};
struct Describe {
  char target = 'S';  // 'S' statement, 'P' portal
  std::string_view name;
};
struct Execute {
  std::string_view portal;
  std::int32_t max_rows = 0;
};
struct Close {
  char target = 'S';
  std::string_view name;
};
struct CopyFail {
  std::string_view message;
};
struct PasswordMessage {
  std::string_view password;
};
struct SASLInitialResponse {
  std::string_view mechanism;
  bool has_data = false;  // length -1 means "no initial response"
  Bytes data;
};
struct SASLResponse {
  Bytes data;
};

Error decode(Bytes body, Query& out);
Error decode(Bytes body, Parse& out);
Error decode(Bytes body, Bind& out);
Error decode(Bytes body, Describe& out);
Error decode(Bytes body, Execute& out);
Error decode(Bytes body, Close& out);
Error decode(Bytes body, CopyFail& out);
Error decode(Bytes body, PasswordMessage& out);
Error decode(Bytes body, SASLInitialResponse& out);
Error decode(Bytes body, SASLResponse& out);

// Visits each Bind parameter: fn(index, value) with value nullopt for SQL NULL.
template <class Fn>
void for_each_parameter(const Bind& message, Fn&& fn) {
  Reader r(message.parameters);
  for (std::int16_t i = 0; i < message.num_parameters; ++i) {
    std::int32_t len = r.i32();
    if (len < 0) {
      fn(i, std::optional<Bytes>{});
    } else {
      fn(i, std::optional<Bytes>{r.bytes(static_cast<std::size_t>(len))});
    }
  }
}

}  // namespace frontend

// ---------------------------------------------------------------------------------------------------------------
// Backend (server -> client) messages.
namespace backend {

inline constexpr char authentication = 'R';
inline constexpr char backend_key_data = 'K';
inline constexpr char bind_complete = '2';
inline constexpr char close_complete = '3';
inline constexpr char command_complete = 'C';
inline constexpr char copy_both_response = 'W';
inline constexpr char copy_data = 'd';
inline constexpr char copy_done = 'c';
inline constexpr char copy_in_response = 'G';
inline constexpr char copy_out_response = 'H';
inline constexpr char data_row = 'D';
inline constexpr char empty_query_response = 'I';
inline constexpr char error_response = 'E';
inline constexpr char function_call_response = 'V';
inline constexpr char negotiate_protocol_version = 'v';
inline constexpr char no_data = 'n';
inline constexpr char notice_response = 'N';
inline constexpr char notification_response = 'A';
inline constexpr char parameter_description = 't';
inline constexpr char parameter_status = 'S';
inline constexpr char parse_complete = '1';
inline constexpr char portal_suspended = 's';
inline constexpr char ready_for_query = 'Z';
inline constexpr char row_description = 'T';

bool is_known_type(char type) noexcept;

enum class AuthCode : std::int32_t {
  ok = 0,
  kerberos_v5 = 2,
  cleartext_password = 3,
  md5_password = 5,
  gss = 7,
  gss_continue = 8,
  sspi = 9,
  sasl = 10,
  sasl_continue = 11,
  sasl_final = 12,
};

struct Authentication {
  AuthCode code = AuthCode::ok;
  Bytes data;  // md5: the 4-byte salt; sasl: mechanism list; sasl_continue / sasl_final: SASL data
};
struct BackendKeyData {
  std::int32_t process_id = 0;
  std::int32_t secret_key = 0;
};
struct ParameterStatus {
  std::string_view name;
  std::string_view value;
};
// Transaction status in ReadyForQuery: 'I' idle, 'T' in a transaction block, 'E' in a failed block.
enum class TransactionStatus : char { idle = 'I', in_transaction = 'T', failed = 'E' };
struct ReadyForQuery {
  TransactionStatus status = TransactionStatus::idle;
};
struct CommandComplete {
  std::string_view tag;
};
struct NegotiateProtocolVersion {
  std::int32_t newest_minor = 0;
  std::int32_t num_options = 0;
  Bytes options;  // num_options C strings
};
struct CopyResponse {  // CopyInResponse, CopyOutResponse, CopyBothResponse
  std::int8_t format = 0;
  std::int16_t num_columns = 0;
};
// A DataRow's column values in order; nullopt is SQL NULL. Views into the message body.
struct DataRow {
  std::vector<std::optional<Bytes>> columns;
};
struct NotificationResponse {
  std::int32_t process_id = 0;
  std::string_view channel;
  std::string_view payload;
};

// ErrorResponse and NoticeResponse fields (55.8). Unknown field codes are accepted and skipped, as the
// protocol asks ("frontends should silently ignore fields of unrecognized type").
struct ErrorFields {
  std::string_view severity;               // 'S' (possibly localized)
  std::string_view severity_nonlocalized;  // 'V'
  std::string_view sqlstate;               // 'C'
  std::string_view message;                // 'M'
  std::string_view detail;                 // 'D'
  std::string_view hint;                   // 'H'
  std::string_view position;               // 'P'
};

Error decode(Bytes body, Authentication& out);
Error decode(Bytes body, BackendKeyData& out);
Error decode(Bytes body, ParameterStatus& out);
Error decode(Bytes body, ReadyForQuery& out);
Error decode(Bytes body, CommandComplete& out);
Error decode(Bytes body, NegotiateProtocolVersion& out);
Error decode(Bytes body, CopyResponse& out);
Error decode(Bytes body, NotificationResponse& out);
Error decode(Bytes body, DataRow& out);
Error decode(Bytes body, ErrorFields& out);

// Splits an AuthenticationSASL mechanism list (C strings ended by an empty one); fn(name) per mechanism.
template <class Fn>
Error for_each_sasl_mechanism(Bytes data, Fn&& fn) {
  Reader r(data);
  for (;;) {
    std::string_view m = r.cstring();
    if (r.error() != Error::none) return r.error();
    if (m.empty()) break;
    fn(m);
  }
  return r.finish();
}

// Rows affected from a CommandComplete tag ("INSERT 0 5", "UPDATE 3", "SELECT 10", "COPY 7"); nullopt for
// tags without a count ("CREATE TABLE").
std::optional<std::uint64_t> rows_from_tag(std::string_view tag) noexcept;

}  // namespace backend

}  // namespace pgw::protocol
