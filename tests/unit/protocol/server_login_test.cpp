// Unit tests for ServerLogin: scripted backend messages for each auth method and every server misbehaviour.
// SCRAM runs against a scram::Server playing PostgreSQL.
#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <functional>
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

namespace pgw::protocol {
namespace {

using namespace std::string_view_literals;

using Status = ServerLogin::Status;
using Failure = ServerLogin::Failure;
using ByteVec = std::vector<std::uint8_t>;

ByteVec msg(const std::function<void(Encoder&)>& write) {
  ByteVec v;
  Encoder e(v);
  write(e);
  EXPECT_EQ(e.error(), Error::none);
  return v;
}

ByteVec raw_msg(char type, std::string_view body) {
  ByteVec v{static_cast<std::uint8_t>(type)};
  auto len = static_cast<std::uint32_t>(body.size() + 4);
  for (int shift = 24; shift >= 0; shift -= 8)
    v.push_back(static_cast<std::uint8_t>(len >> shift));
  v.insert(v.end(), body.begin(), body.end());
  return v;
}

ByteVec auth_code(std::int32_t code) {
  return msg([&](Encoder& e) { e.begin('R').i32(code).end(); });
}
ByteVec auth_ok() {
  return msg([](Encoder& e) { encode::authentication_ok(e); });
}
ByteVec auth_sasl(std::vector<std::string_view> mechanisms) {
  return msg([&](Encoder& e) { encode::authentication_sasl(e, mechanisms); });
}
ByteVec sasl_continue(std::string_view data) {
  return msg([&](Encoder& e) { encode::authentication_sasl_continue(e, data); });
}
ByteVec sasl_final(std::string_view data) {
  return msg([&](Encoder& e) { encode::authentication_sasl_final(e, data); });
}
ByteVec parameter(std::string_view name, std::string_view value) {
  return msg([&](Encoder& e) { encode::parameter_status(e, name, value); });
}
ByteVec key_data(std::int32_t pid, std::int32_t secret) {
  return msg([&](Encoder& e) { encode::backend_key_data(e, {pid, secret}); });
}
ByteVec ready(backend::TransactionStatus s = backend::TransactionStatus::idle) {
  return msg([&](Encoder& e) { encode::ready_for_query(e, s); });
}

// Feeds every frame in wire to login; replies are appended to out.
Status feed(ServerLogin& login, const ByteVec& wire, ByteVec& out) {
  Encoder e(out);
  Status s = login.status();
  std::size_t pos = 0;
  while (pos < wire.size()) {
    FrameResult r = parse_frame(Bytes(wire).subspan(pos), 1u << 20);
    EXPECT_EQ(r.status, FrameStatus::complete);
    if (r.status != FrameStatus::complete) break;
    s = login.on_message(r.frame.type, r.frame.body, e);
    pos += r.frame.wire_size;
  }
  EXPECT_EQ(e.error(), Error::none);
  return s;
}

Status feed(ServerLogin& login, const ByteVec& wire) {
  ByteVec out;
  Status s = feed(login, wire, out);
  EXPECT_TRUE(out.empty()) << "unexpected reply of " << out.size() << " bytes";
  return s;
}

ByteVec concat(std::initializer_list<ByteVec> parts) {
  ByteVec all;
  for (const auto& p : parts)
    all.insert(all.end(), p.begin(), p.end());
  return all;
}

// The single frontend message in out.
Frame only_frame(const ByteVec& out, char type) {
  FrameResult r = parse_frame(Bytes(out), 1u << 20);
  EXPECT_EQ(r.status, FrameStatus::complete);
  EXPECT_EQ(r.frame.type, type);
  EXPECT_EQ(r.frame.wire_size, out.size()) << "more than one message";
  return r.frame;
}

std::string password_in(const ByteVec& out) {
  frontend::PasswordMessage p;
  EXPECT_EQ(frontend::decode(only_frame(out, 'p').body, p), Error::none);
  return std::string(p.password);
}

ServerLogin::Credentials with_password(std::string password) {
  ServerLogin::Credentials c;
  c.user = "alice";
  c.password = std::move(password);
  return c;
}

const scram::ChannelBinding no_binding{};
const scram::ChannelBinding tls_binding{true, std::string(32, '\x42')};

TEST(ServerLogin, StartSendsStartupMessage) {
  ServerLogin login(with_password("pw"), no_binding);
  ByteVec out;
  Encoder e(out);
  const std::array<StartupParameter, 2> params{{{"user", "alice"}, {"database", "shop"}}};
  login.start(params, e);
  FrameResult r = parse_startup_frame(Bytes(out));
  ASSERT_EQ(r.status, FrameStatus::complete);
  InitialPacket p;
  ASSERT_EQ(decode_initial_packet(r.frame.body, p), Error::none);
  EXPECT_EQ(p.startup.user(), "alice");
  EXPECT_EQ(p.startup.database(), "shop");
  EXPECT_FALSE(p.startup.needs_protocol_negotiation());
  EXPECT_EQ(login.status(), Status::in_progress);
}

TEST(ServerLogin, Trust) {
  ServerLogin login(ServerLogin::Credentials{"alice", {}, {}, {}}, no_binding);
  Status s = feed(login, concat({auth_ok(), parameter("server_version", "15.4"), parameter("TimeZone", "UTC"),
                                 parameter("server_version", "15.5"), key_data(4711, -99),
                                 raw_msg('N', "SNOTICE\0Mhello\0\0"sv), ready()}));
  EXPECT_EQ(s, Status::done);
  EXPECT_EQ(login.failure(), Failure::none);
  EXPECT_EQ(login.method_used(), "trust");
  ASSERT_EQ(login.parameters().size(), 2u);
  EXPECT_EQ(login.parameters()[0].first, "server_version");
  EXPECT_EQ(login.parameters()[0].second, "15.5");  // a later value replaces the earlier one
  EXPECT_EQ(login.parameters()[1].second, "UTC");
  EXPECT_EQ(login.backend_key().process_id, 4711);
  EXPECT_EQ(login.backend_key().secret_key, -99);
  EXPECT_EQ(login.transaction_status(), backend::TransactionStatus::idle);
}

TEST(ServerLogin, DoneOnlyAtReadyForQuery) {
  ServerLogin login(ServerLogin::Credentials{"alice", {}, {}, {}}, no_binding);
  EXPECT_EQ(feed(login, concat({auth_ok(), key_data(1, 2)})), Status::in_progress);
  EXPECT_EQ(feed(login, ready(backend::TransactionStatus::in_transaction)), Status::done);
  EXPECT_EQ(login.transaction_status(), backend::TransactionStatus::in_transaction);
}

TEST(ServerLogin, Cleartext) {
  ServerLogin login(with_password("hunter2"), no_binding);
  ByteVec out;
  EXPECT_EQ(feed(login, auth_code(3), out), Status::in_progress);
  EXPECT_EQ(password_in(out), "hunter2");
  EXPECT_EQ(feed(login, concat({auth_ok(), ready()})), Status::done);
  EXPECT_EQ(login.method_used(), "password");
}

TEST(ServerLogin, CleartextWithoutPassword) {
  ServerLogin::Credentials c{"alice", {}, "md5871c429757b7a0bf1654fad112b77bd4", {}};
  ServerLogin login(c, no_binding);
  EXPECT_EQ(feed(login, auth_code(3)), Status::failed);
  EXPECT_EQ(login.failure(), Failure::no_credentials);
}

ByteVec md5_request(std::array<std::uint8_t, 4> salt) {
  return msg([&](Encoder& e) { encode::authentication_md5(e, salt); });
}

TEST(ServerLogin, Md5WithPassword) {
  ServerLogin::Credentials c;
  c.user = "user";
  c.password = "pw";
  ServerLogin login(c, no_binding);
  ByteVec out;
  EXPECT_EQ(feed(login, md5_request({1, 2, 3, 4}), out), Status::in_progress);
  // python3: "md5" + md5((md5(b"pwuser").hexdigest()).encode() + bytes([1, 2, 3, 4])).hexdigest()
  EXPECT_EQ(password_in(out), "md546eacb7412409e1444bde22e56e70744");
  EXPECT_EQ(feed(login, concat({auth_ok(), ready()})), Status::done);
  EXPECT_EQ(login.method_used(), "md5");
}

TEST(ServerLogin, Md5WithStoredSecret) {
  ServerLogin::Credentials c;
  c.user = "user";
  c.md5_secret = "md5871c429757b7a0bf1654fad112b77bd4";
  ServerLogin login(c, no_binding);
  ByteVec out;
  EXPECT_EQ(feed(login, md5_request({1, 2, 3, 4}), out), Status::in_progress);
  EXPECT_EQ(password_in(out), "md546eacb7412409e1444bde22e56e70744");
}

TEST(ServerLogin, Md5PrefersThePasswordOverAStaleSecret) {
  ServerLogin::Credentials c;
  c.user = "user";
  c.password = "pw";
  c.md5_secret = md5::secret("old", "user");
  ServerLogin login(c, no_binding);
  ByteVec out;
  feed(login, md5_request({1, 2, 3, 4}), out);
  EXPECT_EQ(password_in(out), "md546eacb7412409e1444bde22e56e70744");
}

TEST(ServerLogin, Md5WithoutCredentials) {
  ServerLogin::Credentials c;
  c.user = "alice";
  c.scram_keys = scram::Client::Keys{};
  ServerLogin login(c, no_binding);
  EXPECT_EQ(feed(login, md5_request({1, 2, 3, 4})), Status::failed);
  EXPECT_EQ(login.failure(), Failure::no_credentials);
}

// PostgreSQL's side of a SCRAM exchange, played by scram::Server, driving a ServerLogin.
class ScramLogin : public ::testing::Test {
 protected:
  static scram::Secret secret_for(std::string_view password) {
    scram::Secret s;
    EXPECT_EQ(scram::derive_secret(password, "pg-salt-16-bytes", 4096, s), Error::none);
    return s;
  }

  // Runs the exchange up to (not including) AuthenticationSASLFinal; returns the server-final-message.
  std::optional<std::string> exchange(ServerLogin& login, scram::Server& pg,
                                      std::vector<std::string_view> offered = {"SCRAM-SHA-256"}) {
    ByteVec out;
    EXPECT_EQ(feed(login, auth_sasl(offered), out), Status::in_progress);
    if (login.status() != Status::in_progress) return std::nullopt;
    frontend::SASLInitialResponse first;
    EXPECT_EQ(frontend::decode(only_frame(out, 'p').body, first), Error::none);
    chosen_ = std::string(first.mechanism);
    std::string server_first;
    Error e = pg.on_client_first(first.mechanism, as_text(first.data), server_first);
    EXPECT_EQ(e, Error::none) << describe(e);
    if (e != Error::none) return std::nullopt;
    out.clear();
    EXPECT_EQ(feed(login, sasl_continue(server_first), out), Status::in_progress);
    frontend::SASLResponse response;
    EXPECT_EQ(frontend::decode(only_frame(out, 'p').body, response), Error::none);
    std::string server_final;
    last_error_ = pg.on_client_final(as_text(response.data), server_final);
    if (last_error_ != Error::none) return std::nullopt;
    return server_final;
  }

  std::string chosen_;
  Error last_error_ = Error::none;
};

TEST_F(ScramLogin, WithPassword) {
  scram::Server pg(secret_for("pw"), "alice", "seed", no_binding);
  ServerLogin login(with_password("pw"), no_binding);
  auto server_final = exchange(login, pg);
  ASSERT_TRUE(server_final.has_value());
  EXPECT_EQ(chosen_, "SCRAM-SHA-256");
  EXPECT_EQ(feed(login, sasl_final(*server_final)), Status::in_progress);
  EXPECT_EQ(feed(login, concat({auth_ok(), parameter("a", "b"), key_data(1, 2), ready()})), Status::done);
  EXPECT_EQ(login.method_used(), "scram-sha-256");
}

TEST_F(ScramLogin, WithPassthroughKeys) {
  scram::Secret secret = secret_for("pw");
  // Obtain the ClientKey the way ClientAuth does: from a client proving it to a scram::Server.
  scram::Server front(secret, "alice", "seed", no_binding);
  scram::Client user("pw", no_binding, false);
  std::string sf, cf, sfin;
  ASSERT_EQ(front.on_client_first(user.chosen_mechanism(), user.client_first(), sf), Error::none);
  ASSERT_EQ(user.on_server_first(sf, cf), Error::none);
  ASSERT_EQ(front.on_client_final(cf, sfin), Error::none);

  ServerLogin::Credentials c;
  c.user = "alice";
  c.scram_keys = scram::Client::Keys{front.client_key(), secret.server_key};
  ServerLogin login(c, no_binding);
  scram::Server pg(secret, "alice", "seed", no_binding);
  auto server_final = exchange(login, pg);
  ASSERT_TRUE(server_final.has_value());
  EXPECT_EQ(feed(login, concat({sasl_final(*server_final), auth_ok(), ready()})), Status::done);
}

TEST_F(ScramLogin, WrongPasswordEndsWithTheServersError) {
  scram::Server pg(secret_for("right"), "alice", "seed", no_binding);
  ServerLogin login(with_password("wrong"), no_binding);
  EXPECT_FALSE(exchange(login, pg).has_value());
  EXPECT_EQ(last_error_, Error::scram_bad_proof);
  ByteVec error = msg([](Encoder& e) {
    encode::error_response(
        e, Notice{"FATAL", "28P01", "password authentication failed for user \"alice\"", "", ""});
  });
  EXPECT_EQ(feed(login, error), Status::failed);
  EXPECT_EQ(login.failure(), Failure::server_error);
  EXPECT_EQ(login.server_error().sqlstate, "28P01");
}

TEST_F(ScramLogin, ChannelBindingPlus) {
  scram::Server pg(secret_for("pw"), "alice", "seed", tls_binding);
  ServerLogin login(with_password("pw"), tls_binding);
  auto server_final = exchange(login, pg, {"SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"});
  ASSERT_TRUE(server_final.has_value());
  EXPECT_EQ(chosen_, "SCRAM-SHA-256-PLUS");
  EXPECT_TRUE(pg.used_channel_binding());
  EXPECT_EQ(feed(login, concat({sasl_final(*server_final), auth_ok(), ready()})), Status::done);
}

TEST_F(ScramLogin, PlusOnlyWithoutBindingIsUnsupported) {
  ServerLogin login(with_password("pw"), no_binding);
  EXPECT_EQ(feed(login, auth_sasl({"SCRAM-SHA-256-PLUS"})), Status::failed);
  EXPECT_EQ(login.failure(), Failure::unsupported_method);
}

TEST_F(ScramLogin, PlusOnlyWithBinding) {
  scram::Server pg(secret_for("pw"), "alice", "seed", tls_binding);
  ServerLogin login(with_password("pw"), tls_binding);
  auto server_final = exchange(login, pg, {"SCRAM-SHA-256-PLUS"});
  ASSERT_TRUE(server_final.has_value());
  EXPECT_EQ(chosen_, "SCRAM-SHA-256-PLUS");
}

TEST_F(ScramLogin, UnknownMechanismIsUnsupported) {
  ServerLogin login(with_password("pw"), no_binding);
  EXPECT_EQ(feed(login, auth_sasl({"SCRAM-SHA-512", "OAUTHBEARER"})), Status::failed);
  EXPECT_EQ(login.failure(), Failure::unsupported_method);
}

TEST_F(ScramLogin, NoCredentials) {
  ServerLogin::Credentials c;
  c.user = "alice";
  c.md5_secret = "md5871c429757b7a0bf1654fad112b77bd4";  // cannot answer SCRAM
  ServerLogin login(c, no_binding);
  EXPECT_EQ(feed(login, auth_sasl({"SCRAM-SHA-256"})), Status::failed);
  EXPECT_EQ(login.failure(), Failure::no_credentials);
}

TEST_F(ScramLogin, AuthenticationOkBeforeSaslFinal) {
  scram::Server pg(secret_for("pw"), "alice", "seed", no_binding);
  ServerLogin login(with_password("pw"), no_binding);
  ASSERT_TRUE(exchange(login, pg).has_value());
  EXPECT_EQ(feed(login, auth_ok()), Status::failed);
  EXPECT_EQ(login.failure(), Failure::bad_server_signature);
}

TEST_F(ScramLogin, AuthenticationOkRightAfterSaslStart) {
  ServerLogin login(with_password("pw"), no_binding);
  ByteVec out;
  EXPECT_EQ(feed(login, auth_sasl({"SCRAM-SHA-256"}), out), Status::in_progress);
  EXPECT_EQ(feed(login, auth_ok()), Status::failed);
  EXPECT_EQ(login.failure(), Failure::bad_server_signature);
}

TEST_F(ScramLogin, ForgedServerSignature) {
  // A server that does not know the secret cannot produce the signature.
  scram::Server impostor(secret_for("something else"), "alice", "seed", no_binding);
  ServerLogin::Credentials c;
  c.user = "alice";
  scram::Secret real = secret_for("pw");
  scram::Server front(real, "alice", "seed", no_binding);
  scram::Client user("pw", no_binding, false);
  std::string sf, cf, sfin;
  ASSERT_EQ(front.on_client_first(user.chosen_mechanism(), user.client_first(), sf), Error::none);
  ASSERT_EQ(user.on_server_first(sf, cf), Error::none);
  ASSERT_EQ(front.on_client_final(cf, sfin), Error::none);
  c.scram_keys = scram::Client::Keys{front.client_key(), real.server_key};
  ServerLogin login(c, no_binding);
  ASSERT_FALSE(exchange(login, impostor).has_value());  // the impostor cannot verify the proof...
  // ...and whatever signature it makes up is refused.
  EXPECT_EQ(feed(login, sasl_final("v=" + scram::base64_encode(scram::sha256(as_bytes("made up"))))),
            Status::failed);
  EXPECT_EQ(login.failure(), Failure::bad_server_signature);
}

TEST_F(ScramLogin, ServerErrorAttributeInSaslFinal) {
  scram::Server pg(secret_for("pw"), "alice", "seed", no_binding);
  ServerLogin login(with_password("pw"), no_binding);
  ASSERT_TRUE(exchange(login, pg).has_value());
  EXPECT_EQ(feed(login, sasl_final("e=other-error")), Status::failed);
  EXPECT_EQ(login.failure(), Failure::protocol_violation);
}

TEST_F(ScramLogin, BadNonceInServerFirst) {
  ServerLogin login(with_password("pw"), no_binding);
  ByteVec out;
  feed(login, auth_sasl({"SCRAM-SHA-256"}), out);
  EXPECT_EQ(feed(login, sasl_continue("r=not-our-nonce,s=c2FsdA==,i=4096")), Status::failed);
  EXPECT_EQ(login.failure(), Failure::protocol_violation);
}

TEST_F(ScramLogin, SaslRestartIsAViolation) {
  ServerLogin login(with_password("pw"), no_binding);
  ByteVec out;
  feed(login, auth_sasl({"SCRAM-SHA-256"}), out);
  EXPECT_EQ(feed(login, auth_sasl({"SCRAM-SHA-256"})), Status::failed);
  EXPECT_EQ(login.failure(), Failure::protocol_violation);
}

TEST_F(ScramLogin, SaslContinueOrFinalWithoutSasl) {
  ServerLogin a(with_password("pw"), no_binding);
  EXPECT_EQ(feed(a, sasl_continue("r=x,s=c2FsdA==,i=1")), Status::failed);
  EXPECT_EQ(a.failure(), Failure::protocol_violation);
  ServerLogin b(with_password("pw"), no_binding);
  EXPECT_EQ(feed(b, sasl_final("v=abc")), Status::failed);
  EXPECT_EQ(b.failure(), Failure::protocol_violation);
}

TEST_F(ScramLogin, SaslFinalBeforeContinue) {
  ServerLogin login(with_password("pw"), no_binding);
  ByteVec out;
  feed(login, auth_sasl({"SCRAM-SHA-256"}), out);
  EXPECT_EQ(feed(login, sasl_final("v=abc")), Status::failed);
  EXPECT_EQ(login.failure(), Failure::protocol_violation);
}

TEST_F(ScramLogin, MalformedMechanismList) {
  ServerLogin login(with_password("pw"), no_binding);
  ByteVec unterminated =
      msg([](Encoder& e) { e.begin('R').i32(10).raw(std::string_view("SCRAM-SHA-256")).end(); });
  EXPECT_EQ(feed(login, unterminated), Status::failed);
  EXPECT_EQ(login.failure(), Failure::protocol_violation);
}

TEST(ServerLogin, ErrorResponseKeepsTheServersFields) {
  ServerLogin login(with_password("pw"), no_binding);
  ByteVec error =
      raw_msg('E', "SFATAL\0VFATAL\0C3D000\0Mdatabase \"x\" does not exist\0Dd\0Hh\0Ffile.c\0\0"sv);
  EXPECT_EQ(feed(login, error), Status::failed);
  EXPECT_EQ(login.failure(), Failure::server_error);
  EXPECT_EQ(login.server_error().severity, "FATAL");
  EXPECT_EQ(login.server_error().sqlstate, "3D000");
  EXPECT_EQ(login.server_error().message, "database \"x\" does not exist");
  EXPECT_EQ(login.server_error().detail, "d");
  EXPECT_EQ(login.server_error().hint, "h");
  EXPECT_EQ(login.failure_detail(), "database \"x\" does not exist");
}

TEST(ServerLogin, ErrorSeverityFallsBackToLocalized) {
  ServerLogin login(with_password("pw"), no_binding);
  EXPECT_EQ(feed(login, raw_msg('E', "SFEHLER\0Mx\0\0"sv)), Status::failed);
  EXPECT_EQ(login.server_error().severity, "FEHLER");
}

TEST(ServerLogin, ErrorResponseAfterAuthenticationOk) {
  ServerLogin login(with_password("pw"), no_binding);
  feed(login, auth_ok());
  EXPECT_EQ(feed(login, raw_msg('E', "SFATAL\0C53300\0Mtoo many connections\0\0"sv)), Status::failed);
  EXPECT_EQ(login.failure(), Failure::server_error);
  EXPECT_EQ(login.server_error().sqlstate, "53300");
}

TEST(ServerLogin, MalformedErrorResponse) {
  ServerLogin login(with_password("pw"), no_binding);
  EXPECT_EQ(feed(login, raw_msg('E', "SFATAL\0Mx"sv)), Status::failed);
  EXPECT_EQ(login.failure(), Failure::protocol_violation);
}

TEST(ServerLogin, UnsupportedMethods) {
  for (std::int32_t code : {2, 7, 9}) {  // Kerberos V5, GSSAPI, SSPI
    ServerLogin login(with_password("pw"), no_binding);
    EXPECT_EQ(feed(login, auth_code(code)), Status::failed) << code;
    EXPECT_EQ(login.failure(), Failure::unsupported_method) << code;
  }
  ServerLogin gss_continue(with_password("pw"), no_binding);
  EXPECT_EQ(
      feed(gss_continue, msg([](Encoder& e) { e.begin('R').i32(8).raw(std::string_view("tok")).end(); })),
      Status::failed);
  EXPECT_EQ(gss_continue.failure(), Failure::unsupported_method);
}

TEST(ServerLogin, UnknownAuthenticationCodeIsAViolation) {
  ServerLogin login(with_password("pw"), no_binding);
  EXPECT_EQ(feed(login, auth_code(4)), Status::failed);
  EXPECT_EQ(login.failure(), Failure::protocol_violation);
}

TEST(ServerLogin, TruncatedAuthenticationIsAViolation) {
  ServerLogin login(with_password("pw"), no_binding);
  EXPECT_EQ(feed(login, raw_msg('R', "\0\0\0\5\1\2"sv)), Status::failed);  // md5, 2-byte salt
  EXPECT_EQ(login.failure(), Failure::protocol_violation);
}

TEST(ServerLogin, UnexpectedMessageTypes) {
  for (char type : {'D', 'T', 'C', 'G', 'd', 'Q', '\0'}) {
    ServerLogin login(with_password("pw"), no_binding);
    EXPECT_EQ(feed(login, raw_msg(type, "")), Status::failed) << type;
    EXPECT_EQ(login.failure(), Failure::protocol_violation) << type;
  }
}

TEST(ServerLogin, AuthenticationAfterAuthenticationOk) {
  ServerLogin login(with_password("pw"), no_binding);
  EXPECT_EQ(feed(login, auth_ok()), Status::in_progress);
  EXPECT_EQ(feed(login, auth_code(3)), Status::failed);
  EXPECT_EQ(login.failure(), Failure::protocol_violation);
}

TEST(ServerLogin, MessagesBeforeAuthenticationOk) {
  for (const ByteVec& m : {parameter("server_version", "15"), key_data(1, 2), ready()}) {
    ServerLogin login(with_password("pw"), no_binding);
    EXPECT_EQ(feed(login, m), Status::failed);
    EXPECT_EQ(login.failure(), Failure::protocol_violation);
  }
  // Also in the middle of an exchange.
  ServerLogin login(with_password("pw"), no_binding);
  ByteVec out;
  feed(login, auth_code(3), out);
  EXPECT_EQ(feed(login, parameter("a", "b")), Status::failed);
}

TEST(ServerLogin, MalformedMessagesAfterAuthenticationOk) {
  for (const ByteVec& m :
       {raw_msg('S', "name\0"sv), raw_msg('K', "1234"), raw_msg('Z', "X"), raw_msg('Z', "")}) {
    ServerLogin login(with_password("pw"), no_binding);
    feed(login, auth_ok());
    EXPECT_EQ(feed(login, m), Status::failed);
    EXPECT_EQ(login.failure(), Failure::protocol_violation);
  }
}

TEST(ServerLogin, NegotiateProtocolVersion) {
  ServerLogin login(ServerLogin::Credentials{"alice", {}, {}, {}}, no_binding);
  ByteVec v = msg([](Encoder& e) { encode::negotiate_protocol_version(e, 0, {}); });
  EXPECT_EQ(feed(login, v), Status::in_progress);
  EXPECT_EQ(feed(login, concat({auth_ok(), ready()})), Status::done);

  ServerLogin bad(ServerLogin::Credentials{"alice", {}, {}, {}}, no_binding);
  EXPECT_EQ(feed(bad, raw_msg('v', "\0\0\0\0\0\0\0\1"sv)), Status::failed);
  EXPECT_EQ(bad.failure(), Failure::protocol_violation);
}

TEST(ServerLogin, NoticesAreIgnored) {
  ServerLogin login(ServerLogin::Credentials{"alice", {}, {}, {}}, no_binding);
  EXPECT_EQ(feed(login, raw_msg('N', "garbage without terminator")), Status::in_progress);
}

TEST(ServerLogin, NothingChangesAfterTheEnd) {
  ServerLogin done(ServerLogin::Credentials{"alice", {}, {}, {}}, no_binding);
  ASSERT_EQ(feed(done, concat({auth_ok(), ready()})), Status::done);
  EXPECT_EQ(feed(done, raw_msg('D', "")), Status::done);
  EXPECT_EQ(done.failure(), Failure::none);

  ServerLogin failed(with_password("pw"), no_binding);
  ASSERT_EQ(feed(failed, auth_code(7)), Status::failed);
  EXPECT_EQ(feed(failed, concat({auth_ok(), ready()})), Status::failed);
  EXPECT_EQ(failed.failure(), Failure::unsupported_method);
}

}  // namespace
}  // namespace pgw::protocol
