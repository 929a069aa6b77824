// The server login state machine: which messages may come when, and what pgwarden answers.
#include "pgw/protocol/server_login.hpp"

#include "pgw/protocol/md5.hpp"

namespace pgw::protocol {

ServerError ServerError::from(const backend::ErrorFields& f) {
  ServerError e;
  e.severity = std::string(f.severity_nonlocalized.empty() ? f.severity : f.severity_nonlocalized);
  e.sqlstate = std::string(f.sqlstate);
  e.message = std::string(f.message);
  e.detail = std::string(f.detail);
  e.hint = std::string(f.hint);
  return e;
}

ServerLogin::ServerLogin(Credentials credentials, scram::ChannelBinding binding)
    : creds_(std::move(credentials)), binding_(std::move(binding)) {}

void ServerLogin::start(std::span<const StartupParameter> parameters, Encoder& out) {
  encode::startup_message(out, parameters);
}

ServerLogin::Status ServerLogin::fail(Failure f, std::string detail) {
  status_ = Status::failed;
  failure_ = f;
  detail_ = std::move(detail);
  return status_;
}

ServerLogin::Status ServerLogin::on_authentication(Bytes body, Encoder& out) {
  backend::Authentication auth;
  if (decode(body, auth) != Error::none)
    return fail(Failure::protocol_violation, "malformed Authentication message");
  using backend::AuthCode;
  switch (auth.code) {
    case AuthCode::ok:
      // A server that skips the end of a SASL exchange has not proven it knows the secret (libpq refuses
      // too).
      if (scram_ && !sasl_verified_) {
        return fail(Failure::bad_server_signature, "server sent AuthenticationOk before completing SCRAM");
      }
      authenticated_ = true;
      return status_;
    case AuthCode::cleartext_password:
      if (!creds_.password) return fail(Failure::no_credentials, "server asks for a cleartext password");
      method_ = "password";
      encode::password_message(out, *creds_.password);
      return status_;
    case AuthCode::md5_password: {
      std::string secret;
      if (creds_.password) {
        secret = md5::secret(*creds_.password, creds_.user);
      } else if (creds_.md5_secret) {
        secret = *creds_.md5_secret;
      } else {
        return fail(Failure::no_credentials, "server asks for an MD5 password");
      }
      method_ = "md5";
      std::array<std::uint8_t, 4> salt{};
      std::copy(auth.data.begin(), auth.data.end(), salt.begin());
      encode::password_message(out, md5::response(secret, salt));
      return status_;
    }
    case AuthCode::sasl: {
      if (scram_) return fail(Failure::protocol_violation, "server restarted SASL authentication");
      bool plain = false, plus = false;
      Error e = backend::for_each_sasl_mechanism(auth.data, [&](std::string_view m) {
        if (m == scram::mechanism) plain = true;
        if (m == scram::mechanism_plus) plus = true;
      });
      if (e != Error::none) return fail(Failure::protocol_violation, "malformed SASL mechanism list");
      if (!plain && !(plus && binding_.available)) {
        return fail(Failure::unsupported_method, "server offers no SASL mechanism pgwarden supports");
      }
      if (creds_.scram_keys) {
        scram_.emplace(*creds_.scram_keys, binding_, plus);
      } else if (creds_.password) {
        scram_.emplace(*creds_.password, binding_, plus);
      } else {
        return fail(Failure::no_credentials, "server asks for SCRAM-SHA-256");
      }
      method_ = "scram-sha-256";
      std::string first = scram_->client_first();
      encode::sasl_initial_response(out, scram_->chosen_mechanism(), first);
      return status_;
    }
    case AuthCode::sasl_continue: {
      if (!scram_) return fail(Failure::protocol_violation, "SASL continuation without a SASL exchange");
      std::string final_message;
      Error e = scram_->on_server_first(as_text(auth.data), final_message);
      if (e != Error::none) return fail(Failure::protocol_violation, std::string(describe(e)));
      encode::sasl_response(out, final_message);
      return status_;
    }
    case AuthCode::sasl_final: {
      if (!scram_) return fail(Failure::protocol_violation, "SASL final message without a SASL exchange");
      Error e = scram_->on_server_final(as_text(auth.data));
      if (e == Error::scram_bad_server_signature)
        return fail(Failure::bad_server_signature, std::string(describe(e)));
      if (e != Error::none) return fail(Failure::protocol_violation, std::string(describe(e)));
      sasl_verified_ = true;
      return status_;
    }
    default:
      return fail(Failure::unsupported_method,
                  "server asks for an authentication method pgwarden does not support "
                  "(Kerberos, GSSAPI or SSPI)");
  }
}

ServerLogin::Status ServerLogin::on_message(char type, Bytes body, Encoder& out) {
  if (status_ != Status::in_progress) return status_;
  switch (type) {
    case backend::authentication:
      if (authenticated_)
        return fail(Failure::protocol_violation, "Authentication message after AuthenticationOk");
      return on_authentication(body, out);
    case backend::error_response: {
      backend::ErrorFields f;
      if (decode(body, f) != Error::none) return fail(Failure::protocol_violation, "malformed ErrorResponse");
      server_error_ = ServerError::from(f);
      return fail(Failure::server_error, server_error_.message);
    }
    case backend::notice_response:
      return status_;
    case backend::negotiate_protocol_version: {
      // We ask for 3.0 with no _pq_ options, so there is nothing to downgrade; accept a 3.0 answer.
      backend::NegotiateProtocolVersion v;
      if (decode(body, v) != Error::none)
        return fail(Failure::protocol_violation, "malformed NegotiateProtocolVersion");
      return status_;
    }
    case backend::parameter_status: {
      if (!authenticated_)
        return fail(Failure::protocol_violation, "ParameterStatus before AuthenticationOk");
      backend::ParameterStatus p;
      if (decode(body, p) != Error::none)
        return fail(Failure::protocol_violation, "malformed ParameterStatus");
      for (auto& kv : parameters_) {
        if (kv.first == p.name) {
          kv.second = std::string(p.value);
          return status_;
        }
      }
      parameters_.emplace_back(std::string(p.name), std::string(p.value));
      return status_;
    }
    case backend::backend_key_data: {
      if (!authenticated_) return fail(Failure::protocol_violation, "BackendKeyData before AuthenticationOk");
      backend::BackendKeyData k;
      if (decode(body, k) != Error::none)
        return fail(Failure::protocol_violation, "malformed BackendKeyData");
      key_ = {k.process_id, k.secret_key};
      return status_;
    }
    case backend::ready_for_query: {
      if (!authenticated_) return fail(Failure::protocol_violation, "ReadyForQuery before AuthenticationOk");
      backend::ReadyForQuery z;
      if (decode(body, z) != Error::none) return fail(Failure::protocol_violation, "malformed ReadyForQuery");
      tx_status_ = z.status;
      status_ = Status::done;
      return status_;
    }
    default:
      return fail(Failure::protocol_violation,
                  std::string("unexpected message type '") + type + "' during login");
  }
}

}  // namespace pgw::protocol
