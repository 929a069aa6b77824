// Client authentication exchanges; unknown users take the same path as wrong passwords.
#include "pgw/protocol/client_auth.hpp"

#include <array>

namespace pgw::protocol {

ClientAuth::ClientAuth(ClientAuthMethod method, std::string user, std::optional<UserSecret> secret,
                       scram::ChannelBinding binding, std::string mock_seed)
    : method_(method),
      user_(std::move(user)),
      secret_(std::move(secret)),
      binding_(std::move(binding)),
      mock_seed_(std::move(mock_seed)) {}

ClientAuth::Status ClientAuth::fail(Failure f, std::string detail) {
  status_ = Status::failed;
  failure_ = f;
  detail_ = std::move(detail);
  return status_;
}

ClientAuth::Status ClientAuth::start(Encoder& out) {
  switch (method_) {
    case ClientAuthMethod::scram_sha_256: {
      // A SCRAM secret is usable as is; a plain password through the SCRAM secret derived from it. An MD5
      // secret cannot serve SCRAM: the exchange runs as for an unknown user (PostgreSQL does the same).
      std::optional<scram::Secret> s;
      if (secret_) {
        if (const auto* sc = std::get_if<scram::Secret>(&*secret_)) s = *sc;
        if (const auto* pl = std::get_if<PlainSecret>(&*secret_)) s = pl->scram;
      }
      scram_.emplace(std::move(s), user_, mock_seed_, binding_);
      std::array<std::string_view, 2> mechanisms{scram::mechanism_plus, scram::mechanism};
      // SCRAM-SHA-256-PLUS is offered first, and only over TLS (PostgreSQL's order).
      encode::authentication_sasl(out, binding_.available
                                           ? std::span<const std::string_view>(mechanisms)
                                           : std::span<const std::string_view>(mechanisms).subspan(1));
      step_ = Step::sasl_initial;
      return status_;
    }
  }
  return fail(Failure::protocol_violation, "unknown method");
}

ClientAuth::Status ClientAuth::on_message(char type, Bytes body, Encoder& out) {
  if (status_ != Status::in_progress) return status_;
  if (type != frontend::password) {
    return fail(Failure::protocol_violation,
                std::string("expected a password or SASL response, got message type '") + type + "'");
  }
  switch (step_) {
    case Step::sasl_initial: {
      frontend::SASLInitialResponse m;
      if (decode(body, m) != Error::none || !m.has_data) {
        return fail(Failure::protocol_violation, "malformed SASLInitialResponse");
      }
      std::string server_first;
      Error e = scram_->on_client_first(m.mechanism, as_text(m.data), server_first);
      if (e == Error::scram_channel_binding) return fail(Failure::channel_binding, std::string(describe(e)));
      if (e != Error::none) return fail(Failure::protocol_violation, std::string(describe(e)));
      encode::authentication_sasl_continue(out, server_first);
      step_ = Step::sasl_response;
      return status_;
    }
    case Step::sasl_response: {
      frontend::SASLResponse m;
      decode(body, m);
      std::string server_final;
      Error e = scram_->on_client_final(as_text(m.data), server_final);
      if (e == Error::scram_bad_proof) return fail(Failure::bad_credentials, "SCRAM proof does not verify");
      if (e == Error::scram_channel_binding) return fail(Failure::channel_binding, std::string(describe(e)));
      if (e == Error::scram_nonce_mismatch)
        return fail(Failure::protocol_violation, std::string(describe(e)));
      if (e != Error::none) return fail(Failure::protocol_violation, std::string(describe(e)));
      encode::authentication_sasl_final(out, server_final);
      channel_binding_used_ = scram_->used_channel_binding();
      // Only a stored SCRAM secret gives the ClientKey PostgreSQL knows; a derived one is ours alone.
      if (const auto* sc = secret_ ? std::get_if<scram::Secret>(&*secret_) : nullptr) {
        passthrough_ = scram::Client::Keys{scram_->client_key(), sc->server_key};
      }
      step_ = Step::done;
      status_ = Status::succeeded;
      return status_;
    }
    default:
      return fail(Failure::protocol_violation, "unexpected authentication message");
  }
}

}  // namespace pgw::protocol
