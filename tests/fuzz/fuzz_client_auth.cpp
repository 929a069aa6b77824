// Fuzz target: ClientAuth fed the frontend messages framed from the input, as a hostile client sends them.
// Input: one control byte (which secret the user has, channel binding), then frontend messages. In the second
// message "@N@" becomes the server's nonce and ",p=@P@" a valid proof for the text before it, so the fuzzer
// reaches the success path and the passthrough keys.
#include <openssl/evp.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "pgw/protocol/client_auth.hpp"
#include "pgw/protocol/encoder.hpp"
#include "pgw/protocol/framer.hpp"
#include "pgw/protocol/messages.hpp"
#include "pgw/protocol/scram.hpp"

namespace {

using namespace pgw::protocol;
using Status = ClientAuth::Status;
using Failure = ClientAuth::Failure;

void check(bool ok) {
  if (!ok) std::abort();
}

Bytes bytes_of(const scram::Key& k) {
  return {k.data(), k.size()};
}

// One user's secret and the ClientKey behind it, derived once (PBKDF2 per input would make the fuzzer crawl).
struct Known {
  scram::Secret secret;
  scram::Key client_key{};
  Known() {
    check(scram::derive_secret("pencil", "fuzz-salt-16byte", 4096, secret) == Error::none);
    scram::Key salted{};
    check(PKCS5_PBKDF2_HMAC("pencil", 6, reinterpret_cast<const unsigned char*>("fuzz-salt-16byte"), 16, 4096,
                            EVP_sha256(), 32, salted.data()) == 1);
    client_key = scram::hmac_sha256(bytes_of(salted), as_bytes("Client Key"));
    check(scram::sha256(bytes_of(client_key)) == secret.stored_key);
  }
};

const Known& known() {
  static const Known k;
  return k;
}

std::optional<UserSecret> secret_for(std::uint8_t ctl) {
  switch (ctl & 3) {
    case 0:
      return std::nullopt;
    case 1:
      return UserSecret{PlainSecret{"pencil", known().secret}};
    case 2:
      return UserSecret{Md5Secret{"md5871c429757b7a0bf1654fad112b77bd4"}};
    default:
      return UserSecret{known().secret};
  }
}

std::string replace_all(std::string_view s, std::string_view token, std::string_view with) {
  std::string out;
  for (;;) {
    auto at = s.find(token);
    if (at == std::string_view::npos) break;
    out.append(s.substr(0, at));
    out.append(with);
    s.remove_prefix(at + token.size());
  }
  out.append(s);
  return out;
}

// The single Authentication message in out[from, end), decoded.
backend::Authentication reply(const std::vector<std::uint8_t>& out, std::size_t from) {
  FrameResult f = parse_frame(Bytes(out).subspan(from), protocol_max_message_length);
  check(f.status == FrameStatus::complete && f.frame.type == backend::authentication);
  check(from + f.frame.wire_size == out.size());
  backend::Authentication a;
  check(backend::decode(f.frame.body, a) == Error::none);
  return a;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::uint8_t ctl = data[0];
  const bool known_scram_user = (ctl & 3) == 1 || (ctl & 3) == 3;
  scram::ChannelBinding binding{(ctl & 4) != 0, "certificate-hash"};
  ClientAuth auth(ClientAuthMethod::scram_sha_256, "user", secret_for(ctl), binding, "mock-seed");
  std::vector<std::uint8_t> out;
  Encoder enc(out);
  check(auth.start(enc) == Status::in_progress);
  check(reply(out, 0).code == backend::AuthCode::sasl);

  std::string client_first_bare, server_first;
  Bytes in(data + 1, size - 1);
  for (int i = 0; i < 64 && !in.empty(); ++i) {
    FrameResult f = parse_frame(in, 1u << 16);
    if (f.status != FrameStatus::complete) break;
    in = in.subspan(f.frame.wire_size);

    Bytes body = f.frame.body;
    std::string patched;
    if (i == 0 && f.frame.type == frontend::password) {
      frontend::SASLInitialResponse r;
      if (frontend::decode(body, r) == Error::none) {
        std::string_view d = as_text(r.data);
        auto at = d.find(",,");
        if (at != std::string_view::npos) client_first_bare = std::string(d.substr(at + 2));
      }
    } else if (i == 1 && !server_first.empty()) {
      auto nonce_end = server_first.find(',');
      patched = replace_all(as_text(body), "@N@", server_first.substr(2, nonce_end - 2));
      if (auto at = patched.find(",p=@P@"); at != std::string::npos) {
        std::string auth_message = client_first_bare + "," + server_first + "," + patched.substr(0, at);
        scram::Key signature =
            scram::hmac_sha256(bytes_of(known().secret.stored_key), as_bytes(auth_message));
        scram::Key proof{};
        for (std::size_t k = 0; k < proof.size(); ++k) {
          proof[k] = static_cast<std::uint8_t>(known().client_key[k] ^ signature[k]);
        }
        patched.replace(at + 3, 3, scram::base64_encode(bytes_of(proof)));
      }
      body = as_bytes(patched);
    }

    const Status before = auth.status();
    const std::size_t written = out.size();
    Status s = auth.on_message(f.frame.type, body, enc);
    check(enc.error() == Error::none && s == auth.status());
    if (before != Status::in_progress) {
      check(s == before && out.size() == written);
      continue;
    }
    switch (s) {
      case Status::in_progress: {
        check(auth.failure() == Failure::none);
        backend::Authentication a = reply(out, written);
        check(a.code == backend::AuthCode::sasl_continue);
        server_first = std::string(as_text(a.data));
        check(server_first.starts_with("r="));
        break;
      }
      case Status::succeeded: {
        check(auth.failure() == Failure::none && known_scram_user);
        check(reply(out, written).code == backend::AuthCode::sasl_final);
        check(auth.passthrough_keys().has_value() == ((ctl & 3) == 3));
        if (auth.passthrough_keys()) {
          check(scram::sha256(bytes_of(auth.passthrough_keys()->client_key)) == known().secret.stored_key);
        }
        check(!auth.used_channel_binding() || binding.available);
        break;
      }
      case Status::failed:
        check(auth.failure() != Failure::none && out.size() == written);
        check(auth.failure_detail().find("pencil") == std::string::npos);
        break;
    }
  }
  return 0;
}
