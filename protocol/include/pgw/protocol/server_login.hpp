// pgwarden logging in to PostgreSQL once TLS is settled (PostgreSQL docs 55.2.1): StartupMessage,
// authentication by SCRAM-SHA-256(-PLUS), MD5 or cleartext, then ParameterStatus, BackendKeyData and
// ReadyForQuery. Sans-IO.
#pragma once

#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "pgw/protocol/encoder.hpp"
#include "pgw/protocol/messages.hpp"
#include "pgw/protocol/scram.hpp"

namespace pgw::protocol {

// An ErrorResponse kept as owned strings: the server's words, never mixed with pgwarden's own text.
struct ServerError {
  std::string severity;
  std::string sqlstate;
  std::string message;
  std::string detail;
  std::string hint;
  static ServerError from(const backend::ErrorFields& f);
};

class ServerLogin {
 public:
  struct Credentials {
    std::string user;
    std::optional<std::string> password;            // plaintext
    std::optional<std::string> md5_secret;          // "md5..." as stored by PostgreSQL
    std::optional<scram::Client::Keys> scram_keys;  // SCRAM passthrough: ClientKey + ServerKey
  };
  enum class Status : std::uint8_t { in_progress, done, failed };
  enum class Failure : std::uint8_t {
    none,
    server_error,          // the server sent an ErrorResponse (server_error() holds it)
    no_credentials,        // the server asked for a method we hold no usable secret for
    unsupported_method,    // Kerberos, GSSAPI, SSPI or an unknown SASL mechanism
    bad_server_signature,  // SCRAM: the server could not prove it knows the secret
    protocol_violation,    // a message out of place or malformed
  };

  ServerLogin(Credentials credentials, scram::ChannelBinding binding);

  // Appends the StartupMessage (protocol 3.0) to out.
  void start(std::span<const StartupParameter> parameters, Encoder& out);
  // Feeds one complete backend message; replies, if any, are appended to out.
  Status on_message(char type, Bytes body, Encoder& out);

  Status status() const noexcept { return status_; }
  Failure failure() const noexcept { return failure_; }
  const std::string& failure_detail() const noexcept { return detail_; }
  const ServerError& server_error() const noexcept { return server_error_; }
  const std::vector<std::pair<std::string, std::string>>& parameters() const noexcept { return parameters_; }
  CancelRequest backend_key() const noexcept { return key_; }
  backend::TransactionStatus transaction_status() const noexcept { return tx_status_; }
  std::string_view method_used() const noexcept { return method_; }

 private:
  Status fail(Failure f, std::string detail);
  Status on_authentication(Bytes body, Encoder& out);

  Credentials creds_;
  scram::ChannelBinding binding_;
  std::optional<scram::Client> scram_;
  bool authenticated_ = false;
  bool sasl_verified_ = false;
  Status status_ = Status::in_progress;
  Failure failure_ = Failure::none;
  std::string detail_;
  ServerError server_error_;
  std::vector<std::pair<std::string, std::string>> parameters_;
  CancelRequest key_;
  backend::TransactionStatus tx_status_ = backend::TransactionStatus::idle;
  std::string_view method_ = "trust";
};

}  // namespace pgw::protocol
