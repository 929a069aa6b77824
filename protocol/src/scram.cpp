// SCRAM-SHA-256 secrets and state machines, following RFC 5802/7677 and PostgreSQL's auth-scram.c checks.
#include "pgw/protocol/scram.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <charconv>
#include <limits>

namespace pgw::protocol::scram {

namespace {

Bytes bytes_of(const Key& k) {
  return {k.data(), k.size()};
}

Key xor_keys(const Key& a, const Key& b) {
  Key out{};
  for (std::size_t i = 0; i < out.size(); ++i)
    out[i] = static_cast<std::uint8_t>(a[i] ^ b[i]);
  return out;
}

// Every SCRAM derivation from a password goes through here, so every one is SASLprep'd like PostgreSQL's.
bool salted_password(std::string_view raw_password, std::string_view salt, int iterations, Key& out) {
  std::string password = saslprep(raw_password);
  bool ok =
      PKCS5_PBKDF2_HMAC(password.data(), static_cast<int>(password.size()),
                        reinterpret_cast<const unsigned char*>(salt.data()), static_cast<int>(salt.size()),
                        iterations, EVP_sha256(), static_cast<int>(out.size()), out.data()) == 1;
  OPENSSL_cleanse(password.data(), password.size());
  return ok;
}

// Reads "x=value" where x is the expected attribute; value runs to the next ',' or the end.
bool read_attribute(std::string_view& in, char attr, std::string_view& value) {
  if (in.size() < 2 || in[0] != attr || in[1] != '=') return false;
  in.remove_prefix(2);
  auto comma = in.find(',');
  value = in.substr(0, comma);
  in = comma == std::string_view::npos ? std::string_view{} : in.substr(comma + 1);
  return true;
}

// Reads any "x=value" attribute (x a letter).
bool read_any_attribute(std::string_view& in, char& attr, std::string_view& value) {
  if (in.size() < 2 || in[1] != '=') return false;
  char a = in[0];
  if (!((a >= 'a' && a <= 'z') || (a >= 'A' && a <= 'Z'))) return false;
  attr = a;
  return read_attribute(in, a, value);
}

// RFC 5802: printable ASCII except ','.
bool valid_nonce(std::string_view n) {
  if (n.empty()) return false;
  for (char c : n) {
    if (c < 0x21 || c > 0x7e || c == ',') return false;
  }
  return true;
}

bool parse_positive_int(std::string_view s, int& out) {
  int v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc{} || p != s.data() + s.size() || s.empty() || v <= 0) return false;
  out = v;
  return true;
}

std::optional<Key> decode_key(std::string_view b64) {
  auto raw = base64_decode(b64);
  if (!raw || raw->size() != Key{}.size()) return std::nullopt;
  Key k{};
  std::copy(raw->begin(), raw->end(), k.begin());
  return k;
}

std::string gs2_header_for(char flag) {
  if (flag == 'p') return std::string("p=") + std::string(channel_binding_type) + ",,";
  return std::string(1, flag) + ",,";
}

}  // namespace

Key hmac_sha256(Bytes key, Bytes data) {
  Key out{};
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), data.data(), data.size(), out.data(), &len);
  return out;
}

Key sha256(Bytes data) {
  Key out{};
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), out.data(), &len, EVP_sha256(), nullptr);
  return out;
}

bool equal_constant_time(Bytes a, Bytes b) noexcept {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

std::string base64_encode(Bytes data) {
  std::string out(4 * ((data.size() + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), data.data(),
                          static_cast<int>(data.size()));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

std::optional<std::string> base64_decode(std::string_view text) {
  // EVP_DecodeBlock skips whitespace and counts padding as data: validate strictly first.
  if (text.size() % 4 != 0) return std::nullopt;
  std::size_t padding = 0;
  for (std::size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    bool alpha =
        (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/';
    if (c == '=') {
      if (i + 2 < text.size()) return std::nullopt;  // '=' only in the last two positions
      ++padding;
    } else if (!alpha || padding > 0) {
      return std::nullopt;
    }
  }
  if (padding > 2) return std::nullopt;
  std::string out(text.size() / 4 * 3, '\0');
  if (text.empty()) return out;
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(text.data()), static_cast<int>(text.size()));
  if (n < 0) return std::nullopt;
  out.resize(static_cast<std::size_t>(n) - padding);
  return out;
}

std::string make_nonce() {
  std::array<std::uint8_t, nonce_raw_length> raw{};
  RAND_bytes(raw.data(), static_cast<int>(raw.size()));
  return base64_encode(raw);
}

std::optional<Secret> parse_secret(std::string_view text) {
  // SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>
  constexpr std::string_view prefix = "SCRAM-SHA-256$";
  if (!text.starts_with(prefix)) return std::nullopt;
  text.remove_prefix(prefix.size());
  auto colon1 = text.find(':');
  auto dollar = text.find('$');
  if (colon1 == std::string_view::npos || dollar == std::string_view::npos || dollar < colon1)
    return std::nullopt;
  auto colon2 = text.find(':', dollar);
  if (colon2 == std::string_view::npos) return std::nullopt;
  Secret s;
  // Bounded as on the client side: each login attempt derives a key with this many rounds on an I/O thread.
  if (!parse_positive_int(text.substr(0, colon1), s.iterations) || s.iterations > max_iterations)
    return std::nullopt;
  auto salt = base64_decode(text.substr(colon1 + 1, dollar - colon1 - 1));
  auto stored = decode_key(text.substr(dollar + 1, colon2 - dollar - 1));
  auto server = decode_key(text.substr(colon2 + 1));
  if (!salt || salt->empty() || !stored || !server) return std::nullopt;
  s.salt = std::move(*salt);
  s.stored_key = *stored;
  s.server_key = *server;
  return s;
}

std::string format_secret(const Secret& s) {
  return "SCRAM-SHA-256$" + std::to_string(s.iterations) + ":" + base64_encode(as_bytes(s.salt)) + "$" +
         base64_encode(bytes_of(s.stored_key)) + ":" + base64_encode(bytes_of(s.server_key));
}

Error derive_secret(std::string_view password, std::string_view salt, int iterations, Secret& out) {
  Key sp{};
  if (iterations <= 0 || !salted_password(password, salt, iterations, sp)) return Error::crypto_failure;
  Key client_key = hmac_sha256(bytes_of(sp), as_bytes("Client Key"));
  out.iterations = iterations;
  out.salt = std::string(salt);
  out.stored_key = sha256(bytes_of(client_key));
  out.server_key = hmac_sha256(bytes_of(sp), as_bytes("Server Key"));
  OPENSSL_cleanse(sp.data(), sp.size());
  return Error::none;
}

// ---------------------------------------------------------------------------------------------------------------
// Server

Server::Server(std::optional<Secret> secret, std::string_view user, std::string_view mock_seed,
               ChannelBinding binding)
    : binding_(std::move(binding)) {
  if (secret) {
    secret_ = std::move(*secret);
  } else {
    // Deterministic per user, so repeated attempts see the same salt, as they would for a real user.
    mock_ = true;
    Key salt = hmac_sha256(as_bytes(mock_seed), as_bytes(user));
    secret_.iterations = default_iterations;
    secret_.salt.assign(reinterpret_cast<const char*>(salt.data()), salt_length);
    RAND_bytes(secret_.stored_key.data(), static_cast<int>(secret_.stored_key.size()));
    RAND_bytes(secret_.server_key.data(), static_cast<int>(secret_.server_key.size()));
  }
}

Error Server::on_client_first(std::string_view chosen_mechanism, std::string_view in,
                              std::string& server_first) {
  if (state_ != State::initial) return Error::unexpected_message;
  state_ = State::failed;
  if (in.size() > max_message_length) return Error::scram_malformed;
  if (chosen_mechanism == mechanism_plus) {
    if (!binding_.available) return Error::scram_channel_binding;
    plus_chosen_ = true;
  } else if (chosen_mechanism != mechanism) {
    return Error::scram_malformed;
  }
  if (in.empty()) return Error::scram_malformed;
  char flag = in[0];
  switch (flag) {
    case 'n':
      in.remove_prefix(1);
      break;
    case 'y':
      // The client supports channel binding but believes we do not: a downgrade if we do (RFC 5802 6).
      if (binding_.available) return Error::scram_channel_binding;
      in.remove_prefix(1);
      break;
    case 'p': {
      std::string_view type;
      if (!plus_chosen_ || !read_attribute(in, 'p', type)) return Error::scram_channel_binding;
      if (type != channel_binding_type) return Error::scram_channel_binding;
      // Nothing after the type: there is no ',' to step back to (and `in` may be a null view).
      if (in.empty()) return Error::scram_malformed;
      // read_attribute consumed the ',' after the type: step back so the authzid check below sees it.
      in = std::string_view(in.data() - 1, in.size() + 1);
      break;
    }
    default:
      return Error::scram_malformed;
  }
  if (plus_chosen_ && flag != 'p') return Error::scram_channel_binding;
  // ",<authzid>," : PostgreSQL refuses an authorization identity.
  if (in.empty() || in[0] != ',') return Error::scram_malformed;
  in.remove_prefix(1);
  if (in.empty() || in[0] != ',') return Error::scram_malformed;
  in.remove_prefix(1);
  gs2_header_ = gs2_header_for(flag);
  client_first_bare_ = std::string(in);
  if (!in.empty() && in[0] == 'm') return Error::scram_malformed;  // mandatory extension we do not know
  std::string_view user_attr, client_nonce;
  if (!read_attribute(in, 'n', user_attr))
    return Error::scram_malformed;  // user name: ignored, as PostgreSQL
  if (!read_attribute(in, 'r', client_nonce) || !valid_nonce(client_nonce)) return Error::scram_malformed;
  while (!in.empty()) {  // optional extensions
    char a = 0;
    std::string_view v;
    if (!read_any_attribute(in, a, v)) return Error::scram_malformed;
  }
  nonce_ = std::string(client_nonce) + make_nonce();
  server_first_ = "r=" + nonce_ + ",s=" + base64_encode(as_bytes(secret_.salt)) +
                  ",i=" + std::to_string(secret_.iterations);
  server_first = server_first_;
  state_ = State::sent_server_first;
  return Error::none;
}

Error Server::on_client_final(std::string_view in, std::string& server_final) {
  if (state_ != State::sent_server_first) return Error::unexpected_message;
  state_ = State::failed;
  if (in.size() > max_message_length) return Error::scram_malformed;
  const std::string_view whole = in;
  std::string_view cbind_b64, nonce;
  if (!read_attribute(in, 'c', cbind_b64)) return Error::scram_malformed;
  std::string expected_cbind = gs2_header_;
  if (plus_chosen_) expected_cbind += binding_.data;
  if (!equal_constant_time(as_bytes(cbind_b64), as_bytes(base64_encode(as_bytes(expected_cbind))))) {
    return Error::scram_channel_binding;
  }
  cbind_used_ = plus_chosen_;
  if (!read_attribute(in, 'r', nonce)) return Error::scram_malformed;
  // Extensions until the proof, which must come last.
  std::string_view proof_b64;
  std::size_t proof_at = 0;
  for (;;) {
    if (in.empty()) return Error::scram_malformed;
    proof_at = static_cast<std::size_t>(in.data() - whole.data());
    char a = 0;
    std::string_view v;
    bool last = in.find(',') == std::string_view::npos;
    if (!read_any_attribute(in, a, v)) return Error::scram_malformed;
    if (a == 'p') {
      if (!last) return Error::scram_malformed;  // garbage after the proof
      proof_b64 = v;
      break;
    }
  }
  if (nonce != nonce_) return Error::scram_nonce_mismatch;
  auto proof = decode_key(proof_b64);
  if (!proof) return Error::scram_malformed;
  std::string_view final_without_proof = whole.substr(0, proof_at - 1);  // drop the ',' before "p="
  std::string auth_message =
      client_first_bare_ + "," + server_first_ + "," + std::string(final_without_proof);
  Key client_signature = hmac_sha256(bytes_of(secret_.stored_key), as_bytes(auth_message));
  Key client_key = xor_keys(*proof, client_signature);
  Key stored = sha256(bytes_of(client_key));
  bool ok = equal_constant_time(bytes_of(stored), bytes_of(secret_.stored_key));
  if (!ok || mock_) return Error::scram_bad_proof;
  client_key_ = client_key;
  Key server_signature = hmac_sha256(bytes_of(secret_.server_key), as_bytes(auth_message));
  server_final = "v=" + base64_encode(bytes_of(server_signature));
  state_ = State::done;
  return Error::none;
}

// ---------------------------------------------------------------------------------------------------------------
// Client

Client::Client(std::string password, ChannelBinding binding, bool server_offers_plus)
    : password_(std::move(password)), binding_(std::move(binding)) {
  use_plus_ = binding_.available && server_offers_plus;
}

Client::Client(Keys keys, ChannelBinding binding, bool server_offers_plus)
    : keys_(keys), binding_(std::move(binding)) {
  use_plus_ = binding_.available && server_offers_plus;
}

std::string Client::client_first() {
  // 'y': we could bind but the server did not offer PLUS (RFC 5802 6); 'n': no TLS at all.
  char flag = use_plus_ ? 'p' : (binding_.available ? 'y' : 'n');
  gs2_header_ = gs2_header_for(flag);
  client_nonce_ = make_nonce();
  client_first_bare_ = "n=,r=" + client_nonce_;
  state_ = State::sent_first;
  return gs2_header_ + client_first_bare_;
}

Error Client::on_server_first(std::string_view in, std::string& client_final) {
  if (state_ != State::sent_first) return Error::unexpected_message;
  state_ = State::failed;
  if (in.size() > max_message_length) return Error::scram_malformed;
  const std::string server_first(in);
  std::string_view nonce, salt_b64, iter_text;
  if (!in.empty() && in[0] == 'm') return Error::scram_malformed;
  if (!read_attribute(in, 'r', nonce) || !read_attribute(in, 's', salt_b64) ||
      !read_attribute(in, 'i', iter_text)) {
    return Error::scram_malformed;
  }
  if (!in.empty()) return Error::scram_malformed;
  if (!valid_nonce(nonce) || nonce.size() <= client_nonce_.size() || !nonce.starts_with(client_nonce_)) {
    return Error::scram_nonce_mismatch;
  }
  auto salt = base64_decode(salt_b64);
  int iterations = 0;
  if (!salt || salt->empty() || !parse_positive_int(iter_text, iterations) || iterations > max_iterations) {
    return Error::scram_malformed;
  }
  Key client_key{}, server_key{};
  if (password_) {
    Key sp{};
    if (!salted_password(*password_, *salt, iterations, sp)) return Error::crypto_failure;
    client_key = hmac_sha256(bytes_of(sp), as_bytes("Client Key"));
    server_key = hmac_sha256(bytes_of(sp), as_bytes("Server Key"));
    OPENSSL_cleanse(sp.data(), sp.size());
  } else {
    client_key = keys_->client_key;
    server_key = keys_->server_key;
  }
  std::string cbind = gs2_header_;
  if (use_plus_) cbind += binding_.data;
  std::string without_proof = "c=" + base64_encode(as_bytes(cbind)) + ",r=" + std::string(nonce);
  std::string auth_message = client_first_bare_ + "," + server_first + "," + without_proof;
  Key stored = sha256(bytes_of(client_key));
  Key proof = xor_keys(client_key, hmac_sha256(bytes_of(stored), as_bytes(auth_message)));
  expected_server_signature_ = hmac_sha256(bytes_of(server_key), as_bytes(auth_message));
  client_final = without_proof + ",p=" + base64_encode(bytes_of(proof));
  OPENSSL_cleanse(client_key.data(), client_key.size());
  state_ = State::sent_final;
  return Error::none;
}

Error Client::on_server_final(std::string_view in) {
  if (state_ != State::sent_final) return Error::unexpected_message;
  state_ = State::failed;
  std::string_view value;
  if (!in.empty() && in[0] == 'e') return Error::scram_server_error;
  if (!read_attribute(in, 'v', value)) return Error::scram_malformed;
  // Extensions after v= are allowed by RFC 5802; libpq ignores them too.
  auto sig = decode_key(value);
  if (!sig) return Error::scram_malformed;
  if (!equal_constant_time(bytes_of(*sig), bytes_of(expected_server_signature_))) {
    return Error::scram_bad_server_signature;
  }
  state_ = State::done;
  return Error::none;
}

}  // namespace pgw::protocol::scram
