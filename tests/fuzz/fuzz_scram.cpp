// Fuzz target: SCRAM Server and Client state machines, parse_secret and base64_decode on hostile text.
// Input: one control byte, then up to three '\n'-separated parts. Tokens let the fuzzer get past the random
// nonces and forge valid proofs, so the code behind those checks is reached too: "@N@" becomes the peer's
// nonce,
// "@P@" a valid client proof for the text before it, "@S@" a valid server signature.
#include <openssl/evp.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>

#include "pgw/protocol/scram.hpp"

namespace {

using namespace pgw::protocol;
using namespace pgw::protocol::scram;

void check(bool ok) {
  if (!ok) std::abort();
}

Bytes bytes_of(const Key& k) {
  return {k.data(), k.size()};
}

// One user's keys, derived once (PBKDF2 is far too slow to run per input).
struct Known {
  Secret secret;
  Key client_key{};
  Known() {
    check(derive_secret("pencil", "fuzz-salt-16byte", 4096, secret) == Error::none);
    Key salted{};
    check(PKCS5_PBKDF2_HMAC("pencil", 6, reinterpret_cast<const unsigned char*>("fuzz-salt-16byte"), 16, 4096,
                            EVP_sha256(), 32, salted.data()) == 1);
    client_key = hmac_sha256(bytes_of(salted), as_bytes("Client Key"));
    check(sha256(bytes_of(client_key)) == secret.stored_key);
  }
};

const Known& known() {
  static const Known k;
  return k;
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

// The value of the "r=" attribute, first in the message or after a ','.
std::string_view nonce_in(std::string_view message) {
  if (message.starts_with("r=")) {
    message.remove_prefix(2);
  } else {
    auto at = message.find(",r=");
    if (at == std::string_view::npos) return {};
    message.remove_prefix(at + 3);
  }
  return message.substr(0, message.find(','));
}

std::string proof_for(const Key& client_key, const Key& stored_key, std::string_view auth_message) {
  Key signature = hmac_sha256(bytes_of(stored_key), as_bytes(auth_message));
  Key proof{};
  for (std::size_t i = 0; i < proof.size(); ++i)
    proof[i] = static_cast<std::uint8_t>(client_key[i] ^ signature[i]);
  return base64_encode(bytes_of(proof));
}

void fuzz_base64(std::string_view text) {
  auto decoded = base64_decode(text);
  if (!decoded) return;
  check(decoded->size() <= text.size() / 4 * 3);
  std::string encoded = base64_encode(as_bytes(*decoded));
  check(encoded.size() == text.size());
  auto again = base64_decode(encoded);
  check(again && *again == *decoded);
}

void fuzz_secret(std::string_view text) {
  auto s = parse_secret(text);
  if (!s) return;
  check(s->iterations > 0 && !s->salt.empty());
  auto again = parse_secret(format_secret(*s));
  check(again && again->iterations == s->iterations && again->salt == s->salt);
  check(again->stored_key == s->stored_key && again->server_key == s->server_key);
}

void fuzz_server(std::uint8_t ctl, std::string_view mech_text, std::string_view first,
                 std::string_view final_text) {
  const bool mock = (ctl & 1) != 0;
  ChannelBinding binding{(ctl & 2) != 0, "certificate-hash"};
  std::string_view mech = mechanism;
  switch ((ctl >> 2) & 3) {
    case 1:
      mech = mechanism_plus;
      break;
    case 2:
      mech = mech_text;
      break;
    case 3:
      mech = {};
      break;
    default:
      break;
  }
  const Known& k = known();
  Server server(mock ? std::nullopt : std::optional<Secret>(k.secret), "user", "mock-seed", binding);
  check(server.offers_plus() == binding.available);
  std::string server_first;
  if (server.on_client_first(mech, first, server_first) != Error::none) {
    std::string ignored;
    check(server.on_client_final(final_text, ignored) == Error::unexpected_message);
    return;
  }
  check(server_first.starts_with("r=") && server_first.size() < 2 * max_message_length);
  std::string client_final = replace_all(final_text, "@N@", nonce_in(server_first));
  if (auto at = client_final.find(",p=@P@"); at != std::string::npos) {
    // A valid proof over everything before it, as a client knowing the password would send.
    auto bare_at = first.find(",,");
    check(bare_at != std::string_view::npos);
    std::string auth_message =
        std::string(first.substr(bare_at + 2)) + "," + server_first + "," + client_final.substr(0, at);
    client_final.replace(at + 3, 3, proof_for(k.client_key, k.secret.stored_key, auth_message));
  }
  std::string server_final;
  Error e = server.on_client_final(client_final, server_final);
  if (e == Error::none) {
    check(!mock);
    check(server_final.starts_with("v=") && server.client_key() == k.client_key);
    check(!server.used_channel_binding() || binding.available);
  }
  std::string ignored;
  check(server.on_client_final(client_final, ignored) == Error::unexpected_message);
}

void fuzz_client(std::uint8_t ctl, std::string_view server_first_text, std::string_view server_final_text) {
  const Known& k = known();
  ChannelBinding binding{(ctl & 2) != 0, "certificate-hash"};
  Client client(Client::Keys{k.client_key, k.secret.server_key}, binding, (ctl & 16) != 0);
  const std::string first = client.client_first();
  const std::string_view client_nonce = nonce_in(first);
  const std::string server_first = replace_all(server_first_text, "@N@", client_nonce);
  std::string client_final;
  if (client.on_server_first(server_first, client_final) != Error::none) {
    check(client.on_server_final(server_final_text) == Error::unexpected_message);
    return;
  }
  check(client_final.starts_with("c=") && nonce_in(client_final).starts_with(client_nonce));
  auto proof_at = client_final.rfind(",p=");
  check(proof_at != std::string::npos);
  std::string auth_message =
      first.substr(first.find(",,") + 2) + "," + server_first + "," + client_final.substr(0, proof_at);
  std::string signature =
      base64_encode(bytes_of(hmac_sha256(bytes_of(k.secret.server_key), as_bytes(auth_message))));
  std::string server_final = replace_all(server_final_text, "@S@", signature);
  Error e = client.on_server_final(server_final);
  if (e == Error::none) check(server_final.starts_with("v="));
  check(client.on_server_final(server_final) == Error::unexpected_message);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::uint8_t ctl = data[0];
  std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
  std::string_view parts[3];
  for (int i = 0; i < 2; ++i) {
    auto nl = text.find('\n');
    parts[i] = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
  }
  parts[2] = text;

  fuzz_base64(parts[0]);
  fuzz_secret(parts[0]);
  fuzz_server(ctl, parts[0], parts[1], parts[2]);
  fuzz_client(ctl, parts[1], parts[2]);
  return 0;
}
