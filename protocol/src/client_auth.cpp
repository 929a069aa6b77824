// Client authentication exchanges; unknown users take the same path as wrong passwords.
#include "pgw/protocol/client_auth.hpp"

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "pgw/protocol/md5.hpp"

namespace pgw::protocol {

namespace {

// A password message's text, or nullopt when it is malformed (no terminator, embedded NUL).
std::optional<std::string> password_text(Bytes body) {
  frontend::PasswordMessage m;
  if (decode(body, m) != Error::none) return std::nullopt;
  return std::string(m.password);
}

}  // namespace

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
  step_ = Step::done;
  return status_;
}

ClientAuth::Status ClientAuth::succeed() {
  step_ = Step::done;
  status_ = Status::succeeded;
  return status_;
}

std::string_view ClientAuth::method_used() const noexcept {
  if (scram_) return channel_binding_used_ ? scram::mechanism_plus : scram::mechanism;
  return method_ == ClientAuthMethod::password ? "password" : "md5";
}

ClientAuth::Status ClientAuth::start(Encoder& out) {
  const scram::Secret* stored_scram = secret_ ? std::get_if<scram::Secret>(&*secret_) : nullptr;
  if (method_ == ClientAuthMethod::password) {
    encode::authentication_cleartext(out);
    step_ = Step::cleartext;
    return status_;
  }
  // md5 against a SCRAM secret cannot work (the MD5 hash is not derivable from it): PostgreSQL runs SCRAM.
  if (method_ == ClientAuthMethod::md5 && stored_scram == nullptr) {
    RAND_bytes(md5_salt_.data(), static_cast<int>(md5_salt_.size()));
    encode::authentication_md5(out, md5_salt_);
    step_ = Step::md5_response;
    return status_;
  }
  // A SCRAM secret is usable as is; a plain password through the SCRAM secret derived from it. An MD5 secret
  // cannot serve SCRAM: the exchange runs as for an unknown user (PostgreSQL does the same).
  std::optional<scram::Secret> s;
  if (stored_scram != nullptr) s = *stored_scram;
  if (const auto* pl = secret_ ? std::get_if<PlainSecret>(&*secret_) : nullptr) s = pl->scram;
  scram_.emplace(std::move(s), user_, mock_seed_, binding_);
  std::array<std::string_view, 2> mechanisms{scram::mechanism_plus, scram::mechanism};
  // SCRAM-SHA-256-PLUS is offered first, and only over TLS (PostgreSQL's order).
  encode::authentication_sasl(out, binding_.available
                                       ? std::span<const std::string_view>(mechanisms)
                                       : std::span<const std::string_view>(mechanisms).subspan(1));
  step_ = Step::sasl_initial;
  return status_;
}

ClientAuth::Status ClientAuth::on_message(char type, Bytes body, Encoder& out) {
  if (status_ != Status::in_progress) return status_;
  if (type != frontend::password) {
    return fail(Failure::protocol_violation,
                std::string("expected a password or SASL response, got message type '") + type + "'");
  }
  switch (step_) {
    case Step::sasl_initial:
      return on_sasl_initial(body, out);
    case Step::sasl_response:
      return on_sasl_response(body, out);
    case Step::md5_response:
      return on_md5_response(body);
    case Step::cleartext:
      return on_cleartext(body);
    default:
      return fail(Failure::protocol_violation, "unexpected authentication message");
  }
}

ClientAuth::Status ClientAuth::on_sasl_initial(Bytes body, Encoder& out) {
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

ClientAuth::Status ClientAuth::on_sasl_response(Bytes body, Encoder& out) {
  frontend::SASLResponse m;
  decode(body, m);
  std::string server_final;
  Error e = scram_->on_client_final(as_text(m.data), server_final);
  if (e == Error::scram_bad_proof) return fail(Failure::bad_credentials, "SCRAM proof does not verify");
  if (e == Error::scram_channel_binding) return fail(Failure::channel_binding, std::string(describe(e)));
  if (e != Error::none) return fail(Failure::protocol_violation, std::string(describe(e)));
  encode::authentication_sasl_final(out, server_final);
  channel_binding_used_ = scram_->used_channel_binding();
  // Only a stored SCRAM secret gives the ClientKey PostgreSQL knows; a derived one is ours alone.
  if (const auto* sc = secret_ ? std::get_if<scram::Secret>(&*secret_) : nullptr) {
    passthrough_ = scram::Client::Keys{scram_->client_key(), sc->server_key};
  }
  return succeed();
}

ClientAuth::Status ClientAuth::on_md5_response(Bytes body) {
  auto answer = password_text(body);
  if (!answer) return fail(Failure::protocol_violation, "malformed password message");
  std::string stored;
  if (const auto* pl = secret_ ? std::get_if<PlainSecret>(&*secret_) : nullptr) {
    stored = md5::secret(pl->password, user_);
  } else if (const auto* m = secret_ ? std::get_if<Md5Secret>(&*secret_) : nullptr) {
    stored = m->secret;
  }
  // An unknown user is compared against a response that cannot match, so both take the same path.
  std::string expected = stored.empty() ? std::string(35, '\0') : md5::response(stored, md5_salt_);
  bool ok = !stored.empty() && answer->size() == expected.size() &&
            scram::equal_constant_time(as_bytes(*answer), as_bytes(expected));
  OPENSSL_cleanse(answer->data(), answer->size());
  if (!ok) return fail(Failure::bad_credentials, "MD5 response does not match");
  return succeed();
}

ClientAuth::Status ClientAuth::on_cleartext(Bytes body) {
  auto password = password_text(body);
  if (!password) return fail(Failure::protocol_violation, "malformed password message");
  // Every path derives one SCRAM key (as PostgreSQL's scram_verify_plain_password does for the secrets it
  // stores), so the time to the answer does not tell a plain, MD5, SCRAM or unknown user apart. An empty
  // password never logs in.
  auto verify_scram = [&](const scram::Secret& sc) {
    scram::Secret derived;
    return scram::derive_secret(*password, sc.salt, sc.iterations, derived) == Error::none &&
           scram::equal_constant_time({derived.stored_key.data(), derived.stored_key.size()},
                                      {sc.stored_key.data(), sc.stored_key.size()}) &&
           scram::equal_constant_time({derived.server_key.data(), derived.server_key.size()},
                                      {sc.server_key.data(), sc.server_key.size()});
  };
  bool ok = false;
  const auto* pl = secret_ ? std::get_if<PlainSecret>(&*secret_) : nullptr;
  const auto* sc = secret_ ? std::get_if<scram::Secret>(&*secret_) : nullptr;
  if (pl) {
    ok = verify_scram(pl->scram);
  } else if (sc) {
    ok = verify_scram(*sc);
  } else {
    scram::Secret ignored;
    scram::derive_secret(*password, mock_seed_, scram::default_iterations, ignored);
    if (const auto* m = secret_ ? std::get_if<Md5Secret>(&*secret_) : nullptr) {
      std::string computed = md5::secret(*password, user_);
      ok = scram::equal_constant_time(as_bytes(computed), as_bytes(m->secret));
    }
  }
  if (password->empty()) ok = false;
  if (!ok) {
    OPENSSL_cleanse(password->data(), password->size());
    return fail(Failure::bad_credentials, "password does not match");
  }
  cleartext_ = std::move(*password);
  return succeed();
}

}  // namespace pgw::protocol
