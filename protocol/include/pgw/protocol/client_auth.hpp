// Authenticating a client (PostgreSQL docs 55.2.1 and 55.3): pgwarden plays PostgreSQL's part. Sans-IO.
#pragma once

#include <array>
#include <optional>
#include <string>
#include <variant>

#include "pgw/protocol/encoder.hpp"
#include "pgw/protocol/scram.hpp"

namespace pgw::protocol {

// A user's secret as the auth file holds it.
struct PlainSecret {
  std::string password;
  scram::Secret scram;  // derived once when the file is loaded, so clients can use SCRAM against it
};
struct Md5Secret {
  std::string secret;  // "md5" + 32 hex digits
};
using UserSecret = std::variant<PlainSecret, Md5Secret, scram::Secret>;

// The methods that run an exchange; cert and trust decide without one (the proxy sends AuthenticationOk).
enum class ClientAuthMethod : std::uint8_t { scram_sha_256, md5, password };

class ClientAuth {
 public:
  enum class Status : std::uint8_t { in_progress, succeeded, failed };
  enum class Failure : std::uint8_t {
    none,
    bad_credentials,     // wrong password or unknown user: 28P01, one text for both
    protocol_violation,  // malformed or unexpected message: 08P01
    channel_binding,     // SCRAM channel binding refused: 28000
  };

  // secret == nullopt: the user is unknown; the exchange runs to the end and fails like a wrong password.
  // md5 against a SCRAM secret runs SCRAM instead, as PostgreSQL does. password must only be chosen over TLS
  // (the caller checks).
  ClientAuth(ClientAuthMethod method, std::string user, std::optional<UserSecret> secret,
             scram::ChannelBinding binding, std::string mock_seed);

  // Appends the first Authentication request.
  Status start(Encoder& out);
  // Feeds one client message (type 'p' in this phase); replies are appended to out.
  Status on_message(char type, Bytes body, Encoder& out);

  Status status() const noexcept { return status_; }
  Failure failure() const noexcept { return failure_; }
  // For logs only: what went wrong, never holding a password or a proof.
  const std::string& failure_detail() const noexcept { return detail_; }
  // After SCRAM against a stored SCRAM secret: the ClientKey the client proved, for passthrough to the
  // server.
  const std::optional<scram::Client::Keys>& passthrough_keys() const noexcept { return passthrough_; }
  bool used_channel_binding() const noexcept { return channel_binding_used_; }
  // After a successful cleartext password exchange: the password, usable to log in to the server.
  const std::optional<std::string>& cleartext_password() const noexcept { return cleartext_; }
  // What ran: "SCRAM-SHA-256", "SCRAM-SHA-256-PLUS", "md5" or "password" (for logs and audit).
  std::string_view method_used() const noexcept;

 private:
  Status fail(Failure f, std::string detail);
  Status on_sasl_initial(Bytes body, Encoder& out);
  Status on_sasl_response(Bytes body, Encoder& out);
  Status on_md5_response(Bytes body);
  Status on_cleartext(Bytes body);
  Status succeed();

  ClientAuthMethod method_;
  std::string user_;
  std::optional<UserSecret> secret_;
  scram::ChannelBinding binding_;
  std::string mock_seed_;
  std::optional<scram::Server> scram_;
  std::optional<scram::Client::Keys> passthrough_;
  std::optional<std::string> cleartext_;
  std::array<std::uint8_t, 4> md5_salt_{};
  bool channel_binding_used_ = false;
  enum class Step : std::uint8_t {
    start,
    sasl_initial,
    sasl_response,
    md5_response,
    cleartext,
    done
  } step_ = Step::start;
  Status status_ = Status::in_progress;
  Failure failure_ = Failure::none;
  std::string detail_;
};

}  // namespace pgw::protocol
