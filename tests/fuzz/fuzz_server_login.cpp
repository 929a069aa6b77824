// Fuzz target: ServerLogin fed the backend messages framed from the input, as a hostile or broken PostgreSQL.
// Input: one control byte (credentials, channel binding), then backend messages. In an
// AuthenticationSASLContinue body "@N@" becomes the client's nonce, and in an AuthenticationSASLFinal body
// "@S@" the valid server signature, so the fuzzer reaches the states behind SCRAM's random nonce.
#include <openssl/evp.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "pgw/protocol/encoder.hpp"
#include "pgw/protocol/framer.hpp"
#include "pgw/protocol/md5.hpp"
#include "pgw/protocol/messages.hpp"
#include "pgw/protocol/scram.hpp"
#include "pgw/protocol/server_login.hpp"

namespace {

using namespace pgw::protocol;
using Status = ServerLogin::Status;
using Failure = ServerLogin::Failure;

void check(bool ok) {
  if (!ok) std::abort();
}

// SCRAM keys for one password, derived once: PBKDF2 per input would make the fuzzer crawl, and a
// password-based SCRAM client would run PBKDF2 with whatever iteration count the input asks for.
struct Known {
  scram::Secret secret;
  scram::Key client_key{};
  Known() {
    check(scram::derive_secret("pencil", "fuzz-salt-16byte", 4096, secret) == Error::none);
    scram::Key salted{};
    check(PKCS5_PBKDF2_HMAC("pencil", 6, reinterpret_cast<const unsigned char*>("fuzz-salt-16byte"), 16, 4096,
                            EVP_sha256(), 32, salted.data()) == 1);
    client_key = scram::hmac_sha256(Bytes(salted.data(), salted.size()), as_bytes("Client Key"));
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

ServerLogin::Credentials credentials(std::uint8_t ctl) {
  ServerLogin::Credentials c;
  c.user = "user";
  scram::Client::Keys keys{known().client_key, known().secret.server_key};
  switch (ctl & 3) {
    case 1:  // a password, with SCRAM answered from keys
      c.password = "pencil";
      c.scram_keys = keys;
      break;
    case 2:
      c.md5_secret = md5::secret("pencil", "user");
      break;
    case 3:
      c.scram_keys = keys;
      break;
    default:
      break;
  }
  return c;
}

// What the fuzz target remembers of the SCRAM exchange, to forge the server's side of it.
struct Sasl {
  std::string client_first_bare;
  std::string server_first;
  std::string client_final_without_proof;
  std::int32_t last_code = -1;
};

// Looks at pgwarden's replies in out[from, end) and records the SCRAM messages among them.
void observe(const std::vector<std::uint8_t>& out, std::size_t from, Sasl& sasl) {
  Bytes rest = Bytes(out).subspan(from);
  while (!rest.empty()) {
    FrameResult f = parse_frame(rest, protocol_max_message_length);
    check(f.status == FrameStatus::complete);
    check(f.frame.type == frontend::password);
    if (sasl.last_code == static_cast<std::int32_t>(backend::AuthCode::sasl)) {
      frontend::SASLInitialResponse r;
      check(frontend::decode(f.frame.body, r) == Error::none && r.has_data);
      std::string_view data = as_text(r.data);
      auto at = data.find(",,");
      check(at != std::string_view::npos);
      sasl.client_first_bare = std::string(data.substr(at + 2));
    } else if (sasl.last_code == static_cast<std::int32_t>(backend::AuthCode::sasl_continue)) {
      std::string_view data = as_text(f.frame.body);
      auto at = data.rfind(",p=");
      check(at != std::string_view::npos);
      sasl.client_final_without_proof = std::string(data.substr(0, at));
    } else {
      frontend::PasswordMessage p;
      check(frontend::decode(f.frame.body, p) == Error::none);
    }
    rest = rest.subspan(f.frame.wire_size);
  }
}

std::string client_nonce(const Sasl& sasl) {
  auto at = sasl.client_first_bare.find("r=");
  return at == std::string::npos ? std::string() : sasl.client_first_bare.substr(at + 2);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::uint8_t ctl = data[0];
  scram::ChannelBinding binding{(ctl & 4) != 0, "certificate-hash"};
  ServerLogin login(credentials(ctl), binding);
  std::vector<std::uint8_t> out;
  Encoder enc(out);
  const StartupParameter params[] = {{"user", "user"}, {"database", "db"}};
  login.start(params, enc);
  check(enc.error() == Error::none);
  out.clear();

  Sasl sasl;
  Bytes in(data + 1, size - 1);
  for (int i = 0; i < 256 && !in.empty(); ++i) {
    FrameResult f = parse_frame(in, 1u << 16);
    if (f.status != FrameStatus::complete) break;
    in = in.subspan(f.frame.wire_size);

    Bytes body = f.frame.body;
    std::string patched;
    if (f.frame.type == backend::authentication && body.size() >= 4) {
      std::int32_t code = static_cast<std::int32_t>(load_u32(body.data()));
      std::string_view rest = as_text(body.subspan(4));
      if (code == static_cast<std::int32_t>(backend::AuthCode::sasl_continue)) {
        sasl.server_first = replace_all(rest, "@N@", client_nonce(sasl));
        patched = std::string(as_text(body.first(4))) + sasl.server_first;
      } else if (code == static_cast<std::int32_t>(backend::AuthCode::sasl_final) &&
                 rest.find("@S@") != std::string_view::npos) {
        std::string auth_message =
            sasl.client_first_bare + "," + sasl.server_first + "," + sasl.client_final_without_proof;
        scram::Key sig =
            scram::hmac_sha256(Bytes(known().secret.server_key.data(), 32), as_bytes(auth_message));
        patched = std::string(as_text(body.first(4))) +
                  replace_all(rest, "@S@", scram::base64_encode(Bytes(sig.data(), sig.size())));
      }
      if (!patched.empty()) body = as_bytes(patched);
      sasl.last_code = code;
    } else {
      sasl.last_code = -1;
    }

    const Status before = login.status();
    const std::size_t written = out.size();
    Status s = login.on_message(f.frame.type, body, enc);
    check(enc.error() == Error::none);
    check(s == login.status());
    if (before != Status::in_progress) {
      // Finished machines ignore everything and say nothing.
      check(s == before && out.size() == written);
      continue;
    }
    observe(out, written, sasl);
    switch (s) {
      case Status::in_progress:
        check(login.failure() == Failure::none);
        break;
      case Status::done:
        check(login.failure() == Failure::none && f.frame.type == backend::ready_for_query);
        check(out.size() == written);
        break;
      case Status::failed:
        check(login.failure() != Failure::none && out.size() == written);
        if (login.failure() == Failure::server_error) check(f.frame.type == backend::error_response);
        break;
    }
  }
  (void)login.parameters();
  (void)login.method_used();
  return 0;
}
