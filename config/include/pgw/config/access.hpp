// Access rules ([[access]] and pg_hba.conf): IP addresses, CIDR ranges, first-match decisions, the hba
// parser.
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "pgw/config/config.hpp"

namespace pgw::config {

struct IpAddress {
  enum class Family : std::uint8_t { inet, inet6 };
  Family family = Family::inet;
  std::array<std::uint8_t, 16> bytes{};  // network byte order; IPv4 uses the first 4, the rest stay zero
  std::string to_string() const;         // "10.0.0.1", "::1"
  friend bool operator==(const IpAddress&, const IpAddress&) = default;
};

// An IPv4 dotted quad (no leading zeros) or IPv6 text (RFC 4291, no zone id); nullopt if malformed.
std::optional<IpAddress> parse_ip(std::string_view text) noexcept;

// An address range. IPv4 and IPv4-mapped IPv6 (::ffff:a.b.c.d) are one address space here, whichever way the
// listener reports a client: 10.0.0.0/8 contains ::ffff:10.1.2.3, and ::ffff:0:0/96 (or ::/0)
// contains 10.1.2.3.
struct Cidr {
  IpAddress address;        // host bits cleared
  std::uint8_t prefix = 0;  // 0-32 for IPv4, 0-128 for IPv6

  // "10.0.1.0/24", "127.0.0.1" (/32), "::1/128", "::1" (/128), "::ffff:10.0.0.0/104". Host bits beyond the
  // prefix are cleared, as pg_hba.conf does ("10.0.1.7/24" is 10.0.1.0/24).
  static std::optional<Cidr> parse(std::string_view text) noexcept;
  // pg_hba.conf's address-and-netmask form; nullopt unless both have one family and the mask is contiguous.
  static std::optional<Cidr> from_mask(const IpAddress& address, const IpAddress& mask) noexcept;

  bool contains(const IpAddress& a) const noexcept;
  std::string to_string() const;  // "10.0.1.0/24"
  friend bool operator==(const Cidr&, const Cidr&) = default;
};

enum class AccessAction : std::uint8_t { allow, deny };
// pg_hba.conf's clientcert option: a client certificate is demanded in addition to the method.
enum class ClientCert : std::uint8_t { none, verify_ca, verify_full };

struct AccessRule {
  enum class Tls : std::uint8_t { any, required, forbidden };

  AccessAction action = AccessAction::allow;
  std::vector<std::string> databases;  // empty, or containing "all": any database
  std::vector<std::string> users;      // empty, or containing "all": any user
  std::vector<Cidr> addresses;         // empty: any address
  Tls tls = Tls::any;
  std::optional<AuthMethod> method;           // nullopt: auth.type
  ClientCert client_cert = ClientCert::none;  // hba "clientcert="; the cert method implies verify_full
  Position where;
};

// The first rule that matches all five inputs, or nullptr: no match means refused (SPEC "[[access]]"). An
// empty list refuses everything; "no [[access]] at all allows every address" is the caller's to apply.
const AccessRule* match(std::span<const AccessRule> rules, const IpAddress& address, bool tls,
                        std::string_view database, std::string_view user) noexcept;

enum class EarlyDecision : std::uint8_t { allow_later_check, deny };

// What the address alone decides, before TLS and the startup packet. deny only when match() would return
// nullptr or a deny rule for every database, user and TLS state: no rule covers the address, or every rule
// that does before the first unrestricted deny is a deny too. Never denies what match() could allow.
EarlyDecision early_decision(std::span<const AccessRule> rules, const IpAddress& address) noexcept;

struct HbaResult {
  std::vector<AccessRule> rules;  // the records without errors, in file order
  std::vector<Diagnostic> diagnostics;
};

// pg_hba.conf as PostgreSQL 15 reads it (docs 21.1): records of blank-separated fields, "..." quoting ("" is
// a quote), comma lists, # comments, a backslash at the end of a line continues the record. pgwarden takes
// host, hostssl and hostnossl records with databases and users by name or all, an address as CIDR, address
// and netmask, or all, and the methods trust, reject, scram-sha-256, md5, password and cert (hostssl only),
// with the options map= (cert) and clientcert=verify-ca|verify-full (hostssl). Everything else PostgreSQL
// knows (local, hostgssenc, sameuser, +group, @file, replication, host names, samehost, other methods and
// options) is an error at its field, never skipped. A double quote anywhere in a word makes it a plain name,
// and a quoted "all" is an error since rules read all as any.
HbaResult parse_hba(std::string_view text, const std::filesystem::path& file_name);

}  // namespace pgw::config
