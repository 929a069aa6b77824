// Unit tests for access rules: IP and CIDR parsing, first-match decisions, the early address-only decision
// (checked exhaustively against match), and pg_hba.conf parsing with FILE:LINE:COL errors.
#include <gtest/gtest.h>

#include "diagnostics_text.hpp"

#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "pgw/config/access.hpp"

namespace pgw::config {
namespace {

using namespace std::string_view_literals;
using testing::Errors;
using testing::errors_of;

IpAddress ip(std::string_view text) {
  std::optional<IpAddress> a = parse_ip(text);
  EXPECT_TRUE(a) << text;
  return a.value_or(IpAddress{});
}

Cidr cidr(std::string_view text) {
  std::optional<Cidr> c = Cidr::parse(text);
  EXPECT_TRUE(c) << text;
  return c.value_or(Cidr{});
}

// ---- addresses ----

TEST(Access, ParseIp) {
  IpAddress a = ip("10.0.0.1");
  EXPECT_EQ(a.family, IpAddress::Family::inet);
  EXPECT_EQ(a.bytes, (std::array<std::uint8_t, 16>{10, 0, 0, 1}));
  EXPECT_EQ(a.to_string(), "10.0.0.1");
  IpAddress b = ip("::1");
  EXPECT_EQ(b.family, IpAddress::Family::inet6);
  EXPECT_EQ(b.bytes[15], 1);
  EXPECT_EQ(b.to_string(), "::1");
  EXPECT_EQ(ip("2001:DB8::1").to_string(), "2001:db8::1");
  EXPECT_EQ(ip("::ffff:10.0.0.1").to_string(), "::ffff:10.0.0.1");
  for (std::string_view bad : {""sv, "10.0.0"sv, "10.0.0.256"sv, "010.0.0.1"sv, "1.2.3.4 "sv, " 1.2.3.4"sv,
                               "::1%lo"sv, "localhost"sv, "1.2.3.4/32"sv, "1.2.3.4\0"sv, "::1::"sv,
                               "0x7f.0.0.1"sv, "1111:2222:3333:4444:5555:6666:7777:8888:9999"sv}) {
    EXPECT_FALSE(parse_ip(bad)) << bad;
  }
  EXPECT_FALSE(parse_ip(std::string(100, '1')));
}

TEST(Access, ParseCidr) {
  Cidr c = cidr("10.0.1.0/24");
  EXPECT_EQ(c.address, ip("10.0.1.0"));
  EXPECT_EQ(c.prefix, 24);
  EXPECT_EQ(c.to_string(), "10.0.1.0/24");
  EXPECT_EQ(cidr("127.0.0.1").prefix, 32);
  EXPECT_EQ(cidr("::1/128").prefix, 128);
  EXPECT_EQ(cidr("::1").prefix, 128);
  EXPECT_EQ(cidr("::ffff:10.0.0.0/104").to_string(), "::ffff:10.0.0.0/104");
  EXPECT_EQ(cidr("0.0.0.0/0").to_string(), "0.0.0.0/0");
  EXPECT_EQ(cidr("::/0").to_string(), "::/0");
  // Host bits beyond the prefix are cleared, as pg_hba.conf does.
  EXPECT_EQ(cidr("10.0.1.7/24").to_string(), "10.0.1.0/24");
  EXPECT_EQ(cidr("10.0.3.255/23").to_string(), "10.0.2.0/23");
  EXPECT_EQ(cidr("2001:db8::ffff/127").to_string(), "2001:db8::fffe/127");
  EXPECT_EQ(cidr("10.0.0.0/008").prefix, 8);
  for (std::string_view bad :
       {"10.0.0.0/33"sv, "::/129"sv, "10.0.0.0/"sv, "10.0.0.0/-1"sv, "10.0.0.0/+8"sv, "10.0.0.0/8/8"sv,
        "10.0.0.0/ 8"sv, "/8"sv, "10.0.0.0/0008"sv, "junk"sv, ""sv, "10.0.0/8"sv, "10.0.0.0/8 "sv}) {
    EXPECT_FALSE(Cidr::parse(bad)) << bad;
  }
}

TEST(Access, CidrContains) {
  Cidr net = cidr("10.0.1.0/24");
  EXPECT_TRUE(net.contains(ip("10.0.1.0")));
  EXPECT_TRUE(net.contains(ip("10.0.1.255")));
  EXPECT_FALSE(net.contains(ip("10.0.2.0")));
  EXPECT_FALSE(net.contains(ip("10.0.0.255")));
  EXPECT_TRUE(cidr("10.0.2.0/23").contains(ip("10.0.3.9")));
  EXPECT_FALSE(cidr("10.0.2.0/23").contains(ip("10.0.4.9")));
  EXPECT_TRUE(cidr("2001:db8::/127").contains(ip("2001:db8::1")));
  EXPECT_FALSE(cidr("2001:db8::/127").contains(ip("2001:db8::2")));
  EXPECT_TRUE(cidr("::1/128").contains(ip("::1")));
  EXPECT_FALSE(cidr("::1/128").contains(ip("127.0.0.1")));
  EXPECT_FALSE(cidr("127.0.0.1").contains(ip("::1")));
}

TEST(Access, Ipv4MappedAddressesAreIpv4) {
  // A dual-stack listener reports IPv4 clients as ::ffff:a.b.c.d: IPv4 rules must still apply.
  EXPECT_TRUE(cidr("10.0.1.0/24").contains(ip("::ffff:10.0.1.5")));
  EXPECT_FALSE(cidr("10.0.1.0/24").contains(ip("::ffff:10.0.2.5")));
  EXPECT_TRUE(cidr("127.0.0.1").contains(ip("::ffff:127.0.0.1")));
  // And IPv6 rules over the mapped range apply to IPv4 clients.
  EXPECT_TRUE(cidr("::ffff:0:0/96").contains(ip("1.2.3.4")));
  EXPECT_TRUE(cidr("::ffff:10.0.0.0/104").contains(ip("10.200.3.4")));
  EXPECT_FALSE(cidr("::ffff:10.0.0.0/104").contains(ip("11.0.0.1")));
  EXPECT_TRUE(cidr("::ffff:10.0.0.1/128").contains(ip("10.0.0.1")));
  // 0.0.0.0/0 is every IPv4 address and no native IPv6 one; ::/0 covers the mapped range too.
  EXPECT_TRUE(cidr("0.0.0.0/0").contains(ip("255.255.255.255")));
  EXPECT_TRUE(cidr("0.0.0.0/0").contains(ip("::ffff:1.2.3.4")));
  EXPECT_FALSE(cidr("0.0.0.0/0").contains(ip("::1")));
  EXPECT_FALSE(cidr("0.0.0.0/0").contains(ip("2001:db8::1")));
  EXPECT_TRUE(cidr("::/0").contains(ip("2001:db8::1")));
  EXPECT_TRUE(cidr("::/0").contains(ip("1.2.3.4")));
  // The deprecated IPv4-compatible form ::a.b.c.d is a plain IPv6 address.
  EXPECT_FALSE(cidr("10.0.0.0/8").contains(ip("::10.0.0.1")));
}

TEST(Access, CidrFromMask) {
  auto from = [](std::string_view a, std::string_view m) { return Cidr::from_mask(ip(a), ip(m)); };
  EXPECT_EQ(from("10.0.1.7", "255.255.255.0")->to_string(), "10.0.1.0/24");
  EXPECT_EQ(from("10.0.3.7", "255.255.254.0")->to_string(), "10.0.2.0/23");
  EXPECT_EQ(from("10.0.3.7", "255.255.255.255")->to_string(), "10.0.3.7/32");
  EXPECT_EQ(from("10.0.3.7", "0.0.0.0")->to_string(), "0.0.0.0/0");
  EXPECT_EQ(from("2001:db8::1", "ffff:ffff::")->to_string(), "2001:db8::/32");
  EXPECT_FALSE(from("10.0.0.0", "255.0.255.0"));
  EXPECT_FALSE(from("10.0.0.0", "0.255.255.255"));
  EXPECT_FALSE(from("10.0.0.0", "ffff::"));
  EXPECT_FALSE(from("::1", "255.255.255.0"));
}

// ---- decisions ----

AccessRule rule(AccessAction action, std::vector<std::string> dbs, std::vector<std::string> users,
                const std::vector<std::string_view>& addrs, AccessRule::Tls tls = AccessRule::Tls::any) {
  AccessRule r;
  r.action = action;
  r.databases = std::move(dbs);
  r.users = std::move(users);
  for (std::string_view a : addrs)
    r.addresses.push_back(cidr(a));
  r.tls = tls;
  return r;
}

constexpr auto allow = AccessAction::allow;
constexpr auto deny = AccessAction::deny;

TEST(Access, FirstMatchWins) {
  std::vector<AccessRule> rules{
      rule(deny, {"all"}, {"mallory"}, {}),
      rule(allow, {"app"}, {"alice", "bob"}, {"10.0.1.0/24"}, AccessRule::Tls::required),
      rule(allow, {}, {"ops"}, {"127.0.0.1", "::1"}),
      rule(deny, {"app"}, {}, {"10.0.0.0/8"}),
      rule(allow, {"reports"}, {"all"}, {"10.0.0.0/8"}, AccessRule::Tls::forbidden),
  };
  auto which = [&](std::string_view addr, bool tls, std::string_view db, std::string_view user) -> int {
    const AccessRule* r = match(rules, ip(addr), tls, db, user);
    return r == nullptr ? -1 : static_cast<int>(r - rules.data());
  };
  EXPECT_EQ(which("10.0.1.5", true, "app", "mallory"), 0);
  EXPECT_EQ(which("10.0.1.5", true, "app", "alice"), 1);
  EXPECT_EQ(which("::ffff:10.0.1.5", true, "app", "bob"), 1);
  EXPECT_EQ(which("10.0.1.5", false, "app", "alice"), 3);  // TLS required by rule 1
  EXPECT_EQ(which("10.0.1.5", true, "App", "alice"), -1);  // names are case-sensitive
  EXPECT_EQ(which("10.0.1.5", true, "app", "carol"), 3);
  EXPECT_EQ(which("127.0.0.1", false, "anything", "ops"), 2);
  EXPECT_EQ(which("::1", true, "anything", "ops"), 2);
  EXPECT_EQ(which("10.9.9.9", false, "reports", "carol"), 4);
  EXPECT_EQ(which("10.9.9.9", true, "reports", "carol"), -1);  // TLS forbidden by rule 4
  EXPECT_EQ(which("192.168.0.1", false, "reports", "carol"), -1);
  EXPECT_EQ(match({}, ip("127.0.0.1"), true, "db", "user"), nullptr);
}

TEST(Access, EarlyDecisionCases) {
  auto early = [](const std::vector<AccessRule>& rules, std::string_view addr) {
    return early_decision(rules, ip(addr));
  };
  const auto later = EarlyDecision::allow_later_check;
  const auto no = EarlyDecision::deny;
  EXPECT_EQ(early({}, "10.0.0.1"), no);
  // No rule covers the address.
  std::vector<AccessRule> lan{rule(allow, {}, {}, {"10.0.0.0/8"})};
  EXPECT_EQ(early(lan, "10.1.2.3"), later);
  EXPECT_EQ(early(lan, "::ffff:10.1.2.3"), later);
  EXPECT_EQ(early(lan, "192.168.0.1"), no);
  // An unrestricted deny first; a restricted deny does not decide, a restricted allow before it keeps hope.
  std::vector<AccessRule> rules{
      rule(deny, {}, {}, {"10.66.0.0/16"}),
      rule(deny, {"app"}, {}, {"10.1.0.0/16"}),
      rule(allow, {"app"}, {"alice"}, {"10.2.0.0/16"}, AccessRule::Tls::required),
      rule(deny, {"all"}, {"all"}, {"10.0.0.0/8"}),
      rule(allow, {}, {}, {}),
  };
  EXPECT_EQ(early(rules, "10.66.1.1"), no);
  EXPECT_EQ(early(rules, "10.1.1.1"), no);     // rule 1 may let some through, but only to rule 3's deny
  EXPECT_EQ(early(rules, "10.2.1.1"), later);  // rule 2 allows alice on app with TLS
  EXPECT_EQ(early(rules, "10.3.1.1"), no);
  EXPECT_EQ(early(rules, "11.0.0.1"), later);
  // Only restricted denies cover the address: every path ends in a deny or no match.
  std::vector<AccessRule> denies{rule(deny, {"a"}, {}, {}),
                                 rule(deny, {}, {"u"}, {}, AccessRule::Tls::required)};
  EXPECT_EQ(early(denies, "10.0.0.1"), no);
}

// Early denial must never refuse a connection that match() would allow for some database, user and TLS state.
TEST(Access, EarlyDecisionNeverDeniesWhatMatchAllows) {
  const std::vector<std::string_view> cidrs{"10.0.0.0/8", "10.1.0.0/16", "::ffff:10.0.0.0/104", "::1",
                                            "0.0.0.0/0",  "192.168.1.7", "2001:db8::/32",       "::/0"};
  const std::vector<std::vector<std::string>> name_sets{{}, {"all"}, {"a"}, {"b"}, {"a", "b"}, {"c", "all"}};
  const std::vector<std::string_view> addresses{"10.1.2.3",  "10.2.3.4",    "::ffff:10.1.2.3", "::1",
                                                "127.0.0.1", "192.168.1.7", "2001:db8::9",     "8.8.8.8"};
  const std::vector<std::string> names{"a", "b", "c", "other"};
  const AccessRule::Tls tls_values[] = {AccessRule::Tls::any, AccessRule::Tls::required,
                                        AccessRule::Tls::forbidden};

  std::mt19937 rng(20240611);
  auto pick = [&](std::size_t n) { return static_cast<std::size_t>(rng() % n); };
  auto random_rule = [&] {
    std::vector<std::string_view> addrs;
    for (std::size_t k = pick(3); k > 0; --k)
      addrs.push_back(cidrs[pick(cidrs.size())]);
    return rule(pick(2) == 0 ? allow : deny, name_sets[pick(name_sets.size())],
                name_sets[pick(name_sets.size())], addrs, tls_values[pick(3)]);
  };

  std::size_t denied_early = 0;
  std::size_t checked = 0;
  for (int set = 0; set < 3000; ++set) {
    std::vector<AccessRule> rules;
    for (std::size_t n = pick(6); n > 0; --n)
      rules.push_back(random_rule());
    for (std::string_view a : addresses) {
      const IpAddress addr = ip(a);
      bool some_allow = false;
      for (const std::string& db : names) {
        for (const std::string& user : names) {
          for (bool tls : {false, true}) {
            const AccessRule* r = match(rules, addr, tls, db, user);
            some_allow = some_allow || (r != nullptr && r->action == allow);
          }
        }
      }
      const EarlyDecision e = early_decision(rules, addr);
      ++checked;
      if (e == EarlyDecision::deny) {
        ++denied_early;
        EXPECT_FALSE(some_allow) << "set " << set << " address " << a;
      }
      // Without any address-matching allow rule, the address alone decides.
      bool covered_allow = false;
      for (const AccessRule& r : rules) {
        bool addr_ok = r.addresses.empty();
        for (const Cidr& c : r.addresses)
          addr_ok = addr_ok || c.contains(addr);
        covered_allow = covered_allow || (addr_ok && r.action == allow);
      }
      if (!covered_allow) {
        EXPECT_EQ(e, EarlyDecision::deny) << "set " << set << " address " << a;
      }
    }
  }
  // The generator must exercise both outcomes, or the property is vacuous.
  EXPECT_GT(denied_early, checked / 10);
  EXPECT_LT(denied_early, checked * 9 / 10);
}

// ---- pg_hba.conf ----

Errors errors(std::string_view text) {
  return errors_of(parse_hba(text, "pg_hba.conf"));
}

TEST(Hba, Records) {
  const HbaResult r = parse_hba(
      "# TYPE  DATABASE  USER  ADDRESS  METHOD\r\n"
      "\n"
      "   # indented comment\n"
      "host    all       all   127.0.0.1/32   trust\r\n"
      "hostssl app,reports alice,bob 10.0.1.0/24 scram-sha-256  # trailing comment\n"
      "hostnossl app     all   ::1/128        md5\n"
      "host    app       carol 192.168.0.0 255.255.0.0 password\n"
      "host    all       all   all            reject\n"
      "\thostssl all all ::ffff:10.0.0.0/104 cert clientcert=verify-full\n"
      "hostssl all all 0.0.0.0/0 scram-sha-256 clientcert=verify-ca",
      "/etc/pgwarden/pg_hba.conf");
  EXPECT_EQ(errors_of(r), Errors{});
  ASSERT_EQ(r.rules.size(), 7u);

  const AccessRule& trust = r.rules[0];
  EXPECT_EQ(trust.action, AccessAction::allow);
  EXPECT_EQ(trust.databases, (std::vector<std::string>{"all"}));
  EXPECT_EQ(trust.users, (std::vector<std::string>{"all"}));
  ASSERT_EQ(trust.addresses.size(), 1u);
  EXPECT_EQ(trust.addresses[0].to_string(), "127.0.0.1/32");
  EXPECT_EQ(trust.tls, AccessRule::Tls::any);
  EXPECT_EQ(trust.method, AuthMethod::trust);
  EXPECT_EQ(trust.client_cert, ClientCert::none);
  EXPECT_EQ(trust.where.file, "/etc/pgwarden/pg_hba.conf");
  EXPECT_EQ(trust.where.line, 4u);
  EXPECT_EQ(trust.where.column, 1u);

  const AccessRule& scram = r.rules[1];
  EXPECT_EQ(scram.databases, (std::vector<std::string>{"app", "reports"}));
  EXPECT_EQ(scram.users, (std::vector<std::string>{"alice", "bob"}));
  EXPECT_EQ(scram.tls, AccessRule::Tls::required);
  EXPECT_EQ(scram.method, AuthMethod::scram_sha_256);
  EXPECT_EQ(scram.where.line, 5u);

  EXPECT_EQ(r.rules[2].tls, AccessRule::Tls::forbidden);
  EXPECT_EQ(r.rules[2].method, AuthMethod::md5);
  EXPECT_EQ(r.rules[2].addresses[0].to_string(), "::1/128");

  EXPECT_EQ(r.rules[3].addresses[0].to_string(), "192.168.0.0/16");
  EXPECT_EQ(r.rules[3].method, AuthMethod::password);

  const AccessRule& reject = r.rules[4];
  EXPECT_EQ(reject.action, AccessAction::deny);
  EXPECT_TRUE(reject.addresses.empty());
  EXPECT_FALSE(reject.method);

  const AccessRule& cert = r.rules[5];
  EXPECT_EQ(cert.method, AuthMethod::cert);
  EXPECT_EQ(cert.client_cert, ClientCert::verify_full);
  EXPECT_EQ(cert.where.line, 9u);
  EXPECT_EQ(cert.where.column, 2u);

  EXPECT_EQ(r.rules[6].client_cert, ClientCert::verify_ca);
  EXPECT_EQ(r.rules[6].where.line, 10u);
}

TEST(Hba, CertImpliesVerifyFull) {
  const HbaResult r = parse_hba("hostssl all all all cert\n", "pg_hba.conf");
  EXPECT_EQ(errors_of(r), Errors{});
  ASSERT_EQ(r.rules.size(), 1u);
  EXPECT_EQ(r.rules[0].client_cert, ClientCert::verify_full);
}

TEST(Hba, QuotingAndLists) {
  const HbaResult r = parse_hba(
      "host \"my db\",\"a\"\"b\" \"all\"x,\"+ops\",\"@list\",replication_user all reject\n"
      "host \"replication\",\"sameuser\" all all reject\n"
      "host db1, db2 ,db3 all reject\n"
      "host db1,,db2, u1 all all reject\n"
      "host a\"b c\"d all all reject\n"
      "host \"#not a comment\" all all reject # a comment\n"
      "host db#comment\n",
      "pg_hba.conf");
  // The last line ends in a comment before its user field: the error points just after the last word.
  EXPECT_EQ(errors_of(r), Errors{"pg_hba.conf:7:8: end of line before the user field"});
  ASSERT_EQ(r.rules.size(), 6u);
  EXPECT_EQ(r.rules[0].databases, (std::vector<std::string>{"my db", "a\"b"}));
  EXPECT_EQ(r.rules[0].users, (std::vector<std::string>{"allx", "+ops", "@list", "replication_user"}));
  EXPECT_EQ(r.rules[1].databases, (std::vector<std::string>{"replication", "sameuser"}));
  // A comma followed by blanks continues the list; blanks then a comma start the next field (PostgreSQL's
  // rule).
  EXPECT_EQ(r.rules[2].databases, (std::vector<std::string>{"db1", "db2"}));
  EXPECT_EQ(r.rules[2].users, (std::vector<std::string>{"db3"}));
  EXPECT_EQ(r.rules[3].databases, (std::vector<std::string>{"db1", "db2", "u1"}));
  EXPECT_EQ(r.rules[3].users, (std::vector<std::string>{"all"}));
  EXPECT_EQ(r.rules[4].databases, (std::vector<std::string>{"ab cd"}));
  EXPECT_EQ(r.rules[5].databases, (std::vector<std::string>{"#not a comment"}));
}

TEST(Hba, QuotedAllIsAnError) {
  EXPECT_EQ(
      errors("host \"all\" all all trust\nhost all \"all\" all trust\n"),
      (Errors{
          "pg_hba.conf:1:6: a database named \"all\" cannot be matched: pgwarden reads all as any database",
          "pg_hba.conf:2:10: a user named \"all\" cannot be matched: pgwarden reads all as any user"}));
  EXPECT_EQ(errors("host \"\" all all trust\n"), Errors{"pg_hba.conf:1:6: empty database name"});
}

TEST(Hba, LineContinuation) {
  const HbaResult r = parse_hba(
      "host app,\\\n"
      "     reports \\\n"
      "  alice 10.0.0.0/8 \\\n"
      "  scram-sha-256\n"
      "host al\\\n"
      "l all all trust # a comment \\\n"
      "  continues here\n"
      "host app all all tru\\st\n",
      "pg_hba.conf");
  EXPECT_EQ(errors_of(r), Errors{"pg_hba.conf:8:18: invalid authentication method \"tru\\st\""});
  ASSERT_EQ(r.rules.size(), 2u);
  EXPECT_EQ(r.rules[0].databases, (std::vector<std::string>{"app", "reports"}));
  EXPECT_EQ(r.rules[0].users, (std::vector<std::string>{"alice"}));
  EXPECT_EQ(r.rules[0].method, AuthMethod::scram_sha_256);
  EXPECT_EQ(r.rules[0].where.line, 1u);
  EXPECT_EQ(r.rules[1].databases, (std::vector<std::string>{"all"}));
  EXPECT_EQ(r.rules[1].where.line, 5u);
  // Errors on a continued line point at that line, and the line numbers after it stay right.
  EXPECT_EQ(
      errors("host app \\\n"
             "   alice \\\n"
             "   10.0.0.0/33 trust\n"
             "local all all trust\n"),
      (Errors{"pg_hba.conf:3:4: invalid CIDR address \"10.0.0.0/33\"",
              "pg_hba.conf:4:1: local is not supported: pgwarden listens on TCP only (use host, hostssl or "
              "hostnossl)"}));
  // A backslash and an empty line, a record ending the file with a backslash.
  EXPECT_EQ(errors("host all all \\\n\\\n all trust\nhost all all all\\"),
            Errors{"pg_hba.conf:4:17: end of line before the authentication method field"});
}

TEST(Hba, ConnectionTypeErrors) {
  EXPECT_EQ(
      errors("local all all trust\n"),
      Errors{"pg_hba.conf:1:1: local is not supported: pgwarden listens on TCP only (use host, hostssl or "
             "hostnossl)"});
  EXPECT_EQ(
      errors("  hostgssenc all all all trust\nhostnogssenc all all all trust\n"),
      (Errors{"pg_hba.conf:1:3: hostgssenc is not supported: pgwarden does not offer GSSAPI encryption",
              "pg_hba.conf:2:1: hostnogssenc is not supported: pgwarden does not offer GSSAPI encryption"}));
  EXPECT_EQ(
      errors("hosts all all all trust\n"),
      Errors{"pg_hba.conf:1:1: invalid connection type \"hosts\": expected host, hostssl or hostnossl"});
  EXPECT_EQ(
      errors("include other.conf\n"),
      Errors{"pg_hba.conf:1:1: invalid connection type \"include\": expected host, hostssl or hostnossl"});
  EXPECT_EQ(errors("host,hostssl all all all trust\n"),
            Errors{"pg_hba.conf:1:6: the connection type field takes one value, not a list"});
}

TEST(Hba, NameKeywordErrors) {
  EXPECT_EQ(errors("host sameuser,samerole,samegroup all all trust\n"),
            (Errors{"pg_hba.conf:1:6: sameuser is not supported: list the database names",
                    "pg_hba.conf:1:15: samerole is not supported: list the database names",
                    "pg_hba.conf:1:24: samegroup is not supported: list the database names"}));
  EXPECT_EQ(
      errors("host replication all all trust\n"),
      Errors{
          "pg_hba.conf:1:6: replication is not supported: pgwarden does not proxy replication connections"});
  EXPECT_EQ(errors("host all +admins all trust\n"),
            Errors{"pg_hba.conf:1:10: group membership (+group) is not supported: list the user names"});
  EXPECT_EQ(errors("host @dbs @users all trust\n"),
            (Errors{"pg_hba.conf:1:6: @file inclusion is not supported: list the database names",
                    "pg_hba.conf:1:11: @file inclusion is not supported: list the user names"}));
  EXPECT_EQ(
      errors("host /^db all all trust\nhost all /^u all trust\n"),
      (Errors{"pg_hba.conf:1:6: a database name starting with / (a regular expression) is not supported",
              "pg_hba.conf:2:10: a user name starting with / (a regular expression) is not supported"}));
  // Keywords of one field are plain names in the other.
  const HbaResult r = parse_hba("host +db all all trust\nhost all sameuser,replication all trust\n", "f");
  EXPECT_EQ(errors_of(r), Errors{});
  ASSERT_EQ(r.rules.size(), 2u);
  EXPECT_EQ(r.rules[0].databases, (std::vector<std::string>{"+db"}));
  EXPECT_EQ(r.rules[1].users, (std::vector<std::string>{"sameuser", "replication"}));
}

TEST(Hba, AddressErrors) {
  EXPECT_EQ(errors("host all all samehost trust\nhost all all samenet trust\n"),
            (Errors{"pg_hba.conf:1:14: samehost is not supported: write the addresses as CIDR",
                    "pg_hba.conf:2:14: samenet is not supported: write the addresses as CIDR"}));
  EXPECT_EQ(errors("host all all db.example.com trust\nhost all all .example.com trust\n"),
            (Errors{"pg_hba.conf:1:14: host names are not supported: write an IP address with a /prefix or a "
                    "netmask, not \"db.example.com\"",
                    "pg_hba.conf:2:14: host names are not supported: write an IP address with a /prefix or a "
                    "netmask, not \".example.com\""}));
  EXPECT_EQ(errors("host all all \"all\" trust\n"),
            Errors{"pg_hba.conf:1:14: host names are not supported: write an IP address with a /prefix or a "
                   "netmask, not \"all\""});
  EXPECT_EQ(errors("host all all 10.0.0.0/33 trust\nhost all all host/8 trust\nhost all all ::/129 trust\n"),
            (Errors{"pg_hba.conf:1:14: invalid CIDR address \"10.0.0.0/33\"",
                    "pg_hba.conf:2:14: invalid CIDR address \"host/8\"",
                    "pg_hba.conf:3:14: invalid CIDR address \"::/129\""}));
  EXPECT_EQ(
      errors("host all all 10.0.0.1 trust\n"),
      Errors{"pg_hba.conf:1:23: invalid netmask \"trust\": write 10.0.0.1/32, or an address followed by a "
             "netmask"});
  EXPECT_EQ(errors("host all all ::1 trust\n"),
            Errors{"pg_hba.conf:1:18: invalid netmask \"trust\": write ::1/128, or an address followed by a "
                   "netmask"});
  EXPECT_EQ(errors("host all all 10.0.0.0 255.0.255.0 trust\nhost all all 10.0.0.0 ffff:: trust\n"),
            (Errors{"pg_hba.conf:1:23: the netmask \"255.0.255.0\" is not contiguous",
                    "pg_hba.conf:2:23: the address and the netmask are not of the same family"}));
  EXPECT_EQ(
      errors("host all all 10.0.0.0\n"),
      Errors{"pg_hba.conf:1:22: end of line before the netmask field (or write the address with a /prefix)"});
  EXPECT_EQ(errors("host all all 10.0.0.0/8,10.1.0.0/16 trust\n"),
            Errors{"pg_hba.conf:1:25: the address field takes one value, not a list"});
}

TEST(Hba, MissingFields) {
  EXPECT_EQ(errors("host\n"), Errors{"pg_hba.conf:1:5: end of line before the database field"});
  EXPECT_EQ(errors("host all   \n"), Errors{"pg_hba.conf:1:9: end of line before the user field"});
  EXPECT_EQ(errors("host all all # no address\n"),
            Errors{"pg_hba.conf:1:13: end of line before the address field"});
  EXPECT_EQ(errors("host all all all\r\n"),
            Errors{"pg_hba.conf:1:17: end of line before the authentication method field"});
}

TEST(Hba, MethodErrors) {
  for (std::string_view m :
       {"gss"sv, "sspi"sv, "ident"sv, "peer"sv, "ldap"sv, "radius"sv, "pam"sv, "bsd"sv}) {
    EXPECT_EQ(
        errors("host all all all " + std::string(m) + " opt=1\n"),
        Errors{"pg_hba.conf:1:18: authentication method \"" + std::string(m) +
               "\" is not supported (pgwarden takes trust, reject, scram-sha-256, md5, password, cert)"});
  }
  EXPECT_EQ(errors("host all all all scram-sha-1\n"),
            Errors{"pg_hba.conf:1:18: invalid authentication method \"scram-sha-1\""});
  EXPECT_EQ(errors("host all all all trust,md5\n"),
            Errors{"pg_hba.conf:1:24: the authentication method field takes one value, not a list"});
  EXPECT_EQ(errors("host all all all cert\nhostnossl all all all cert\n"),
            (Errors{"pg_hba.conf:1:18: cert authentication is only allowed on hostssl lines",
                    "pg_hba.conf:2:23: cert authentication is only allowed on hostssl lines"}));
}

TEST(Hba, OptionErrors) {
  // pg_ident.conf maps are not read: a map= would be a security setting silently ignored.
  EXPECT_EQ(errors("hostssl all all all cert map=m\n"),
            Errors{"pg_hba.conf:1:26: map is not supported yet: map certificate names to users with "
                   "[auth.cert_map]"});
  EXPECT_EQ(errors("host all all all md5 clientcert=verify-full\n"),
            Errors{"pg_hba.conf:1:22: clientcert can only be set on hostssl lines"});
  EXPECT_EQ(errors("hostssl all all all md5 clientcert=1\nhostssl all all all md5 clientcert=no-verify\n"),
            (Errors{"pg_hba.conf:1:25: clientcert must be verify-ca or verify-full, not \"1\"",
                    "pg_hba.conf:2:25: clientcert must be verify-ca or verify-full, not \"no-verify\""}));
  EXPECT_EQ(errors("hostssl all all all cert clientcert=verify-ca\n"),
            Errors{"pg_hba.conf:1:26: clientcert=verify-ca cannot be used with cert authentication, which "
                   "verifies fully"});
  EXPECT_EQ(errors("hostssl all all all md5 clientcert=verify-ca clientcert=verify-full\n"),
            Errors{"pg_hba.conf:1:46: clientcert is given twice"});
  EXPECT_EQ(
      errors("host all all all md5 include_realm=0 pamservice=x\n"),
      (Errors{"pg_hba.conf:1:22: authentication option \"include_realm\" is not supported (pgwarden takes "
              "clientcert)",
              "pg_hba.conf:1:38: authentication option \"pamservice\" is not supported (pgwarden takes "
              "clientcert)"}));
  EXPECT_EQ(errors("hostssl all all all cert map\n"),
            Errors{"pg_hba.conf:1:26: authentication option \"map\" is not in name=value form"});
  // Quoted option values, and several options in one comma list.
  const HbaResult r =
      parse_hba("hostssl all all all md5 \"clientcert=verify-full\",clientcert=verify-ca\n", "f");
  EXPECT_EQ(errors_of(r), Errors{"f:1:50: clientcert is given twice"});
}

TEST(Hba, UnterminatedQuote) {
  EXPECT_EQ(errors("host \"app all all trust\n"), Errors{"pg_hba.conf:1:6: unterminated quoted field"});
  EXPECT_EQ(errors("host all all all trust map=\"x\n"),
            Errors{"pg_hba.conf:1:24: unterminated quoted field"});
}

TEST(Hba, ErrorsDropOnlyTheirRecord) {
  const HbaResult r = parse_hba(
      "host all all 10.0.0.0/8 md5\n"
      "host sameuser +g all ldap\n"
      "host all all ::1 255.255.255.255 trust\n"
      "hostssl all all 192.168.0.0/16 scram-sha-256\n",
      "pg_hba.conf");
  // Several errors of one record are all reported.
  EXPECT_EQ(
      errors_of(r),
      (Errors{
          "pg_hba.conf:2:6: sameuser is not supported: list the database names",
          "pg_hba.conf:2:15: group membership (+group) is not supported: list the user names",
          "pg_hba.conf:2:22: authentication method \"ldap\" is not supported (pgwarden takes trust, reject, "
          "scram-sha-256, md5, password, cert)",
          "pg_hba.conf:3:18: the address and the netmask are not of the same family"}));
  ASSERT_EQ(r.rules.size(), 2u);
  EXPECT_EQ(r.rules[0].where.line, 1u);
  EXPECT_EQ(r.rules[1].where.line, 4u);
}

TEST(Hba, EmptyAndCommentOnly) {
  EXPECT_EQ(errors(""), Errors{});
  const HbaResult r = parse_hba("# nothing\n\n   \t\n#\\\n", "pg_hba.conf");
  EXPECT_EQ(errors_of(r), Errors{});
  EXPECT_TRUE(r.rules.empty());
}

TEST(Hba, ParsedRulesDecide) {
  const HbaResult r = parse_hba(
      "hostssl app   alice 10.0.1.0/24 scram-sha-256\n"
      "host    all   all   10.0.0.0/8  reject\n"
      "host    all   all   ::1/128     trust\n",
      "pg_hba.conf");
  ASSERT_EQ(errors_of(r), Errors{});
  EXPECT_EQ(match(r.rules, ip("10.0.1.9"), true, "app", "alice"), &r.rules[0]);
  EXPECT_EQ(match(r.rules, ip("::ffff:10.0.1.9"), false, "app", "alice"), &r.rules[1]);
  EXPECT_EQ(match(r.rules, ip("::1"), false, "x", "y"), &r.rules[2]);
  EXPECT_EQ(match(r.rules, ip("192.168.0.1"), true, "app", "alice"), nullptr);
  EXPECT_EQ(early_decision(r.rules, ip("10.0.1.9")), EarlyDecision::allow_later_check);
  EXPECT_EQ(early_decision(r.rules, ip("10.0.2.9")), EarlyDecision::deny);
  EXPECT_EQ(early_decision(r.rules, ip("192.168.0.1")), EarlyDecision::deny);
}

}  // namespace
}  // namespace pgw::config
