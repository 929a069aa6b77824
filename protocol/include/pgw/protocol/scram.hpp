// SCRAM-SHA-256 and -PLUS (RFC 5802, RFC 7677, RFC 5929 tls-server-end-point) as PostgreSQL speaks it (docs
// 55.3.1), on OpenSSL's primitives: secrets, a server state machine and a client state machine.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "pgw/protocol/bytes.hpp"
#include "pgw/protocol/error.hpp"

namespace pgw::protocol::scram {

inline constexpr std::string_view mechanism = "SCRAM-SHA-256";
inline constexpr std::string_view mechanism_plus = "SCRAM-SHA-256-PLUS";
inline constexpr std::string_view channel_binding_type = "tls-server-end-point";
inline constexpr int default_iterations = 4096;          // PostgreSQL's scram_iterations default
inline constexpr std::size_t salt_length = 16;           // SCRAM_DEFAULT_SALT_LEN
inline constexpr std::size_t nonce_raw_length = 18;      // SCRAM_RAW_NONCE_LEN
inline constexpr std::size_t max_message_length = 4096;  // any real SCRAM message is far below this
// More PBKDF2 iterations than this (a server's challenge, a stored secret) are refused as hostile: a million
// already costs about half a second of CPU per login.
inline constexpr int max_iterations = 1'000'000;

using Key = std::array<std::uint8_t, 32>;

// A stored secret in PostgreSQL's pg_authid format:
// SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>.
struct Secret {
  int iterations = 0;
  std::string salt;  // raw bytes
  Key stored_key{};
  Key server_key{};
};

std::optional<Secret> parse_secret(std::string_view text);
std::string format_secret(const Secret& s);
// SASLprep (RFC 4013) as PostgreSQL applies it to a password before SCRAM: pure ASCII, invalid UTF-8 and
// prohibited strings are returned unchanged, so any password PostgreSQL accepts gives the same secret here.
std::string saslprep(std::string_view password);

// The secret PostgreSQL would store for this password and salt (the password is SASLprep'd here).
Error derive_secret(std::string_view password, std::string_view salt, int iterations, Secret& out);

// Base64 (RFC 4648, with padding, no line breaks): strict decoding, nullopt on any invalid input.
std::string base64_encode(Bytes data);
std::optional<std::string> base64_decode(std::string_view text);

// A fresh nonce: nonce_raw_length random bytes, base64-encoded (printable, no ',').
std::string make_nonce();

// Constant-time equality of two equally long byte strings.
bool equal_constant_time(Bytes a, Bytes b) noexcept;

// tls-server-end-point channel binding data (RFC 5929 4.1): the hash of a DER certificate with its
// signature's digest, SHA-256 where that digest is MD5 or SHA-1. The caller passes the hash it computed from
// the certificate.
struct ChannelBinding {
  bool available = false;  // the connection is TLS and its certificate hash is known
  std::string data;        // the certificate hash
};

// pgwarden as the SCRAM server towards a client.
class Server {
 public:
  // secret == nullopt runs a mock exchange (unknown user): a deterministic salt from mock_seed and the user
  // name, the default iteration count, and a proof that never verifies, so the exchange does not reveal which
  // users exist (as PostgreSQL's scram_mock_salt does).
  Server(std::optional<Secret> secret, std::string_view user, std::string_view mock_seed,
         ChannelBinding binding);

  // The mechanisms to offer in AuthenticationSASL, in preference order.
  bool offers_plus() const noexcept { return binding_.available; }

  // SASLInitialResponse: mechanism + client-first-message -> server-first-message.
  Error on_client_first(std::string_view chosen_mechanism, std::string_view client_first,
                        std::string& server_first);
  // SASLResponse: client-final-message -> server-final-message (only on success).
  Error on_client_final(std::string_view client_final, std::string& server_final);

  // After a successful proof: the ClientKey the client proved it holds (used to log in to PostgreSQL by
  // passthrough), and whether channel binding was used.
  const Key& client_key() const noexcept { return client_key_; }
  bool used_channel_binding() const noexcept { return cbind_used_; }

 private:
  Secret secret_;
  bool mock_ = false;
  ChannelBinding binding_;
  bool plus_chosen_ = false;
  bool cbind_used_ = false;
  std::string gs2_header_;
  std::string client_first_bare_;
  std::string server_first_;
  std::string nonce_;  // client nonce + server nonce
  Key client_key_{};
  enum class State : std::uint8_t { initial, sent_server_first, done, failed } state_ = State::initial;
};

// pgwarden as the SCRAM client towards PostgreSQL. Credentials are either a password (SASLprep'd here) or the
// ClientKey and ServerKey of a stored secret (passthrough).
class Client {
 public:
  struct Keys {
    Key client_key;
    Key server_key;
  };
  Client(std::string password, ChannelBinding binding, bool server_offers_plus);
  Client(Keys keys, ChannelBinding binding, bool server_offers_plus);

  std::string_view chosen_mechanism() const noexcept { return use_plus_ ? mechanism_plus : mechanism; }
  std::string client_first();  // the SASLInitialResponse data
  Error on_server_first(std::string_view server_first, std::string& client_final);
  Error on_server_final(std::string_view server_final);  // verifies the server signature

 private:
  std::optional<std::string> password_;
  std::optional<Keys> keys_;
  ChannelBinding binding_;
  bool use_plus_ = false;
  std::string gs2_header_;
  std::string client_nonce_;
  std::string client_first_bare_;
  Key expected_server_signature_{};
  enum class State : std::uint8_t { initial, sent_first, sent_final, done, failed } state_ = State::initial;
};

// Primitives shared with the MD5 method and the tests.
Key hmac_sha256(Bytes key, Bytes data);
Key sha256(Bytes data);

}  // namespace pgw::protocol::scram
