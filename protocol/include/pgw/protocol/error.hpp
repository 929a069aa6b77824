// Closed set of reasons a byte stream from a peer is not valid PostgreSQL v3 protocol.
#pragma once

#include <cstdint>
#include <string_view>

namespace pgw::protocol {

enum class Error : std::uint8_t {
  none = 0,
  length_too_small,            // length word smaller than the length word itself
  length_too_large,            // length word above the configured or protocol bound
  truncated,                   // a field runs past the end of the message body
  trailing_bytes,              // bytes left after the last field of a message
  missing_terminator,          // a C string without its NUL inside the body
  invalid_value,               // a field holds a value the protocol does not allow
  unsupported_protocol,        // startup packet with a major version other than 3
  unexpected_message,          // a message type that is not allowed in this state
  missing_user,                // startup packet without the "user" parameter
  scram_malformed,             // SCRAM message does not follow RFC 5802 syntax
  scram_nonce_mismatch,        // SCRAM nonce does not extend the one sent earlier
  scram_channel_binding,       // SCRAM channel binding flag or data does not match the connection
  scram_bad_proof,             // SCRAM client proof does not verify against the secret
  scram_bad_server_signature,  // SCRAM server signature does not verify: the server is not who it claims
  scram_server_error,          // SCRAM server sent e=...
  crypto_failure,              // OpenSSL primitive failed
  string_has_nul,              // an encoder was given a string with an embedded NUL
  message_too_large,           // an encoder produced a message above the protocol's 1 GB bound
};

// Short English text for logs and ErrorResponse messages.
std::string_view describe(Error e) noexcept;

}  // namespace pgw::protocol
