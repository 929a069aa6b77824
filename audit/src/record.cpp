// Audit records as one JSON line each: the fixed field order per event and byte-exact string escaping.
#include <charconv>
#include <chrono>
#include <cstring>
#include <string>

#include "body.hpp"
#include "pgw/audit/log.hpp"

namespace pgw::audit {

namespace {

// Every key a record may carry, in the order it is written (SPEC "Audit record"; ref, reason and dropped are
// pgwarden's additions for the events that need them). "prev" and "hash" always follow.
enum Field : std::uint8_t {
  f_ts,
  f_seq,
  f_event,
  f_ref,
  f_session,
  f_client_addr,
  f_client_port,
  f_user,
  f_database,
  f_application_name,
  f_tls,
  f_server,
  f_backend_pid,
  f_protocol,
  f_command,
  f_class,
  f_objects,
  f_statement,
  f_params,
  f_instance,
  f_in_transaction,
  f_outcome,
  f_tag,
  f_rows,
  f_sqlstate,
  f_duration_us,
  f_reason,
  f_dropped,
  f_count
};

constexpr std::array<std::string_view, f_count> field_names{"ts",
                                                            "seq",
                                                            "event",
                                                            "ref",
                                                            "session",
                                                            "client_addr",
                                                            "client_port",
                                                            "user",
                                                            "database",
                                                            "application_name",
                                                            "tls",
                                                            "server",
                                                            "backend_pid",
                                                            "protocol",
                                                            "command",
                                                            "class",
                                                            "objects",
                                                            "statement",
                                                            "params",
                                                            "instance",
                                                            "in_transaction",
                                                            "outcome",
                                                            "tag",
                                                            "rows",
                                                            "sqlstate",
                                                            "duration_us",
                                                            "reason",
                                                            "dropped"};

// `,"name":` for each field, so that a member's key is one append rather than three (a record has up to 28).
struct MemberKey {
  char text[24] = {};
  std::uint8_t size = 0;
};
constexpr std::array<MemberKey, f_count> member_keys = [] {
  std::array<MemberKey, f_count> keys{};
  for (std::size_t f = 0; f < f_count; ++f) {
    MemberKey& k = keys[f];
    if (field_names[f].size() + 4 > sizeof k.text)
      throw "field name too long";  // not a constant: fails to compile
    std::size_t n = 0;
    k.text[n++] = ',';
    k.text[n++] = '"';
    for (char c : field_names[f])
      k.text[n++] = c;
    k.text[n++] = '"';
    k.text[n++] = ':';
    k.size = static_cast<std::uint8_t>(n);
  }
  return keys;
}();

using Mask = std::uint32_t;
constexpr Mask bit(Field f) {
  return Mask{1} << f;
}
constexpr Mask head = bit(f_ts) | bit(f_seq) | bit(f_event);
constexpr Mask identity = bit(f_session) | bit(f_client_addr) | bit(f_client_port) | bit(f_user) |
                          bit(f_database) | bit(f_application_name) | bit(f_tls);
// session .. backend_pid: contiguous, and the same for every record of a session while it stays on one
// server.
constexpr Mask identity_run = identity | bit(f_server) | bit(f_backend_pid);
static_assert(f_backend_pid - f_session == 8 && f_client_addr == f_session + 1 && f_tls + 1 == f_server &&
              f_server + 1 == f_backend_pid);
constexpr Mask result = bit(f_outcome) | bit(f_tag) | bit(f_rows) | bit(f_sqlstate) | bit(f_duration_us);
constexpr Mask statement_fields = head | identity | bit(f_server) | bit(f_backend_pid) | bit(f_protocol) |
                                  bit(f_command) | bit(f_class) | bit(f_objects) | bit(f_statement) |
                                  bit(f_params) | bit(f_instance) | bit(f_in_transaction) | result;

Mask mask_of(Event e) {
  switch (e) {
    case Event::statement:
    case Event::transaction:
      return statement_fields;
    case Event::outcome:
      return head | bit(f_ref) | bit(f_session) | bit(f_instance) | result;
    case Event::connect:
      return head | identity | bit(f_instance);
    case Event::disconnect:
      return head | identity | bit(f_instance) | bit(f_duration_us) | bit(f_reason);
    case Event::auth_failed:
    case Event::refused:
      return head | identity | bit(f_instance) | bit(f_sqlstate) | bit(f_reason);
    case Event::records_dropped:
      return head | bit(f_instance) | bit(f_dropped);
    case Event::checkpoint:
      return head | bit(f_instance);
    case Event::admin:
      return head | identity | bit(f_command) | bit(f_statement) | bit(f_instance) | bit(f_outcome) |
             bit(f_sqlstate) | bit(f_reason);
  }
  return head;
}

constexpr char hex_digits[] = "0123456789abcdef";

void append_escaped_byte(std::string& out, unsigned char c) {
  out += "\\u00";
  out += hex_digits[c >> 4];
  out += hex_digits[c & 15];
}

// True when none of the 8 bytes at p needs escaping or a UTF-8 check: each is in 0x20..0x7E and is not '"' or
// '\\'. Word-at-a-time tests: "has a byte < n" is (x - n*ones) & ~x & high, exact as a yes/no for n <= 0x80.
bool plain_ascii8(const char* p) {
  constexpr std::uint64_t ones = 0x0101010101010101ULL;
  constexpr std::uint64_t high = 0x8080808080808080ULL;
  std::uint64_t x = 0;
  std::memcpy(&x, p, sizeof x);
  auto has_below = [](std::uint64_t v, std::uint64_t n) { return (v - n * ones) & ~v & high; };
  auto has_byte = [&](std::uint64_t v, std::uint64_t b) { return has_below(v ^ (b * ones), 1); };
  return ((x & high) | has_below(x, 0x20) | has_byte(x, '"') | has_byte(x, '\\') | has_byte(x, 0x7F)) == 0;
}

// Length of the well-formed UTF-8 sequence at s[i] (RFC 3629: no overlong forms, no surrogates, at most
// U+10FFFF), or 0.
std::size_t utf8_sequence(std::string_view s, std::size_t i) {
  auto at = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = at(i);
  const std::size_t left = s.size() - i;
  auto cont = [&](std::size_t k) { return (at(k) & 0xC0) == 0x80; };
  if (c >= 0xC2 && c <= 0xDF) return left >= 2 && cont(i + 1) ? 2 : 0;
  if (c >= 0xE0 && c <= 0xEF) {
    if (left < 3 || !cont(i + 1) || !cont(i + 2)) return 0;
    if (c == 0xE0 && at(i + 1) < 0xA0) return 0;   // overlong
    if (c == 0xED && at(i + 1) >= 0xA0) return 0;  // UTF-16 surrogate
    return 3;
  }
  if (c >= 0xF0 && c <= 0xF4) {
    if (left < 4 || !cont(i + 1) || !cont(i + 2) || !cont(i + 3)) return 0;
    if (c == 0xF0 && at(i + 1) < 0x90) return 0;   // overlong
    if (c == 0xF4 && at(i + 1) >= 0x90) return 0;  // above U+10FFFF
    return 4;
  }
  return 0;
}

class Writer {
 public:
  explicit Writer(std::string& out, bool first = true) : out_(out), first_(first) {}
  void key(Field f) {
    const MemberKey& k = member_keys[f];
    if (first_) {
      out_ += '{';
      out_.append(k.text + 1, k.size - 1u);
      first_ = false;
    } else {
      out_.append(k.text, k.size);
    }
  }
  void null() { out_ += "null"; }
  void str(std::string_view s) { append_json_string(out_, s); }
  void opt_str(const std::optional<std::string>& s) { s ? str(*s) : null(); }
  template <class T>
  void num(T v) {
    char buf[24];
    out_.append(buf, std::to_chars(buf, buf + sizeof buf, v).ptr);
  }
  template <class T>
  void opt_num(const std::optional<T>& v) {
    v ? num(*v) : null();
  }
  std::string& out() { return out_; }

 private:
  std::string& out_;
  bool first_;
};

// f_seq is left to the caller (see UnnumberedBody); `ts` and `instance` are given, not the record's.
void write_field(Writer& w, Field f, const Record& r, std::chrono::system_clock::time_point ts,
                 std::string_view instance) {
  std::string& out = w.out();
  switch (f) {
    case f_ts:
      out += '"';
      append_ts(out, ts);  // digits, '-', ':', '.', 'T', 'Z': nothing to escape
      out += '"';
      break;
    case f_seq:
      break;
    case f_event:
      w.str(to_string(r.event));
      break;
    case f_ref:
      w.opt_num(r.ref);
      break;
    case f_session:
      w.str(r.session);
      break;
    case f_client_addr:
      w.opt_str(r.client_addr);
      break;
    case f_client_port:
      w.opt_num(r.client_port);
      break;
    case f_user:
      w.opt_str(r.user);
      break;
    case f_database:
      w.opt_str(r.database);
      break;
    case f_application_name:
      w.opt_str(r.application_name);
      break;
    case f_tls:
      if (!r.tls) {
        w.null();
      } else {
        out += "{\"version\":";
        w.str(r.tls->version);
        out += ",\"cipher\":";
        w.str(r.tls->cipher);
        out += ",\"client_cert\":";
        w.opt_str(r.tls->client_cert);
        out += '}';
      }
      break;
    case f_server:
      w.opt_str(r.server);
      break;
    case f_backend_pid:
      w.opt_num(r.backend_pid);
      break;
    case f_protocol:
      w.opt_str(r.protocol);
      break;
    case f_command:
      w.opt_str(r.command);
      break;
    case f_class:
      w.opt_str(r.statement_class);
      break;
    case f_objects:
      out += '[';
      for (std::size_t i = 0; i < r.objects.size(); ++i) {
        if (i != 0) out += ',';
        w.str(r.objects[i]);
      }
      out += ']';
      break;
    case f_statement:
      w.opt_str(r.statement);
      break;
    case f_params:
      switch (r.params.kind) {
        case Params::Kind::none:
          w.null();
          break;
        case Params::Kind::redacted:
          out += "\"redacted\"";
          break;
        case Params::Kind::values:
          out += '[';
          for (std::size_t i = 0; i < r.params.values.size(); ++i) {
            if (i != 0) out += ',';
            w.opt_str(r.params.values[i]);
          }
          out += ']';
          break;
      }
      break;
    case f_instance:
      w.str(instance);
      break;
    case f_in_transaction:
      if (r.in_transaction) {
        out += *r.in_transaction ? "true" : "false";
      } else {
        w.null();
      }
      break;
    case f_outcome:
      w.opt_str(r.outcome);
      break;
    case f_tag:
      w.opt_str(r.tag);
      break;
    case f_rows:
      w.opt_num(r.rows);
      break;
    case f_sqlstate:
      w.opt_str(r.sqlstate);
      break;
    case f_duration_us:
      w.opt_num(r.duration_us);
      break;
    case f_reason:
      w.opt_str(r.reason);
      break;
    case f_dropped:
      w.num(r.dropped);
      break;
    case f_count:
      break;
  }
}

}  // namespace

std::string_view to_string(Event e) noexcept {
  switch (e) {
    case Event::statement:
      return "statement";
    case Event::connect:
      return "connect";
    case Event::disconnect:
      return "disconnect";
    case Event::auth_failed:
      return "auth_failed";
    case Event::refused:
      return "refused";
    case Event::transaction:
      return "transaction";
    case Event::outcome:
      return "outcome";
    case Event::records_dropped:
      return "records_dropped";
    case Event::checkpoint:
      return "checkpoint";
    case Event::admin:
      return "admin";
  }
  return "?";
}

std::optional<Event> event_from_string(std::string_view s) noexcept {
  for (Event e :
       {Event::statement, Event::connect, Event::disconnect, Event::auth_failed, Event::refused,
        Event::transaction, Event::outcome, Event::records_dropped, Event::checkpoint, Event::admin}) {
    if (to_string(e) == s) return e;
  }
  return std::nullopt;
}

std::vector<std::string_view> fields_of_event(Event e) {
  std::vector<std::string_view> out;
  const Mask m = mask_of(e);
  for (std::uint8_t f = 0; f < f_count; ++f) {
    if ((m & bit(static_cast<Field>(f))) != 0) out.push_back(field_names[f]);
  }
  return out;
}

void append_json_string(std::string& out, std::string_view s) {
  out += '"';
  for (std::size_t i = 0; i < s.size();) {
    // Runs of printable ASCII other than '"' and '\\' (nearly all SQL) are copied whole, found 8 bytes at a
    // time.
    std::size_t run = i;
    while (run + 8 <= s.size() && plain_ascii8(s.data() + run))
      run += 8;
    while (run < s.size()) {
      const auto b = static_cast<unsigned char>(s[run]);
      if (b < 0x20 || b >= 0x7F || b == '"' || b == '\\') break;
      ++run;
    }
    if (run > i) {
      out.append(s.data() + i, run - i);
      i = run;
      if (i == s.size()) break;
    }
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      switch (c) {
        case '"':
          out += "\\\"";
          break;
        case '\\':
          out += "\\\\";
          break;
        case '\b':
          out += "\\b";
          break;
        case '\f':
          out += "\\f";
          break;
        case '\n':
          out += "\\n";
          break;
        case '\r':
          out += "\\r";
          break;
        case '\t':
          out += "\\t";
          break;
        default:
          if (c < 0x20 || c == 0x7F) {
            append_escaped_byte(out, c);
          } else {
            out += static_cast<char>(c);
          }
      }
      ++i;
      continue;
    }
    if (std::size_t n = utf8_sequence(s, i); n != 0) {
      out.append(s.substr(i, n));
      i += n;
    } else {
      append_escaped_byte(out, c);  // a byte that is not UTF-8: \u0080-\u00ff name it exactly
      ++i;
    }
  }
  out += '"';
}

void append_ts(std::string& out, std::chrono::system_clock::time_point t) {
  // The standard library's calendar (floor, year_month_day, hh_mm_ss) rather than gmtime_r + strftime +
  // snprintf, into the record's line (no string of its own). The date and time up to the second change
  // once a second: each thread keeps the last one it wrote.
  using namespace std::chrono;
  const auto us = floor<microseconds>(t);
  const auto sec = floor<seconds>(us);
  struct Second {
    std::int64_t since_epoch = 0;
    std::uint8_t size = 0;  // 0: none yet
    char text[32] = {};
  };
  constinit thread_local Second last;
  auto digits = [](char* at, long long v, int n) {
    for (int k = n - 1; k >= 0; --k, v /= 10)
      at[k] = static_cast<char>('0' + v % 10);
    return at + n;
  };
  if (last.size == 0 || last.since_epoch != sec.time_since_epoch().count()) {
    const auto day = floor<days>(sec);
    const year_month_day ymd(day);
    const hh_mm_ss hms(sec - day);
    char* at = last.text;
    const int y = static_cast<int>(ymd.year());
    if (y >= 0 && y <= 9999) {
      at = digits(at, y, 4);
    } else {
      at = std::to_chars(at, last.text + 16, y).ptr;  // as strftime's %Y would: never a made-up date
    }
    *at++ = '-';
    at = digits(at, static_cast<unsigned>(ymd.month()), 2);
    *at++ = '-';
    at = digits(at, static_cast<unsigned>(ymd.day()), 2);
    *at++ = 'T';
    at = digits(at, hms.hours().count(), 2);
    *at++ = ':';
    at = digits(at, hms.minutes().count(), 2);
    *at++ = ':';
    at = digits(at, hms.seconds().count(), 2);
    *at++ = '.';
    last.size = static_cast<std::uint8_t>(at - last.text);
    last.since_epoch = sec.time_since_epoch().count();
  }
  char buf[40];
  std::memcpy(buf, last.text, last.size);
  char* at = digits(buf + last.size, (us - sec).count(), 6);
  *at++ = 'Z';
  out.append(buf, at);
}

std::string format_ts(std::chrono::system_clock::time_point t) {
  std::string out;
  append_ts(out, t);
  return out;
}

namespace detail {

UnnumberedBody unnumbered_body(const Record& r, std::chrono::system_clock::time_point ts,
                               std::string_view instance, std::size_t spare) {
  UnnumberedBody body;
  render_unnumbered(r, ts, instance, spare, body);
  return body;
}

void render_unnumbered(const Record& r, std::chrono::system_clock::time_point ts, std::string_view instance,
                       std::size_t spare, UnnumberedBody& body) {
  std::string& out = body.text;
  out.clear();
  body.seq_at = 0;
  // Keys, ts, numbers and punctuation take under 512 bytes; the strings are mostly written as they are.
  std::size_t size = 512 + spare + r.session.size() + instance.size() + r.identity_members.size();
  for (const auto* s :
       {&r.client_addr, &r.user, &r.database, &r.application_name, &r.server, &r.statement, &r.reason}) {
    if (*s) size += (*s)->size();
  }
  if (r.tls) size += r.tls->version.size() + r.tls->cipher.size() + r.tls->client_cert.value_or("").size();
  for (const auto& o : r.objects)
    size += o.size() + 3;
  out.reserve(size);
  Writer w(out);
  const Mask m = mask_of(r.event);
  const bool rendered = !r.identity_members.empty() && (m & identity_run) == identity_run;
  for (std::uint8_t f = 0; f < f_count; ++f) {
    if ((m & bit(static_cast<Field>(f))) == 0) continue;
    if (rendered && (identity_run & bit(static_cast<Field>(f))) != 0) {
      if (f == f_session) out += r.identity_members;
      continue;
    }
    w.key(static_cast<Field>(f));
    if (f == f_seq) body.seq_at = out.size();
    write_field(w, static_cast<Field>(f), r, ts, instance);
  }
}

std::string& number(UnnumberedBody& body, std::uint64_t seq) {
  char buf[24];
  const char* end = std::to_chars(buf, buf + sizeof buf, seq).ptr;
  body.text.insert(body.seq_at, buf, static_cast<std::size_t>(end - buf));
  return body.text;
}

}  // namespace detail

namespace {

void append_identity_range(std::string& out, const Record& r, Field first, Field last) {
  Writer w(out, false);
  for (auto f = static_cast<std::uint8_t>(first); f <= last; ++f) {
    w.key(static_cast<Field>(f));
    write_field(w, static_cast<Field>(f), r, {}, {});
  }
}

}  // namespace

std::string identity_members(const Record& r) {
  std::string out;
  append_identity_range(out, r, f_session, f_backend_pid);
  return out;
}

void append_client_identity_members(std::string& out, const Record& r) {
  append_identity_range(out, r, f_session, f_tls);
}

void append_server_identity_members(std::string& out, const std::optional<std::string>& server,
                                    std::optional<std::int32_t> backend_pid) {
  // As write_field() writes them, without a Record to hold them: this runs at every attach.
  Writer w(out, false);
  w.key(f_server);
  w.opt_str(server);
  w.key(f_backend_pid);
  w.opt_num(backend_pid);
}

std::string record_body(const Record& r) {
  detail::UnnumberedBody body = detail::unnumbered_body(r, r.ts, r.instance, 0);
  return std::move(detail::number(body, r.seq));
}

}  // namespace pgw::audit
