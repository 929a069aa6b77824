// Access rules: CIDR matching in one IPv6-mapped address space, first-match decisions, pg_hba.conf parsing.
#include "pgw/config/access.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <cstring>
#include <initializer_list>
#include <iterator>

namespace pgw::config {

namespace {

using Bytes16 = std::array<std::uint8_t, 16>;

constexpr unsigned bits_of(IpAddress::Family f) noexcept {
  return f == IpAddress::Family::inet ? 32 : 128;
}

// IPv4 as its IPv4-mapped IPv6 form (RFC 4291 2.5.5.2), so one comparison serves both families.
Bytes16 mapped(const IpAddress& a) noexcept {
  if (a.family == IpAddress::Family::inet6) return a.bytes;
  Bytes16 m{};
  m[10] = 0xff;
  m[11] = 0xff;
  std::copy_n(a.bytes.begin(), 4, m.begin() + 12);
  return m;
}

void clear_host_bits(Bytes16& b, unsigned prefix) noexcept {
  for (unsigned i = 0; i < b.size(); ++i) {
    unsigned first_bit = i * 8;
    if (first_bit >= prefix) {
      b[i] = 0;
    } else if (prefix - first_bit < 8) {
      b[i] &= static_cast<std::uint8_t>(0xff << (8 - (prefix - first_bit)));
    }
  }
}

bool same_prefix(const Bytes16& a, const Bytes16& b, unsigned prefix) noexcept {
  Bytes16 x = a;
  Bytes16 y = b;
  clear_host_bits(x, prefix);
  clear_host_bits(y, prefix);
  return x == y;
}

bool any_name(const std::vector<std::string>& names) noexcept {
  return names.empty() || std::find(names.begin(), names.end(), "all") != names.end();
}

bool names_match(const std::vector<std::string>& names, std::string_view name) noexcept {
  return any_name(names) || std::find(names.begin(), names.end(), name) != names.end();
}

bool address_matches(const AccessRule& r, const IpAddress& a) noexcept {
  if (r.addresses.empty()) return true;
  return std::any_of(r.addresses.begin(), r.addresses.end(), [&](const Cidr& c) { return c.contains(a); });
}

bool tls_matches(AccessRule::Tls t, bool tls) noexcept {
  switch (t) {
    case AccessRule::Tls::any:
      return true;
    case AccessRule::Tls::required:
      return tls;
    case AccessRule::Tls::forbidden:
      return !tls;
  }
  return false;
}

// A rule that every database, user and TLS state reaches once its address matches.
bool only_address_restricted(const AccessRule& r) noexcept {
  return r.tls == AccessRule::Tls::any && any_name(r.databases) && any_name(r.users);
}

}  // namespace

std::string IpAddress::to_string() const {
  char text[INET6_ADDRSTRLEN];
  const int af = family == Family::inet ? AF_INET : AF_INET6;
  if (inet_ntop(af, bytes.data(), text, sizeof text) == nullptr) return "?";
  return text;
}

std::optional<IpAddress> parse_ip(std::string_view text) noexcept {
  // inet_pton wants a NUL-terminated string: a NUL inside the view would cut it short.
  char buf[INET6_ADDRSTRLEN];
  if (text.empty() || text.size() >= sizeof buf || text.find('\0') != std::string_view::npos)
    return std::nullopt;
  std::memcpy(buf, text.data(), text.size());
  buf[text.size()] = '\0';
  IpAddress a;
  if (inet_pton(AF_INET, buf, a.bytes.data()) == 1) return a;
  a.family = IpAddress::Family::inet6;
  if (inet_pton(AF_INET6, buf, a.bytes.data()) == 1) return a;
  return std::nullopt;
}

std::optional<Cidr> Cidr::parse(std::string_view text) noexcept {
  const std::size_t slash = text.find('/');
  std::optional<IpAddress> ip = parse_ip(text.substr(0, slash));
  if (!ip) return std::nullopt;
  const unsigned max = bits_of(ip->family);
  unsigned prefix = max;
  if (slash != std::string_view::npos) {
    std::string_view digits = text.substr(slash + 1);
    if (digits.empty() || digits.size() > 3) return std::nullopt;
    prefix = 0;
    for (char c : digits) {
      if (c < '0' || c > '9') return std::nullopt;
      prefix = prefix * 10 + static_cast<unsigned>(c - '0');
    }
    if (prefix > max) return std::nullopt;
  }
  Cidr c;
  c.address = *ip;
  c.prefix = static_cast<std::uint8_t>(prefix);
  clear_host_bits(c.address.bytes, prefix);
  return c;
}

std::optional<Cidr> Cidr::from_mask(const IpAddress& address, const IpAddress& mask) noexcept {
  if (address.family != mask.family) return std::nullopt;
  const unsigned max = bits_of(mask.family);
  unsigned prefix = 0;
  while (prefix < max && (mask.bytes[prefix / 8] & (0x80u >> (prefix % 8))) != 0)
    ++prefix;
  // Every bit after the first zero must be zero too: "255.0.255.0" is not a range.
  for (unsigned b = prefix; b < max; ++b) {
    if ((mask.bytes[b / 8] & (0x80u >> (b % 8))) != 0) return std::nullopt;
  }
  Cidr c;
  c.address = address;
  c.prefix = static_cast<std::uint8_t>(prefix);
  clear_host_bits(c.address.bytes, prefix);
  return c;
}

bool Cidr::contains(const IpAddress& a) const noexcept {
  const unsigned p = address.family == IpAddress::Family::inet ? prefix + 96u : prefix;
  return same_prefix(mapped(address), mapped(a), p);
}

std::string Cidr::to_string() const {
  return address.to_string() + "/" + std::to_string(prefix);
}

const AccessRule* match(std::span<const AccessRule> rules, const IpAddress& address, bool tls,
                        std::string_view database, std::string_view user) noexcept {
  for (const AccessRule& r : rules) {
    if (address_matches(r, address) && tls_matches(r.tls, tls) && names_match(r.databases, database) &&
        names_match(r.users, user)) {
      return &r;
    }
  }
  return nullptr;
}

EarlyDecision early_decision(std::span<const AccessRule> rules, const IpAddress& address) noexcept {
  for (const AccessRule& r : rules) {
    if (!address_matches(r, address)) continue;
    // Some database, user or TLS state may reach this allow rule: only match() can tell.
    if (r.action == AccessAction::allow) return EarlyDecision::allow_later_check;
    // Every connection from here that got this far stops at this deny.
    if (only_address_restricted(r)) return EarlyDecision::deny;
  }
  // Only deny rules, or none, cover this address.
  return EarlyDecision::deny;
}

// ---- pg_hba.conf ----

namespace {

// One record after backslash continuation, with where each physical line's text begins in it.
struct Record {
  struct Segment {
    std::size_t offset;  // in text
    std::uint32_t line;
  };
  std::string text;
  std::vector<Segment> segments;
};

struct Token {
  std::string text;
  bool quoted = false;  // a double quote anywhere: never a keyword
  std::size_t offset = 0;
};

// A field is one token or a comma list of them.
struct Field {
  std::vector<Token> tokens;
};

// pg_isblank in hba.c.
bool blank(char c) noexcept {
  return c == ' ' || c == '\t' || c == '\r';
}

// PostgreSQL's next_token and next_field_expand (hba.c): blanks and unquoted commas end a word, a comma
// directly after a word continues the field's list, "" inside quotes is a quote, # outside quotes ends the
// record. end: just after the last word. Returns false with bad_quote set when a quote is left open.
bool tokenize(std::string_view s, std::vector<Field>& fields, std::size_t& end, std::size_t& bad_quote) {
  std::size_t i = 0;
  end = 0;
  Field field;
  bool comment = false;
  while (!comment) {
    while (i < s.size() && (blank(s[i]) || s[i] == ','))
      ++i;
    if (i == s.size() || s[i] == '#') break;
    Token t;
    t.offset = i;
    bool in_quote = false;
    bool was_quote = false;
    bool comma = false;
    for (; i < s.size() && (in_quote || !blank(s[i])); ++i) {
      const char c = s[i];
      comment = !in_quote && c == '#';
      comma = !in_quote && c == ',';
      if (comment || comma) break;
      if (c != '"' || was_quote) t.text.push_back(c);
      was_quote = in_quote && c == '"' ? !was_quote : false;
      if (c == '"') {
        in_quote = !in_quote;
        t.quoted = true;
      }
    }
    if (in_quote) {
      bad_quote = t.offset;
      return false;
    }
    end = i;
    field.tokens.push_back(std::move(t));
    if (!comma) {
      fields.push_back(std::move(field));
      field = Field{};
    }
  }
  if (!field.tokens.empty()) fields.push_back(std::move(field));
  return true;
}

class RecordParser {
 public:
  RecordParser(const Record& record, const std::string& file, HbaResult& out)
      : record_(record), file_(file), out_(out) {}

  void run() {
    std::vector<Field> fields;
    std::size_t bad_quote = 0;
    if (!tokenize(record_.text, fields, end_, bad_quote)) {
      error(bad_quote, "unterminated quoted field");
      return;
    }
    if (fields.empty()) return;
    const std::size_t errors_before = out_.diagnostics.size();
    AccessRule rule;
    if (!connection_type(fields[0], rule)) return;
    std::size_t next = 1;
    if (!names(fields, next++, "database", rule.databases)) return;
    if (!names(fields, next++, "user", rule.users)) return;
    if (!address(fields, next, rule)) return;
    if (!method(fields, next++, rule)) return;
    for (; next < fields.size(); ++next)
      options(fields[next], rule);
    if (rule.method == AuthMethod::cert) {
      // cert always checks the certificate fully; PostgreSQL (hba.c) refuses verify-ca with it too.
      if (rule.client_cert == ClientCert::verify_ca) {
        error(option_offset_,
              "clientcert=verify-ca cannot be used with cert authentication, which verifies fully");
      }
      rule.client_cert = ClientCert::verify_full;
    }
    if (out_.diagnostics.size() == errors_before) out_.rules.push_back(std::move(rule));
  }

 private:
  Position at(std::size_t offset) const {
    auto seg =
        std::prev(std::upper_bound(record_.segments.begin(), record_.segments.end(), offset,
                                   [](std::size_t o, const Record::Segment& s) { return o < s.offset; }));
    return Position{file_, seg->line, static_cast<std::uint32_t>(offset - seg->offset + 1)};
  }
  void error(std::size_t offset, std::string message) {
    out_.diagnostics.push_back({at(offset), std::move(message)});
  }
  // A field that must be there and hold one word.
  const Token* single(const std::vector<Field>& fields, std::size_t i, std::string_view name,
                      std::string_view hint = {}) {
    if (i >= fields.size()) {
      error(end_, "end of line before the " + std::string(name) + " field" + std::string(hint));
      return nullptr;
    }
    if (fields[i].tokens.size() > 1) {
      error(fields[i].tokens[1].offset, "the " + std::string(name) + " field takes one value, not a list");
      return nullptr;
    }
    return &fields[i].tokens[0];
  }

  bool connection_type(const Field& field, AccessRule& rule) {
    const Token& t = field.tokens[0];
    rule.where = at(t.offset);
    if (field.tokens.size() > 1) {
      error(field.tokens[1].offset, "the connection type field takes one value, not a list");
      return false;
    }
    if (t.text == "host") {
      rule.tls = AccessRule::Tls::any;
    } else if (t.text == "hostssl") {
      rule.tls = AccessRule::Tls::required;
    } else if (t.text == "hostnossl") {
      rule.tls = AccessRule::Tls::forbidden;
    } else if (t.text == "local") {
      error(t.offset,
            "local is not supported: pgwarden listens on TCP only (use host, hostssl or hostnossl)");
      return false;
    } else if (t.text == "hostgssenc" || t.text == "hostnogssenc") {
      error(t.offset, t.text + " is not supported: pgwarden does not offer GSSAPI encryption");
      return false;
    } else {
      error(t.offset, "invalid connection type \"" + t.text + "\": expected host, hostssl or hostnossl");
      return false;
    }
    ssl_only_ = rule.tls == AccessRule::Tls::required;
    return true;
  }

  // The database or user field: names and all; PostgreSQL's other keywords are refused where they stand.
  bool names(const std::vector<Field>& fields, std::size_t i, std::string_view what,
             std::vector<std::string>& out) {
    if (i >= fields.size()) {
      error(end_, "end of line before the " + std::string(what) + " field");
      return false;
    }
    const bool database = what == "database";
    for (const Token& t : fields[i].tokens) {
      const std::string& s = t.text;
      if (t.quoted) {
        if (s.empty()) {
          error(t.offset, "empty " + std::string(what) + " name");
        } else if (s == "all") {
          error(t.offset, "a " + std::string(what) +
                              " named \"all\" cannot be matched: pgwarden reads all as any " +
                              std::string(what));
        } else {
          out.push_back(s);
        }
        continue;
      }
      if (s == "all") {
        out.push_back(s);
      } else if (s.starts_with('@')) {
        error(t.offset, "@file inclusion is not supported: list the " + std::string(what) + " names");
      } else if (!database && s.starts_with('+')) {
        error(t.offset, "group membership (+group) is not supported: list the user names");
      } else if (database && (s == "sameuser" || s == "samerole" || s == "samegroup")) {
        error(t.offset, s + " is not supported: list the database names");
      } else if (database && s == "replication") {
        error(t.offset, "replication is not supported: pgwarden does not proxy replication connections");
      } else if (s.starts_with('/')) {
        // PostgreSQL 16 reads these as regular expressions; a literal match would silently never fire.
        error(t.offset,
              "a " + std::string(what) + " name starting with / (a regular expression) is not supported");
      } else {
        out.push_back(s);
      }
    }
    return true;
  }

  // The address field, and the netmask field after a bare address; advances i past what it used.
  bool address(const std::vector<Field>& fields, std::size_t& i, AccessRule& rule) {
    const Token* t = single(fields, i, "address");
    if (t == nullptr) return false;
    ++i;
    const std::string& s = t->text;
    if (!t->quoted && s == "all") return true;
    if (!t->quoted && (s == "samehost" || s == "samenet")) {
      error(t->offset, s + " is not supported: write the addresses as CIDR");
      return false;
    }
    if (s.find('/') != std::string::npos) {
      std::optional<Cidr> c = Cidr::parse(s);
      if (!c) {
        error(t->offset, "invalid CIDR address \"" + s + "\"");
        return false;
      }
      rule.addresses.push_back(*c);
      return true;
    }
    std::optional<IpAddress> ip = parse_ip(s);
    if (!ip) {
      error(
          t->offset,
          "host names are not supported: write an IP address with a /prefix or a netmask, not \"" + s + "\"");
      return false;
    }
    const Token* m = single(fields, i, "netmask", " (or write the address with a /prefix)");
    if (m == nullptr) return false;
    ++i;
    std::optional<IpAddress> mask = parse_ip(m->text);
    if (!mask) {
      error(m->offset, "invalid netmask \"" + m->text + "\": write " + s + "/" +
                           std::to_string(bits_of(ip->family)) + ", or an address followed by a netmask");
      return false;
    }
    std::optional<Cidr> c = Cidr::from_mask(*ip, *mask);
    if (!c) {
      error(m->offset, mask->family != ip->family ? "the address and the netmask are not of the same family"
                                                  : "the netmask \"" + m->text + "\" is not contiguous");
      return false;
    }
    rule.addresses.push_back(*c);
    return true;
  }

  bool method(const std::vector<Field>& fields, std::size_t i, AccessRule& rule) {
    const Token* t = single(fields, i, "authentication method");
    if (t == nullptr) return false;
    const std::string& s = t->text;
    if (s == "reject") {
      rule.action = AccessAction::deny;
      return true;
    }
    for (AuthMethod m : {AuthMethod::scram_sha_256, AuthMethod::md5, AuthMethod::password, AuthMethod::cert,
                         AuthMethod::trust}) {
      if (s == to_string(m)) rule.method = m;
    }
    if (rule.method == AuthMethod::cert && !ssl_only_) {
      error(t->offset, "cert authentication is only allowed on hostssl lines");
      return false;
    }
    if (rule.method) return true;
    for (std::string_view other : {"gss", "sspi", "ident", "peer", "ldap", "radius", "pam", "bsd"}) {
      if (s == other) {
        error(t->offset,
              "authentication method \"" + s +
                  "\" is not supported (pgwarden takes trust, reject, scram-sha-256, md5, password, cert)");
        return false;
      }
    }
    error(t->offset, "invalid authentication method \"" + s + "\"");
    return false;
  }

  void options(const Field& field, AccessRule& rule) {
    for (const Token& t : field.tokens) {
      const std::size_t eq = t.text.find('=');
      if (eq == std::string::npos) {
        error(t.offset, "authentication option \"" + t.text + "\" is not in name=value form");
        continue;
      }
      const std::string name = t.text.substr(0, eq);
      const std::string value = t.text.substr(eq + 1);
      if (name == "map") {
        // pg_ident.conf maps are not read: certificate names map to users through [auth.cert_map] only.
        error(t.offset, "map is not supported yet: map certificate names to users with [auth.cert_map]");
      } else if (name == "clientcert") {
        option_offset_ = t.offset;
        if (rule.client_cert != ClientCert::none) {
          error(t.offset, "clientcert is given twice");
        } else if (!ssl_only_) {
          error(t.offset, "clientcert can only be set on hostssl lines");
        } else if (value == "verify-ca") {
          rule.client_cert = ClientCert::verify_ca;
        } else if (value == "verify-full") {
          rule.client_cert = ClientCert::verify_full;
        } else {
          error(t.offset, "clientcert must be verify-ca or verify-full, not \"" + value + "\"");
        }
      } else {
        error(t.offset,
              "authentication option \"" + name + "\" is not supported (pgwarden takes clientcert)");
      }
    }
  }

  const Record& record_;
  const std::string& file_;
  HbaResult& out_;
  std::size_t end_ = 0;  // just after the record's last word, for "end of line before ..."
  bool ssl_only_ = false;
  std::size_t option_offset_ = 0;
};

}  // namespace

HbaResult parse_hba(std::string_view text, const std::filesystem::path& file_name) {
  HbaResult r;
  const std::string file = file_name.string();
  std::uint32_t line_no = 0;
  while (!text.empty()) {
    Record record;
    // "A backslash at the end of a line causes the next line to be appended" (PostgreSQL 15, hba.c): the
    // backslash and the newline go, nothing replaces them; it applies inside quotes and comments too.
    for (bool more = true; more && !text.empty();) {
      ++line_no;
      const std::size_t nl = text.find('\n');
      std::string_view line = text.substr(0, nl);
      text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      more = !line.empty() && line.back() == '\\';
      if (more) line.remove_suffix(1);
      record.segments.push_back({record.text.size(), line_no});
      record.text.append(line);
    }
    RecordParser(record, file, r).run();
  }
  return r;
}

}  // namespace pgw::config
