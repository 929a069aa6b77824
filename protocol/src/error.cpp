// Text for protocol errors.
#include "pgw/protocol/error.hpp"

namespace pgw::protocol {

std::string_view describe(Error e) noexcept {
  switch (e) {
    case Error::none:
      return "no error";
    case Error::length_too_small:
      return "invalid message length (smaller than its header)";
    case Error::length_too_large:
      return "message length exceeds the allowed maximum";
    case Error::truncated:
      return "message is shorter than its fields";
    case Error::trailing_bytes:
      return "message has bytes after its last field";
    case Error::missing_terminator:
      return "string field is not NUL-terminated inside the message";
    case Error::invalid_value:
      return "field holds a value the protocol does not allow";
    case Error::unsupported_protocol:
      return "unsupported frontend protocol version";
    case Error::unexpected_message:
      return "unexpected message type";
    case Error::missing_user:
      return "no PostgreSQL user name specified in startup packet";
    case Error::scram_malformed:
      return "malformed SCRAM message";
    case Error::scram_nonce_mismatch:
      return "SCRAM nonce does not match";
    case Error::scram_channel_binding:
      return "SCRAM channel binding check failed";
    case Error::scram_bad_proof:
      return "SCRAM proof does not verify";
    case Error::scram_bad_server_signature:
      return "SCRAM server signature does not verify";
    case Error::scram_server_error:
      return "SCRAM exchange refused by the server";
    case Error::crypto_failure:
      return "cryptographic primitive failed";
    case Error::string_has_nul:
      return "string contains a NUL byte";
    case Error::message_too_large:
      return "message exceeds the protocol's size limit";
  }
  return "unknown protocol error";
}

}  // namespace pgw::protocol
