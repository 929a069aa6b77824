// Unit tests for ClientAuth: pgwarden as PostgreSQL towards a client, driven by a scram::Client as libpq.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "pgw/protocol/client_auth.hpp"
#include "pgw/protocol/encoder.hpp"
#include "pgw/protocol/framer.hpp"
#include "pgw/protocol/md5.hpp"
#include "pgw/protocol/messages.hpp"
#include "pgw/protocol/scram.hpp"

namespace pgw::protocol {
namespace {

using Status = ClientAuth::Status;
using Failure = ClientAuth::Failure;
using ByteVec = std::vector<std::uint8_t>;

const scram::ChannelBinding no_binding{};
const scram::ChannelBinding tls_binding{true, std::string(32, '\x77')};
constexpr std::string_view mock_seed = "per-install mock seed";

scram::Secret secret_for(std::string_view password) {
  scram::Secret s;
  EXPECT_EQ(scram::derive_secret(password, "client-salt-0123", 4096, s), Error::none);
  return s;
}

PlainSecret plain(std::string password) {
  PlainSecret p;
  p.scram = secret_for(password);
  p.password = std::move(password);
  return p;
}

// The single backend Authentication message in out.
backend::Authentication only_auth(const ByteVec& out) {
  FrameResult r = parse_frame(Bytes(out), 1u << 20);
  EXPECT_EQ(r.status, FrameStatus::complete);
  EXPECT_EQ(r.frame.type, 'R');
  EXPECT_EQ(r.frame.wire_size, out.size()) << "more than one message";
  backend::Authentication a;
  EXPECT_EQ(backend::decode(r.frame.body, a), Error::none);
  return a;
}

std::vector<std::string> offered_mechanisms(const ByteVec& out) {
  backend::Authentication a = only_auth(out);
  EXPECT_EQ(a.code, backend::AuthCode::sasl);
  std::vector<std::string> names;
  EXPECT_EQ(backend::for_each_sasl_mechanism(a.data, [&](std::string_view m) { names.emplace_back(m); }),
            Error::none);
  return names;
}

// Sends one frontend message built by write; replies land in out (cleared first).
template <class Write>
Status send(ClientAuth& auth, ByteVec& out, Write&& write) {
  ByteVec wire;
  Encoder we(wire);
  write(we);
  FrameResult r = parse_frame(Bytes(wire), 1u << 20);
  EXPECT_EQ(r.status, FrameStatus::complete);
  out.clear();
  Encoder oe(out);
  return auth.on_message(r.frame.type, r.frame.body, oe);
}

struct Result {
  Status status = Status::in_progress;
  std::string server_first;
  Error client_verify = Error::none;
  bool got_final = false;
};

// A full exchange: AuthenticationSASL, SASLInitialResponse, SASLContinue, SASLResponse, SASLFinal.
Result run(ClientAuth& auth, scram::Client& client) {
  Result res;
  ByteVec out;
  Encoder e(out);
  EXPECT_EQ(auth.start(e), Status::in_progress);
  offered_mechanisms(out);
  res.status = send(auth, out, [&](Encoder& w) {
    encode::sasl_initial_response(w, client.chosen_mechanism(), client.client_first());
  });
  if (res.status != Status::in_progress) return res;
  backend::Authentication cont = only_auth(out);
  EXPECT_EQ(cont.code, backend::AuthCode::sasl_continue);
  res.server_first = std::string(as_text(cont.data));
  std::string client_final;
  EXPECT_EQ(client.on_server_first(res.server_first, client_final), Error::none);
  res.status = send(auth, out, [&](Encoder& w) { encode::sasl_response(w, client_final); });
  if (!out.empty()) {
    backend::Authentication fin = only_auth(out);
    EXPECT_EQ(fin.code, backend::AuthCode::sasl_final);
    res.got_final = true;
    res.client_verify = client.on_server_final(as_text(fin.data));
  }
  return res;
}

TEST(ClientAuth, OffersPlusOnlyWithChannelBinding) {
  for (bool tls : {false, true}) {
    ClientAuth auth(ClientAuthMethod::scram_sha_256, "alice", plain("pw"), tls ? tls_binding : no_binding,
                    std::string(mock_seed));
    ByteVec out;
    Encoder e(out);
    EXPECT_EQ(auth.start(e), Status::in_progress);
    if (tls) {
      EXPECT_EQ(offered_mechanisms(out), (std::vector<std::string>{"SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"}));
    } else {
      EXPECT_EQ(offered_mechanisms(out), (std::vector<std::string>{"SCRAM-SHA-256"}));
    }
  }
}

TEST(ClientAuth, PlainSecretScramSucceeds) {
  ClientAuth auth(ClientAuthMethod::scram_sha_256, "alice", plain("pw"), no_binding, std::string(mock_seed));
  scram::Client client("pw", no_binding, false);
  Result r = run(auth, client);
  EXPECT_EQ(r.status, Status::succeeded);
  EXPECT_TRUE(r.got_final);
  EXPECT_EQ(r.client_verify, Error::none);
  EXPECT_EQ(auth.failure(), Failure::none);
  // A secret derived by pgwarden is not what PostgreSQL stores: nothing to pass through.
  EXPECT_FALSE(auth.passthrough_keys().has_value());
  EXPECT_FALSE(auth.used_channel_binding());
}

TEST(ClientAuth, ScramSecretSetsPassthroughKeys) {
  scram::Secret secret = secret_for("pw");
  ClientAuth auth(ClientAuthMethod::scram_sha_256, "alice", secret, no_binding, std::string(mock_seed));
  scram::Client client("pw", no_binding, false);
  Result r = run(auth, client);
  ASSERT_EQ(r.status, Status::succeeded);
  EXPECT_EQ(r.client_verify, Error::none);
  ASSERT_TRUE(auth.passthrough_keys().has_value());
  const scram::Client::Keys& keys = *auth.passthrough_keys();
  EXPECT_EQ(scram::sha256(Bytes(keys.client_key.data(), keys.client_key.size())), secret.stored_key);
  EXPECT_EQ(keys.server_key, secret.server_key);
  // The keys log in to a server holding the same secret.
  scram::Server pg(secret, "alice", "x", no_binding);
  scram::Client proxy(keys, no_binding, false);
  std::string sf, cf, sfin;
  ASSERT_EQ(pg.on_client_first(proxy.chosen_mechanism(), proxy.client_first(), sf), Error::none);
  ASSERT_EQ(proxy.on_server_first(sf, cf), Error::none);
  ASSERT_EQ(pg.on_client_final(cf, sfin), Error::none);
  EXPECT_EQ(proxy.on_server_final(sfin), Error::none);
}

TEST(ClientAuth, WrongPasswordIsBadCredentials) {
  ClientAuth auth(ClientAuthMethod::scram_sha_256, "alice", plain("right"), no_binding,
                  std::string(mock_seed));
  scram::Client client("wrong", no_binding, false);
  Result r = run(auth, client);
  EXPECT_EQ(r.status, Status::failed);
  EXPECT_EQ(auth.failure(), Failure::bad_credentials);
  EXPECT_FALSE(r.got_final);
  EXPECT_FALSE(auth.passthrough_keys().has_value());
}

std::string salt_b64_of(std::string_view server_first) {
  auto at = server_first.find(",s=");
  auto end = server_first.find(",i=");
  return std::string(server_first.substr(at + 3, end - at - 3));
}

std::string expected_mock_salt_b64(std::string_view user) {
  scram::Key h = scram::hmac_sha256(as_bytes(mock_seed), as_bytes(user));
  return scram::base64_encode(Bytes(h.data(), scram::salt_length));
}

TEST(ClientAuth, UnknownUserLooksLikeAWrongPassword) {
  ClientAuth auth(ClientAuthMethod::scram_sha_256, "ghost", std::nullopt, no_binding, std::string(mock_seed));
  scram::Client client("whatever", no_binding, false);
  Result r = run(auth, client);
  EXPECT_EQ(r.status, Status::failed);
  EXPECT_EQ(auth.failure(), Failure::bad_credentials);
  // The exchange got as far as a real one, with the mock salt and PostgreSQL's default iteration count.
  EXPECT_EQ(salt_b64_of(r.server_first), expected_mock_salt_b64("ghost"));
  EXPECT_TRUE(r.server_first.ends_with(",i=4096"));

  // The same user sees the same salt next time; another user sees another one.
  ClientAuth again(ClientAuthMethod::scram_sha_256, "ghost", std::nullopt, no_binding,
                   std::string(mock_seed));
  scram::Client c2("other", no_binding, false);
  EXPECT_EQ(salt_b64_of(run(again, c2).server_first), salt_b64_of(r.server_first));
  ClientAuth other(ClientAuthMethod::scram_sha_256, "phantom", std::nullopt, no_binding,
                   std::string(mock_seed));
  scram::Client c3("other", no_binding, false);
  EXPECT_NE(salt_b64_of(run(other, c3).server_first), salt_b64_of(r.server_first));
}

// md5 and cleartext: one AuthenticationMD5Password / AuthenticationCleartextPassword, one PasswordMessage.
struct PasswordRun {
  Status status = Status::in_progress;
  backend::Authentication request;
  ByteVec request_bytes;
};
template <class Answer>
PasswordRun run_password(ClientAuth& auth, Answer&& answer) {
  PasswordRun pr;
  Encoder e(pr.request_bytes);
  EXPECT_EQ(auth.start(e), Status::in_progress);
  pr.request = only_auth(pr.request_bytes);
  std::string reply = answer(pr.request);
  ByteVec out;
  pr.status = send(auth, out, [&](Encoder& w) { encode::password_message(w, reply); });
  EXPECT_TRUE(out.empty()) << "a password exchange answers with nothing but the caller's AuthenticationOk";
  return pr;
}

std::string md5_answer(std::string_view password, std::string_view user, const backend::Authentication& req) {
  EXPECT_EQ(req.code, backend::AuthCode::md5_password);
  EXPECT_EQ(req.data.size(), 4u);
  std::array<std::uint8_t, 4> salt{};
  std::copy(req.data.begin(), req.data.end(), salt.begin());
  return md5::response(md5::secret(password, user), salt);
}

TEST(ClientAuth, Md5AgainstPlainAndMd5Secrets) {
  for (bool stored_md5 : {false, true}) {
    std::optional<UserSecret> secret =
        stored_md5 ? UserSecret(Md5Secret{md5::secret("pw", "alice")}) : UserSecret(plain("pw"));
    ClientAuth ok(ClientAuthMethod::md5, "alice", secret, no_binding, std::string(mock_seed));
    auto r = run_password(ok, [](const auto& req) { return md5_answer("pw", "alice", req); });
    EXPECT_EQ(r.status, Status::succeeded);
    EXPECT_EQ(ok.method_used(), "md5");
    EXPECT_FALSE(ok.cleartext_password().has_value());

    ClientAuth bad(ClientAuthMethod::md5, "alice", secret, no_binding, std::string(mock_seed));
    r = run_password(bad, [](const auto& req) { return md5_answer("wrong", "alice", req); });
    EXPECT_EQ(r.status, Status::failed);
    EXPECT_EQ(bad.failure(), Failure::bad_credentials);
  }
}

TEST(ClientAuth, Md5SaltIsFreshEachTime) {
  ClientAuth a(ClientAuthMethod::md5, "alice", plain("pw"), no_binding, std::string(mock_seed));
  ClientAuth b(ClientAuthMethod::md5, "alice", plain("pw"), no_binding, std::string(mock_seed));
  auto ra = run_password(a, [](const auto& req) { return md5_answer("pw", "alice", req); });
  auto rb = run_password(b, [](const auto& req) { return md5_answer("pw", "alice", req); });
  EXPECT_NE(ra.request_bytes, rb.request_bytes);
}

TEST(ClientAuth, Md5UnknownUserFailsLikeAWrongPassword) {
  ClientAuth auth(ClientAuthMethod::md5, "ghost", std::nullopt, no_binding, std::string(mock_seed));
  auto r = run_password(auth, [](const auto& req) { return md5_answer("pw", "ghost", req); });
  EXPECT_EQ(r.status, Status::failed);
  EXPECT_EQ(auth.failure(), Failure::bad_credentials);
}

TEST(ClientAuth, Md5MethodWithScramSecretRunsScram) {
  // As PostgreSQL: "md5" in pg_hba with a SCRAM secret in pg_authid authenticates by SCRAM.
  ClientAuth auth(ClientAuthMethod::md5, "alice", secret_for("pw"), no_binding, std::string(mock_seed));
  scram::Client client("pw", no_binding, false);
  Result r = run(auth, client);
  EXPECT_EQ(r.status, Status::succeeded);
  EXPECT_EQ(auth.method_used(), "SCRAM-SHA-256");
  EXPECT_TRUE(auth.passthrough_keys().has_value());
}

TEST(ClientAuth, CleartextAgainstEverySecretKind) {
  const UserSecret secrets[] = {UserSecret(plain("p\u00e4ss")),
                                UserSecret(Md5Secret{md5::secret("p\u00e4ss", "alice")}),
                                UserSecret(secret_for("p\u00e4ss"))};
  for (const auto& secret : secrets) {
    ClientAuth ok(ClientAuthMethod::password, "alice", secret, tls_binding, std::string(mock_seed));
    auto r = run_password(ok, [](const auto& req) {
      EXPECT_EQ(req.code, backend::AuthCode::cleartext_password);
      return std::string("p\u00e4ss");
    });
    EXPECT_EQ(r.status, Status::succeeded);
    ASSERT_TRUE(ok.cleartext_password().has_value());
    EXPECT_EQ(*ok.cleartext_password(), "p\u00e4ss");
    EXPECT_EQ(ok.method_used(), "password");

    ClientAuth bad(ClientAuthMethod::password, "alice", secret, tls_binding, std::string(mock_seed));
    r = run_password(bad, [](const auto&) { return std::string("p\u00e4sS"); });
    EXPECT_EQ(r.status, Status::failed);
    EXPECT_EQ(bad.failure(), Failure::bad_credentials);
    EXPECT_FALSE(bad.cleartext_password().has_value());
  }
  ClientAuth ghost(ClientAuthMethod::password, "ghost", std::nullopt, tls_binding, std::string(mock_seed));
  EXPECT_EQ(run_password(ghost, [](const auto&) { return std::string("x"); }).status, Status::failed);
}

TEST(ClientAuth, MalformedPasswordMessageIsAProtocolViolation) {
  ClientAuth auth(ClientAuthMethod::password, "alice", plain("pw"), tls_binding, std::string(mock_seed));
  ByteVec out;
  Encoder e(out);
  auth.start(e);
  const std::uint8_t no_terminator[] = {'p', 'w'};
  out.clear();
  Encoder oe(out);
  EXPECT_EQ(auth.on_message('p', Bytes(no_terminator, sizeof no_terminator), oe), Status::failed);
  EXPECT_EQ(auth.failure(), Failure::protocol_violation);
}

TEST(ClientAuth, Md5SecretCannotServeScram) {
  ClientAuth auth(ClientAuthMethod::scram_sha_256, "alice", Md5Secret{"md5871c429757b7a0bf1654fad112b77bd4"},
                  no_binding, std::string(mock_seed));
  scram::Client client("pw", no_binding, false);
  Result r = run(auth, client);
  EXPECT_EQ(r.status, Status::failed);
  EXPECT_EQ(auth.failure(), Failure::bad_credentials);
  EXPECT_EQ(salt_b64_of(r.server_first), expected_mock_salt_b64("alice"));
}

TEST(ClientAuth, ChannelBindingPlusSucceeds) {
  ClientAuth auth(ClientAuthMethod::scram_sha_256, "alice", secret_for("pw"), tls_binding,
                  std::string(mock_seed));
  scram::Client client("pw", tls_binding, true);
  Result r = run(auth, client);
  EXPECT_EQ(r.status, Status::succeeded);
  EXPECT_EQ(r.client_verify, Error::none);
  EXPECT_TRUE(auth.used_channel_binding());
}

TEST(ClientAuth, ChannelBindingDataMismatch) {
  ClientAuth auth(ClientAuthMethod::scram_sha_256, "alice", secret_for("pw"), tls_binding,
                  std::string(mock_seed));
  scram::Client client("pw", scram::ChannelBinding{true, "a different certificate hash"}, true);
  Result r = run(auth, client);
  EXPECT_EQ(r.status, Status::failed);
  EXPECT_EQ(auth.failure(), Failure::channel_binding);
}

TEST(ClientAuth, PlusWithoutTlsIsRefused) {
  ClientAuth auth(ClientAuthMethod::scram_sha_256, "alice", secret_for("pw"), no_binding,
                  std::string(mock_seed));
  scram::Client client("pw", tls_binding, true);  // claims PLUS although it was not offered
  Result r = run(auth, client);
  EXPECT_EQ(r.status, Status::failed);
  EXPECT_EQ(auth.failure(), Failure::channel_binding);
}

TEST(ClientAuth, DowngradeToYIsRefused) {
  ClientAuth auth(ClientAuthMethod::scram_sha_256, "alice", secret_for("pw"), tls_binding,
                  std::string(mock_seed));
  scram::Client client("pw", tls_binding, false);
  EXPECT_EQ(run(auth, client).status, Status::failed);
  EXPECT_EQ(auth.failure(), Failure::channel_binding);
}

class ClientAuthMessages : public ::testing::Test {
 protected:
  void SetUp() override {
    Encoder e(out_);
    ASSERT_EQ(auth_.start(e), Status::in_progress);
  }
  Status send_raw(char type, std::string_view body) {
    out_.clear();
    Encoder e(out_);
    return auth_.on_message(type, as_bytes(body), e);
  }
  ClientAuth auth_{ClientAuthMethod::scram_sha_256, "alice", plain("pw"), no_binding, std::string(mock_seed)};
  ByteVec out_;
};

using namespace std::string_view_literals;

TEST_F(ClientAuthMessages, NonPasswordMessageIsAViolation) {
  EXPECT_EQ(send_raw('Q', "select 1\0"sv), Status::failed);
  EXPECT_EQ(auth_.failure(), Failure::protocol_violation);
  EXPECT_TRUE(out_.empty());
}

TEST_F(ClientAuthMessages, TruncatedInitialResponse) {
  EXPECT_EQ(send_raw('p', "SCRAM-SHA-256\0\0\0"sv), Status::failed);
  EXPECT_EQ(auth_.failure(), Failure::protocol_violation);
}

TEST_F(ClientAuthMessages, InitialResponseWithoutData) {
  EXPECT_EQ(send_raw('p', "SCRAM-SHA-256\0\xff\xff\xff\xff"sv), Status::failed);
  EXPECT_EQ(auth_.failure(), Failure::protocol_violation);
}

TEST_F(ClientAuthMessages, InitialResponseWithTrailingBytes) {
  EXPECT_EQ(send_raw('p', "SCRAM-SHA-256\0\0\0\0\x0bn,,n=,r=abcXX"sv), Status::failed);
  EXPECT_EQ(auth_.failure(), Failure::protocol_violation);
}

TEST_F(ClientAuthMessages, UnknownMechanism) {
  EXPECT_EQ(send_raw('p', "SCRAM-SHA-1\0\0\0\0\x0bn,,n=,r=abc"sv), Status::failed);
  EXPECT_EQ(auth_.failure(), Failure::protocol_violation);
}

TEST_F(ClientAuthMessages, MalformedClientFirst) {
  EXPECT_EQ(send_raw('p', "SCRAM-SHA-256\0\0\0\0\x05n,,x="sv), Status::failed);
  EXPECT_EQ(auth_.failure(), Failure::protocol_violation);
}

TEST_F(ClientAuthMessages, WellFormedInitialResponseIsAccepted) {
  // The same byte layout as the malformed cases above, with a valid client-first-message: the failures above
  // are about their contents, not about how the test builds messages.
  EXPECT_EQ(send_raw('p', "SCRAM-SHA-256\0\0\0\0\x0bn,,n=,r=abc"sv), Status::in_progress);
  EXPECT_EQ(only_auth(out_).code, backend::AuthCode::sasl_continue);
}

TEST_F(ClientAuthMessages, NonceMismatchInClientFinal) {
  ASSERT_EQ(send_raw('p', "SCRAM-SHA-256\0\0\0\0\x0bn,,n=,r=abc"sv), Status::in_progress);
  EXPECT_EQ(send_raw('p', "c=biws,r=abcdef,p=" + std::string(43, 'A') + "="), Status::failed);
  EXPECT_EQ(auth_.failure(), Failure::protocol_violation);
}

TEST_F(ClientAuthMessages, MalformedClientFinal) {
  ASSERT_EQ(send_raw('p', "SCRAM-SHA-256\0\0\0\0\x0bn,,n=,r=abc"sv), Status::in_progress);
  EXPECT_EQ(send_raw('p', "garbage"), Status::failed);
  EXPECT_EQ(auth_.failure(), Failure::protocol_violation);
}

TEST_F(ClientAuthMessages, WrongMessageTypeMidExchange) {
  ASSERT_EQ(send_raw('p', "SCRAM-SHA-256\0\0\0\0\x0bn,,n=,r=abc"sv), Status::in_progress);
  EXPECT_EQ(send_raw('X', ""), Status::failed);
  EXPECT_EQ(auth_.failure(), Failure::protocol_violation);
}

TEST(ClientAuth, MessageBeforeStartIsAViolation) {
  ClientAuth auth(ClientAuthMethod::scram_sha_256, "alice", plain("pw"), no_binding, std::string(mock_seed));
  ByteVec out;
  Encoder e(out);
  EXPECT_EQ(auth.on_message('p', as_bytes("SCRAM-SHA-256\0\0\0\0\x0bn,,n=,r=abc"sv), e), Status::failed);
  EXPECT_EQ(auth.failure(), Failure::protocol_violation);
}

TEST(ClientAuth, NothingChangesAfterSuccess) {
  ClientAuth auth(ClientAuthMethod::scram_sha_256, "alice", plain("pw"), no_binding, std::string(mock_seed));
  scram::Client client("pw", no_binding, false);
  ASSERT_EQ(run(auth, client).status, Status::succeeded);
  ByteVec out;
  Encoder e(out);
  EXPECT_EQ(auth.on_message('Q', Bytes{}, e), Status::succeeded);
  EXPECT_EQ(auth.failure(), Failure::none);
  EXPECT_TRUE(out.empty());
}

TEST(ClientAuth, FailureDetailHoldsNoSecrets) {
  ClientAuth auth(ClientAuthMethod::scram_sha_256, "alice", plain("topsecret"), no_binding,
                  std::string(mock_seed));
  scram::Client client("guess-topsecret", no_binding, false);
  run(auth, client);
  ASSERT_EQ(auth.failure(), Failure::bad_credentials);
  EXPECT_EQ(auth.failure_detail().find("topsecret"), std::string::npos);
}

}  // namespace
}  // namespace pgw::protocol
