#include "session_audit.hpp"

#include "settings.hpp"

#include <boost/algorithm/string/predicate.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <cctype>
#include <charconv>

namespace pgw::proxy {

namespace {

using namespace protocol;
using config::AuditFsync;
using config::AuditOnFailure;
using config::AuditStatements;
using Clock = std::chrono::steady_clock;

// Named statements and portals remembered per session: beyond this an Execute is recorded as an unknown
// write.
constexpr std::size_t max_named_statements = 10000;
constexpr std::size_t max_named_portals = 256;
// PostgreSQL tells statement and portal names apart by their first NAMEDATALEN - 1 bytes: so do these maps,
// whose keys stay small that way.
constexpr std::size_t max_name_bytes = 63;
// Bind parameters logged (audit.parameters = "log") are cut here, per value and in all.
constexpr std::size_t max_parameter_bytes = 1024;
constexpr std::size_t max_parameters_bytes = std::size_t{64} * 1024;
// Statement text held per session for the outcome (batch / off): beyond it the record goes out at once as
// "pending" and the outcome follows, as with fsync = "every". And the text of named statements remembered.
constexpr std::size_t max_pending_bytes = std::size_t{16} << 20;
constexpr std::size_t max_named_bytes = std::size_t{64} << 20;
// Answers awaited: the ring keeps room for this many between transactions, more only while a pipeline needs
// it.
constexpr std::size_t pending_ring_kept = 64;
// The largest statement text whose storage a session keeps for its next record.
constexpr std::size_t kept_statement_capacity = 4096;
// Statements of one text whose classification scratch a session keeps for the next.
constexpr std::size_t kept_statements = 256;

// The number at the end of a command tag ("INSERT 0 5", "UPDATE 3", "COPY 7"), if any.
std::optional<std::int64_t> rows_of(std::string_view tag) {
  auto space = tag.rfind(' ');
  if (space == std::string_view::npos) return std::nullopt;
  std::string_view n = tag.substr(space + 1);
  std::int64_t v = 0;
  auto [end, ec] = std::from_chars(n.data(), n.data() + n.size(), v);
  if (ec != std::errc() || end != n.data() + n.size()) return std::nullopt;
  return v;
}

// ASCII case-insensitive search for a lower-case needle. Not boost::algorithm::icontains: that consults the
// global std::locale for every character, which showed in profiles of every Query.
bool contains_ci(std::string_view text, std::string_view lower_needle) {
  return std::search(text.begin(), text.end(), lower_needle.begin(), lower_needle.end(),
                     [](char a, char b) { return fold_case(a) == b; }) != text.end();
}

std::string_view class_text(audit::StatementClass c) {
  return c == audit::StatementClass::none ? std::string_view("read") : audit::class_name(c);
}

bool is_begin(std::string_view command) {
  return command == "BEGIN" || command == "START TRANSACTION";
}

bool ends_transaction(std::string_view command) {
  return command == "COMMIT" || command == "ROLLBACK" || command == "PREPARE TRANSACTION";
}

// ROLLBACK TO [SAVEPOINT] ends no transaction, though its tag is "ROLLBACK" too.
bool is_rollback_to(std::string_view text) {
  std::size_t at = 0;
  auto word = [&]() {
    while (at < text.size() && std::isspace(static_cast<unsigned char>(text[at])))
      ++at;
    std::size_t start = at;
    while (at < text.size() && std::isalpha(static_cast<unsigned char>(text[at])))
      ++at;
    return text.substr(start, at - start);
  };
  if (!boost::algorithm::iequals(word(), "rollback")) return false;
  std::string_view w = word();
  if (boost::algorithm::iequals(w, "work") || boost::algorithm::iequals(w, "transaction")) w = word();
  return boost::algorithm::iequals(w, "to");
}

// Client encodings whose characters never hold a backslash or quote byte inside a multibyte sequence (ASCII
// bytes are always themselves), so that the classifier reads strings as the server does. Any other (SJIS,
// SHIFT_JIS_2004, BIG5, GBK, UHC, GB18030, JOHAB, and whatever a later PostgreSQL adds) is unsafe.
bool unsafe_client_encoding(std::string_view e) {
  static constexpr std::string_view safe[] = {
      "UTF8",    "SQL_ASCII", "EUC_JP",  "EUC_CN",     "EUC_KR",     "EUC_JIS_2004", "MULE_INTERNAL",
      "LATIN1",  "LATIN2",    "LATIN3",  "LATIN4",     "LATIN5",     "LATIN6",       "LATIN7",
      "LATIN8",  "LATIN9",    "LATIN10", "ISO_8859_5", "ISO_8859_6", "ISO_8859_7",   "ISO_8859_8",
      "WIN866",  "WIN874",    "WIN1250", "WIN1251",    "WIN1252",    "WIN1253",      "WIN1254",
      "WIN1255", "WIN1256",   "WIN1257", "WIN1258",    "KOI8R",      "KOI8U"};
  for (std::string_view ok : safe) {
    if (boost::algorithm::iequals(e, ok)) return false;
  }
  return true;
}

std::int32_t read_i32(const std::uint8_t* p) {
  return static_cast<std::int32_t>((std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) |
                                   (std::uint32_t{p[2]} << 8) | std::uint32_t{p[3]});
}

std::int16_t read_i16(const std::uint8_t* p) {
  return static_cast<std::int16_t>((p[0] << 8) | p[1]);
}

void append_hex(std::string& out, Bytes bytes) {
  static constexpr char digits[] = "0123456789abcdef";
  out += "\\x";
  for (auto b : bytes) {
    out += digits[b >> 4];
    out += digits[b & 15];
  }
}

// Bind parameter values as the audit record shows them: text as is, binary as \x hex, both cut when long.
audit::Params logged_parameters(const frontend::Bind& b) {
  audit::Params p;
  p.kind = audit::Params::Kind::values;
  std::size_t total = 0;
  std::size_t at = 0;
  for (std::int16_t i = 0; i < b.num_parameters; ++i) {
    if (at + 4 > b.parameters.size()) break;
    std::int32_t len = read_i32(b.parameters.data() + at);
    at += 4;
    if (len < 0) {
      p.values.emplace_back(std::nullopt);
      continue;
    }
    auto n = static_cast<std::size_t>(len);
    if (at + n > b.parameters.size()) break;
    Bytes value = b.parameters.subspan(at, n);
    at += n;
    std::int16_t format = 0;
    if (b.num_parameter_formats == 1) {
      format = read_i16(b.parameter_formats.data());
    } else if (b.num_parameter_formats > i) {
      format = read_i16(b.parameter_formats.data() + 2 * static_cast<std::size_t>(i));
    }
    std::string text;
    const std::size_t room = std::min(max_parameter_bytes, max_parameters_bytes - total);
    std::size_t keep = std::min(value.size(), room);
    if (format == 0) {
      text.assign(reinterpret_cast<const char*>(value.data()), keep);
    } else {
      keep = std::min(value.size(), room / 2);  // two hex digits per byte
      append_hex(text, value.first(keep));
    }
    if (keep < value.size()) text += "...";
    total += keep;
    p.values.emplace_back(std::move(text));
  }
  return p;
}

}  // namespace

struct SessionAudit::Durability {
  explicit Durability(const asio::any_io_executor& ex) : timer(ex) {
    timer.expires_at(asio::steady_timer::time_point::max());
  }
  asio::steady_timer timer;  // never expires: a durable callback cancels the waits on it
  std::uint64_t appended = 0;
  std::uint64_t done = 0;
  bool failed = false;
};

SessionAudit::SessionAudit(audit::AuditLog& log, audit::Classifier& classifier,
                           const config::AuditSettings& settings, asio::any_io_executor executor,
                           bool sql_prepared_per_session)
    : log_(log),
      classifier_(classifier),
      settings_(settings),
      executor_(std::move(executor)),
      durability_(std::make_shared<Durability>(executor_)),
      sql_prepared_per_session_(sql_prepared_per_session) {}

SessionAudit::~SessionAudit() = default;

void SessionAudit::set_server(std::string_view server, std::int32_t backend_pid) {
  // Every attach calls this; a client back on the connection it had keeps its rendered identity.
  if (server_ == server && backend_pid_ == backend_pid) return;
  if (server_) {
    server_->assign(server);  // per attach: reuses the storage
  } else {
    server_.emplace(server);
  }
  backend_pid_ = backend_pid;
  identity_stale_ = true;
}

audit::Record SessionAudit::base(audit::Event event) const {
  audit::Record r;
  r.event = event;
  r.session = identity_.session;
  r.client_addr = identity_.client_addr;
  r.client_port = identity_.client_port;
  r.user = identity_.user;
  r.database = identity_.database;
  r.application_name = application_name_;
  r.tls = identity_.tls;
  r.server = server_;
  r.backend_pid = backend_pid_;
  return r;
}

const std::shared_ptr<std::string>& SessionAudit::identity_text() {
  if (client_identity_.empty()) {
    audit::append_client_identity_members(client_identity_, base({}));
    identity_stale_ = true;
  }
  if (identity_stale_) {  // true from the start: the first call allocates below
    if (!identity_text_ || identity_text_.use_count() > 1) identity_text_ = std::make_shared<std::string>();
    identity_text_->assign(client_identity_);
    audit::append_server_identity_members(*identity_text_, server_, backend_pid_);
    identity_stale_ = false;
  }
  return identity_text_;
}

bool SessionAudit::append(const audit::Record& record, bool wait, std::uint64_t* seq) {
  auto& d = *durability_;
  const bool durable_wait = wait && settings_.fsync == AuditFsync::every;
  audit::OnDurable on_durable;
  if (durable_wait) {
    ++d.appended;
    // Runs on the writer thread: hand the news to this session's thread, if the session is still there.
    const bool block = settings_.on_failure == AuditOnFailure::block;
    on_durable = [weak = std::weak_ptr<Durability>(durability_), ex = executor_, block](bool ok) {
      asio::post(ex, [weak, ok, block] {
        if (auto state = weak.lock()) {
          ++state->done;
          if (!ok && block) state->failed = true;  // "drop": the log counts and alarms; the session goes on
          state->timer.cancel();
        }
      });
    };
  }
  audit::Appended r = log_.append(record, std::move(on_durable));
  if (r.ok()) {
    if (seq != nullptr) *seq = r.seq;
    return true;
  }
  if (durable_wait) --d.appended;                   // not queued: no callback will come
  return r.status == audit::AppendStatus::dropped;  // counted and alarmed by the log; the session goes on
}

bool SessionAudit::must_wait() const noexcept {
  // Asked before every write to the client: only fsync = "every" counts appends, and the counters live
  // out of line.
  return settings_.fsync == AuditFsync::every && durability_->done < durability_->appended;
}

asio::awaitable<bool> SessionAudit::durable() {
  auto d = durability_;
  const std::uint64_t target = d->appended;
  while (d->done < target && !d->failed) {
    co_await d->timer.async_wait(asio::as_tuple(asio::use_awaitable));
    auto cs = co_await asio::this_coro::cancellation_state;
    if (cs.cancelled() != asio::cancellation_type::none) co_return false;
  }
  if (d->failed) broken_ = true;
  co_return !d->failed;
}

void SessionAudit::connected() {
  connected_at_ = Clock::now();
  connect_recorded_ = true;
  if (!append(base(audit::Event::connect), false)) broken_ = true;
}

void SessionAudit::login_refused(std::string_view sqlstate, std::string_view reason, bool auth_failure) {
  audit::Record r = base(auth_failure ? audit::Event::auth_failed : audit::Event::refused);
  r.sqlstate = std::string(sqlstate);
  r.reason = std::string(reason);
  append(r, false);  // the client is refused anyway; the log counts what it cannot take
}

void SessionAudit::admin_command(std::string_view command, std::string_view text, std::string_view sqlstate,
                                 std::string_view reason) {
  audit::Record r = base(audit::Event::admin);
  r.command = std::string(command);
  r.statement = std::string(text);
  r.outcome = sqlstate.empty() ? "ok" : "error";
  if (!sqlstate.empty()) r.sqlstate = std::string(sqlstate);
  if (!reason.empty()) r.reason = std::string(reason);
  append(r, false);
}

void SessionAudit::disconnected(std::string_view reason) {
  if (!connect_recorded_) return;
  audit::Record r = base(audit::Event::disconnect);
  r.reason = std::string(reason);
  r.duration_us = std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - connected_at_).count();
  append(r, false);
}

bool SessionAudit::audited(const audit::Statement& s) const noexcept {
  if (lexing_unsafe_) return true;  // the server may see other statements in this text than the classifier
  if (s.cls == audit::StatementClass::routine) return settings_.routines;
  switch (settings_.statements) {
    case AuditStatements::none:
      return false;
    case AuditStatements::ddl:
      return s.cls == audit::StatementClass::ddl;
    case AuditStatements::mod:
      return s.cls == audit::StatementClass::ddl || s.cls == audit::StatementClass::mod;
    case AuditStatements::all:
      return true;
  }
  return true;
}

void SessionAudit::on_parameter(std::string_view name, std::string_view value) {
  if (name == "standard_conforming_strings") {
    strings_unsafe_ = value != "on";
  } else if (name == "client_encoding") {
    encoding_unsafe_ = unsafe_client_encoding(value);
  } else {
    return;
  }
  lexing_unsafe_ = strings_unsafe_ || encoding_unsafe_;
}

const audit::SqlPrepared* SessionAudit::sql_prepared_for(
    const std::vector<audit::Statement>& statements) const {
  // An EXECUTE is resolved only against PREPAREs the server has completed, with none in flight (not even in
  // the same text): otherwise it counts as a possible write.
  if (!sql_prepared_per_session_ || prepare_effects_in_flight_ > 0) return nullptr;
  for (const auto& s : statements) {
    if (s.effect != audit::PreparedEffect::none) return nullptr;
  }
  return &sql_prepared_;
}

void SessionAudit::classify(std::string_view sql) {
  // A request still awaiting its answer may have changed how the server reads strings in a way no text check
  // sees (an extended-protocol SET, a setting name built at run time): its ParameterStatus comes later. Only
  // a backslash byte reads differently, so such a text counts as unsafe to lex until the next ReadyForQuery.
  if (!lexing_unsafe_ && !pending_.empty() && sql.find('\\') != std::string_view::npos) lexing_unsafe_ = true;
  const audit::SqlPrepared* tentative = sql_prepared_per_session_ ? &sql_prepared_ : nullptr;
  classifier_.classify(sql, tentative, statements_);
  // Only an EXECUTE depends on the PREPAREs: classify again only when there is one and its resolution
  // changes.
  const audit::SqlPrepared* resolved = sql_prepared_for(statements_);
  if (resolved == tentative) return;
  for (const auto& s : statements_) {
    if (s.effect == audit::PreparedEffect::execute) {
      classifier_.classify(sql, resolved, statements_);
      return;
    }
  }
}

void SessionAudit::push_unaudited(std::uint32_t n, bool extended) {
  if (!pending_.empty()) {
    Pending& last = pending_.back();
    if (last.kind == Kind::statements && !last.audited() && !last.effect && last.control == Control::none &&
        last.extended == extended) {
      last.unaudited += n;
      return;
    }
  }
  Pending p;
  p.kind = Kind::statements;
  p.unaudited = n;
  p.extended = extended;
  enqueue(std::move(p));
}

void SessionAudit::enqueue(Pending&& p) {
  if (pending_.full()) pending_.set_capacity(std::max<std::size_t>(8, pending_.capacity() * 2));
  pending_.push_back(std::move(p));
}

void SessionAudit::push_end(Kind kind) {
  bound_since_end_ = false;
  Pending p;
  p.kind = kind;
  enqueue(std::move(p));
}

bool SessionAudit::in_transaction_for(const audit::Statement& s, std::string_view text) {
  // The client's view, ahead of the server's answers (pipelines): an open BEGIN, or an earlier statement of
  // the same implicit transaction (one Query, or the Executes before one Sync).
  const bool in_tx = frontend_in_block_ || statements_in_unit_ > 0;
  ++statements_in_unit_;
  if (is_begin(s.command)) frontend_in_block_ = true;
  if (ends_transaction(s.command) && !is_rollback_to(text)) frontend_in_block_ = false;
  return in_tx;
}

bool SessionAudit::push_statement(std::string_view text, const audit::Statement& s, bool in_transaction,
                                  bool extended, audit::Params params) {
  Pending p;
  p.kind = Kind::statements;
  p.extended = extended;
  if (s.effect != audit::PreparedEffect::none) {
    p.effect = std::make_unique<audit::Statement>(s);
    ++prepare_effects_in_flight_;
  }
  if (ends_transaction(s.command) && !is_rollback_to(text)) {
    p.control = s.command == "COMMIT"     ? Control::commit
                : s.command == "ROLLBACK" ? Control::rollback
                                          : Control::prepare_transaction;
  }
  if (!audited(s)) {
    if (!p.effect && p.control == Control::none) {
      push_unaudited(1, extended);
      return true;
    }
    p.unaudited = 1;
    enqueue(std::move(p));
    return true;
  }
  std::unique_ptr<audit::Record> r = take_record();
  p.identity = identity_text();
  r->identity_members = *p.identity;
  r->protocol = extended ? "extended" : "simple";
  r->command = s.command;
  r->statement_class = class_text(s.cls);
  r->objects = s.objects;
  if (settings_.literals == config::AuditLiterals::redact) {
    r->statement = audit::redact_literals(text);
  } else {
    if (!r->statement) r->statement.emplace();
    r->statement->assign(text);
  }
  r->params = std::move(params);
  r->in_transaction = in_transaction;
  const std::size_t bytes = r->statement->size();
  const bool every = settings_.fsync == AuditFsync::every;
  if (every || pending_bytes_ + bytes > max_pending_bytes) {
    // Recorded before it runs ("pending"), the outcome follows as its own record: with fsync = "every" that
    // is the guarantee, otherwise it keeps what a session holds bounded.
    r->outcome = "pending";
    const bool queued = append(*r, every, &p.pending_seq);
    r->outcome.reset();
    if (!queued) {
      if (p.effect) --prepare_effects_in_flight_;
      return false;
    }
    if (p.pending_seq != 0) {
      // Written: the outcome record is built afresh when the answer comes, so what waits for it is the queue
      // entry alone (a Query of a hundred thousand INSERTs holds no record per statement meanwhile).
      keep_record(std::move(r));
      p.identity.reset();
      p.started = Clock::now();
      enqueue(std::move(p));
      return true;
    }
    // Dropped ("drop"): the full record goes out with the outcome.
  } else if (settings_.on_failure == AuditOnFailure::block && log_.failing()) {
    if (p.effect) --prepare_effects_in_flight_;
    return false;
  } else {
    p.bytes = bytes;
    pending_bytes_ += bytes;
  }
  p.record = std::move(r);
  p.started = Clock::now();
  enqueue(std::move(p));
  return true;
}

bool SessionAudit::on_query(std::string_view sql, bool /*in_transaction*/) {
  // A statement that may change how the server reads strings (SET standard_conforming_strings, SET NAMES,
  // set_config('client_encoding', ...)): everything counts until the next ReadyForQuery brings its values.
  if (mentions_string_settings(sql)) lexing_unsafe_ = true;
  classify(sql);
  for (const auto& s : statements_) {
    if (s.command == "SET" && contains_ci(s.text(sql), "names")) lexing_unsafe_ = true;
  }
  statements_in_unit_ = 0;  // a Query is a unit of its own, as if a Sync came before it
  const std::size_t before = pending_.size();
  bool ok = true;
  if (settings_.on_failure == AuditOnFailure::block && log_.failing()) {
    for (const auto& s : statements_) {
      if (audited(s)) ok = false;
    }
  }
  for (std::size_t i = 0; i < statements_.size() && ok; ++i) {
    const auto& s = statements_[i];
    std::string_view text = s.text(sql);
    if (reads_bound_portal(s)) {
      ok = push_fetch(text, s, false);
      continue;
    }
    ok = push_statement(text, s, in_transaction_for(s, text), false, {});
  }
  if (!ok) {
    // Refused before anything went out: the server gets pgwarden's failing statement and answers one error.
    // Records already written as "pending" say so.
    while (pending_.size() > before) {
      Pending& p = pending_.back();
      if (p.pending_seq != 0) {
        audit::Record r = base(audit::Event::outcome);
        r.ref = p.pending_seq;
        r.outcome = "refused";
        r.sqlstate = "58030";
        append(r, false);
      }
      if (p.effect) --prepare_effects_in_flight_;
      pending_bytes_ -= p.bytes;
      pending_.pop_back();
    }
    push_unaudited(1, false);
  } else if (statements_.empty()) {
    push_unaudited(1, false);  // EmptyQueryResponse
  }
  push_end(Kind::query_end);
  statements_in_unit_ = 0;
  // A Query of thousands of statements leaves no scratch of that size behind in an idle session.
  if (statements_.capacity() > kept_statements) std::vector<audit::Statement>().swap(statements_);
  return ok;
}

bool SessionAudit::push_fetch(std::string_view text, const audit::Statement& fetch, bool extended) {
  // A portal bound by the extended protocol may be read with SQL FETCH or MOVE, and a modifying one runs its
  // write at the first of them: recorded as that portal's statement, or as a possible write when pgwarden
  // cannot tell which portal it is. The name is the one PostgreSQL's grammar read (folded, unescaped).
  const std::string& name = fetch.prepared_name;
  auto it = name.empty() ? named_portals_.end()
                         : named_portals_.find(std::string_view(name).substr(0, max_name_bytes));
  if (it == named_portals_.end() && !portals_overflowed_ && !name.empty()) {
    // An SQL cursor (DECLARE): read-only, as PostgreSQL allows no write in one.
    return push_statement(text, fetch, in_transaction_for(fetch, text), extended, {});
  }
  if (it != named_portals_.end() && it->second.known) {
    Portal& portal = it->second;
    if (portal.ran) return push_statement(text, fetch, in_transaction_for(fetch, text), extended, {});
    std::vector<audit::Statement> portal_statements;
    classifier_.classify(portal.text(), nullptr, portal_statements);
    if (portal_statements.empty()) {
      push_unaudited(1, extended);
      return true;
    }
    const audit::Statement& s = portal_statements.front();
    const std::string_view portal_text = s.text(portal.text());
    if (settings_.on_failure == AuditOnFailure::block && audited(s) && log_.failing()) return false;
    if (!push_statement(portal_text, s, in_transaction_for(s, portal_text), extended, portal.params))
      return false;
    portal.ran = true;
    // The FETCH's tag counts the rows fetched, not the rows written.
    if (!pending_.empty() && pending_.back().audited()) pending_.back().rows_from_tag = false;
    return true;
  }
  return push_possible_write(text, extended);
}

bool SessionAudit::push_possible_write(std::string_view text, bool extended) {
  audit::Statement s;
  s.cls = audit::StatementClass::mod;
  s.command = "UNKNOWN";
  s.superset = audit::Superset::unknown_execute;
  if (settings_.on_failure == AuditOnFailure::block && log_.failing()) return false;
  return push_statement(text, s, in_transaction_for(s, text), extended, {});
}

void SessionAudit::on_parse(std::string_view statement, std::string_view sql) {
  if (statement.empty()) {
    unnamed_statement_.assign(sql);
    unnamed_known_ = true;
    return;
  }
  statement = statement.substr(0, max_name_bytes);
  auto it = named_statements_.find(statement);
  if (it != named_statements_.end()) {
    // The server refuses a second Parse of a name (42P05) and keeps the first: which one runs is not known
    // here.
    it->second.known = false;  // its text stays charged until the Close, as portals may share it
    return;
  }
  if (named_statements_.size() >= max_named_statements) return;  // Bind finds nothing: an unknown write
  Named n;
  if (named_bytes_ + sql.size() <= max_named_bytes) {
    named_bytes_ += sql.size();
    n.sql = std::shared_ptr<const std::string>(
        new std::string(sql), [bytes = &named_bytes_, size = sql.size()](const std::string* text) {
          *bytes -= size;
          delete text;
        });
  }
  named_statements_.emplace(std::string(statement), std::move(n));
}

void SessionAudit::on_bind(const frontend::Bind& b) {
  Portal* portal = &unnamed_portal_;
  if (!b.portal.empty()) {
    const std::string_view name = b.portal.substr(0, max_name_bytes);
    auto it = named_portals_.find(name);
    if (it != named_portals_.end()) {
      it->second = Portal{};  // a second Bind of an open portal fails (42P03): its Execute is not known here
      return;
    }
    bound_since_end_ = true;
    if (named_portals_.size() >= max_named_portals) {
      portals_overflowed_ = true;
      return;  // Execute finds no portal: an unknown write
    }
    portal = &named_portals_.emplace(std::string(name), Portal{}).first->second;
  }
  portal->known = false;
  portal->ran = false;
  portal->sql.clear();
  portal->named_sql.reset();
  if (b.statement.empty()) {
    if (unnamed_known_) {
      portal->sql.assign(unnamed_statement_);
      portal->known = true;
    }
  } else if (auto it = named_statements_.find(b.statement.substr(0, max_name_bytes));
             it != named_statements_.end() && it->second.known && it->second.sql) {
    portal->named_sql = it->second.sql;
    portal->known = true;
  }
  if (settings_.parameters == config::AuditParameters::log) {
    portal->params = logged_parameters(b);
  } else {
    portal->params = {};
    if (b.num_parameters > 0) portal->params.kind = audit::Params::Kind::redacted;
  }
}

bool SessionAudit::on_execute(std::string_view portal_name, bool /*in_transaction*/) {
  Portal* portal = nullptr;
  if (portal_name.empty()) {
    portal = &unnamed_portal_;
  } else if (auto it = named_portals_.find(portal_name.substr(0, max_name_bytes));
             it != named_portals_.end()) {
    portal = &it->second;
  }
  if (portal == nullptr || !portal->known) {
    // A portal or statement pgwarden did not see, or cannot be sure of.
    return push_possible_write("-- pgwarden: Execute of portal \"" + std::string(portal_name) +
                                   "\" whose statement text pgwarden cannot tell",
                               true);
  }
  if (portal->ran) {
    // Recorded at its first Execute or FETCH, where PostgreSQL ran it to completion: the rest only hands out
    // rows.
    push_unaudited(1, true);
    return true;
  }
  classify(portal->text());
  if (statements_.empty()) {
    push_unaudited(1, true);
    return true;
  }
  const auto& s = statements_.front();
  std::string_view text = s.text(portal->text());
  if (reads_bound_portal(s)) return push_fetch(text, s, true);
  const bool in_tx = in_transaction_for(s, text);
  if (settings_.on_failure == AuditOnFailure::block && audited(s) && log_.failing()) return false;
  if (!push_statement(text, s, in_tx, true, portal->params)) return false;
  if (audited(s)) portal->ran = true;
  return true;
}

void SessionAudit::on_close(char target, std::string_view name) {
  if (target == 'S') {
    if (name.empty()) {
      unnamed_statement_.clear();
      unnamed_known_ = false;
    } else if (auto it = named_statements_.find(name.substr(0, max_name_bytes));
               it != named_statements_.end()) {
      named_statements_.erase(it);  // its portals keep the text (and its charge): see Named
    }
  } else if (name.empty()) {
    unnamed_portal_ = {};
  } else {
    if (auto it = named_portals_.find(name.substr(0, max_name_bytes)); it != named_portals_.end())
      named_portals_.erase(it);
  }
}

void SessionAudit::on_function_call(Bytes body) {
  // A fast-path call runs any function by OID (lo_write, lo_unlink, ...): a possible write, recorded as such.
  audit::Statement s;
  s.cls = audit::StatementClass::mod;
  s.command = "FUNCTION CALL";
  std::int32_t oid = body.size() >= 4 ? read_i32(body.data()) : 0;
  std::string text = "-- pgwarden: fast-path FunctionCall of function oid " + std::to_string(oid);
  statements_in_unit_ = 0;
  if (!push_statement(text, s, in_transaction_for(s, text), false, {})) push_unaudited(1, false);
  push_end(Kind::query_end);
  statements_in_unit_ = 0;
}

void SessionAudit::on_sync() {
  statements_in_unit_ = 0;
  push_end(Kind::sync);
}

void SessionAudit::on_copy_message() {
  if (!pending_.empty() && pending_.back().kind == Kind::copy) return;
  push_end(Kind::copy);
}

void SessionAudit::detached() {
  unnamed_statement_.clear();
  unnamed_known_ = false;
  unnamed_portal_ = {};
  named_portals_.clear();
  portals_overflowed_ = false;
  // Without pgwarden's own names the client's statements live on the connection it leaves, where another
  // client may have prepared the same name with other SQL.
  if (!named_per_session_) forget_named_statements();
}

void SessionAudit::forget_named_statements() {
  for (auto& [name, named] : named_statements_)
    named.known = false;
}

void SessionAudit::complete(Pending& p, std::string_view outcome, std::string_view tag,
                            std::string_view sqlstate) {
  if (p.effect) {
    if (outcome == "ok") {
      sql_prepared_.on_complete(*p.effect);
      // SQL DEALLOCATE shares its names with the protocol's statements: what a name means is no longer known
      // (a later PREPARE pgwarden cannot see, in a DO block, may take it).
      if (p.effect->effect == audit::PreparedEffect::deallocate_all) {
        forget_named_statements();
      } else if (p.effect->effect == audit::PreparedEffect::deallocate) {
        if (auto it =
                named_statements_.find(std::string_view(p.effect->prepared_name).substr(0, max_name_bytes));
            it != named_statements_.end())
          it->second.known = false;
      }
    }
    --prepare_effects_in_flight_;
    p.effect.reset();
  }
  if (!p.audited()) return;
  pending_bytes_ -= p.bytes;
  p.bytes = 0;
  auto duration = std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - p.started).count();
  if (p.pending_seq != 0) {
    if (!p.record) p.record = take_record();
    *p.record = base(audit::Event::outcome);
    p.record->ref = p.pending_seq;
  }
  audit::Record& r = *p.record;
  r.outcome = std::string(outcome);
  if (!tag.empty()) {
    r.tag = std::string(tag);
    if (p.rows_from_tag) r.rows = rows_of(tag);
  }
  if (!sqlstate.empty()) r.sqlstate = std::string(sqlstate);
  r.duration_us = duration;
  const bool ok = append(r, true);
  keep_record(std::move(p.record));
  p.identity.reset();
  if (!ok) broken_ = true;
}

std::unique_ptr<audit::Record> SessionAudit::take_record() {
  if (!spare_record_) return std::make_unique<audit::Record>();
  return std::move(spare_record_);
}

void SessionAudit::keep_record(std::unique_ptr<audit::Record> r) {
  // Every member back to its default except the statement text and the objects, which push_statement()
  // always assigns: assigned over, their strings keep their storage. Not the storage of a large statement:
  // an idle session would hold it.
  std::optional<std::string> statement = std::move(r->statement);
  if (statement && statement->capacity() > kept_statement_capacity) statement.reset();
  std::vector<std::string> objects = std::move(r->objects);
  *r = audit::Record{};
  r->statement = std::move(statement);
  r->objects = std::move(objects);
  spare_record_ = std::move(r);
}

void SessionAudit::pop_front() {
  Pending& p = pending_.front();
  if (p.effect) --prepare_effects_in_flight_;
  pending_bytes_ -= p.bytes;
  pending_.pop_front();
  if (pending_.empty() && pending_.capacity() > pending_ring_kept) pending_.set_capacity(pending_ring_kept);
}

void SessionAudit::statement_completed(const Pending& p, bool ok) {
  ++results_in_transaction_;
  if (p.extended) extended_in_transaction_ = true;
  if (p.audited() && ok) transaction_audited_ = true;
}

void SessionAudit::transaction_ended(std::string_view command, std::string_view outcome) {
  transaction_audited_ = false;
  audit::Record r;
  r.event = audit::Event::transaction;
  r.identity_members = *identity_text();
  if (!command.empty()) {
    r.command = std::string(command);
    r.tag = std::string(command);
  }
  r.outcome = std::string(outcome);
  r.in_transaction = false;
  if (!append(r, true)) broken_ = true;
}

void SessionAudit::skip_to_sync(bool extended) {
  // After an error the server skips the rest of a Query; in the extended protocol everything up to Sync,
  // Queries and FunctionCalls included.
  while (!pending_.empty()) {
    Pending& p = pending_.front();
    if (p.kind == Kind::sync) break;
    if (p.kind == Kind::query_end && !extended) break;
    if (p.audited()) complete(p, "skipped", {}, {});
    pop_front();
  }
}

void SessionAudit::on_backend(char type, Bytes body) {
  switch (type) {
    case backend::command_complete:
    case backend::empty_query_response:
    case backend::portal_suspended:
    case backend::function_call_response: {
      std::string_view tag;
      if (type == backend::command_complete) {
        backend::CommandComplete cc;
        if (decode(body, cc) == Error::none) tag = cc.tag;
        if (tag == "DISCARD ALL") forget_named_statements();  // it deallocates every statement
      }
      Control control = Control::none;
      if (!pending_.empty() && pending_.front().kind == Kind::statements) {
        Pending& p = pending_.front();
        statement_completed(p, true);
        control = p.control;
        if (p.audited()) {
          // A modifying portal runs to completion at its first Execute (PostgreSQL keeps the RETURNING rows
          // for the next ones): PortalSuspended means the write is done.
          complete(p, "ok", tag, {});
          pop_front();
        } else {
          if (p.effect) complete(p, "ok", tag, {});
          if (p.unaudited <= 1) {
            pop_front();
          } else {
            --p.unaudited;
          }
        }
      }
      if (control != Control::none) {
        // COMMIT of a failed transaction answers "ROLLBACK": the tag says what happened.
        if (transaction_audited_) transaction_ended(tag, "ok");
        transaction_audited_ = false;
        results_in_transaction_ = 0;
        extended_in_transaction_ = false;
      }
      break;
    }
    case backend::copy_in_response: {
      // In copy-in the server ignores a Sync sent after the COPY's Execute and before the copy data.
      for (std::size_t i = 1; i < pending_.size();) {
        Kind k = pending_[i].kind;
        if (k == Kind::copy) {
          pending_.erase(pending_.begin() + static_cast<std::ptrdiff_t>(i));
          break;
        }
        if (k == Kind::sync) {
          pending_.erase(pending_.begin() + static_cast<std::ptrdiff_t>(i));
          continue;
        }
        ++i;
      }
      break;
    }
    case backend::error_response: {
      backend::ErrorFields f;
      decode(body, f);
      error_since_ready_ = true;
      bool extended = !pending_.empty() && pending_.front().kind == Kind::sync;
      while (!pending_.empty() && pending_.front().kind == Kind::copy)
        pop_front();
      if (!pending_.empty() && pending_.front().kind == Kind::statements) {
        Pending& p = pending_.front();
        extended = p.extended;
        statement_completed(p, false);
        if (p.audited()) complete(p, "error", {}, f.sqlstate);
        pop_front();
      }
      skip_to_sync(extended);
      break;
    }
    case backend::ready_for_query: {
      while (!pending_.empty() &&
             (pending_.front().kind == Kind::statements || pending_.front().kind == Kind::copy)) {
        Pending& p = pending_.front();
        if (p.audited()) complete(p, "unknown", {}, {});
        pop_front();
      }
      if (!pending_.empty()) pop_front();
      const char status = body.empty() ? 'I' : static_cast<char>(body[0]);
      if (status == 'I') {
        // The transaction ended without a COMMIT / ROLLBACK of its own: an implicit one (several statements
        // in one Query, Executes before one Sync, or a commit at Sync that failed). A single simple-protocol
        // statement needs no event: it committed before its CommandComplete, or failed with an error.
        const bool single = results_in_transaction_ <= 1 && !extended_in_transaction_ && !error_since_ready_;
        if (transaction_audited_ && !single)
          transaction_ended(error_since_ready_ ? "ROLLBACK" : "COMMIT", "ok");
        transaction_audited_ = false;
        results_in_transaction_ = 0;
        extended_in_transaction_ = false;
        unnamed_portal_ = {};  // portals end with their transaction
        named_portals_.clear();
        // Portals bound after the Sync or Query this answers are the next transaction's, and gone from here
        // now: a FETCH of one is then a possible write.
        portals_overflowed_ = bound_since_end_ || !pending_.empty();
      }
      if (pending_.empty()) frontend_in_block_ = status != 'I';
      error_since_ready_ = false;
      lexing_unsafe_ = strings_unsafe_ || encoding_unsafe_;
      break;
    }
    default:
      break;
  }
}

void SessionAudit::abandon(std::string_view why) {
  bool unanswered = false;
  while (!pending_.empty()) {
    Pending& p = pending_.front();
    if (p.audited()) {
      unanswered = true;
      complete(p, "unknown", {}, {});
    }
    pop_front();
  }
  if (transaction_audited_ || (unanswered && frontend_in_block_)) {
    // The server connection is closed or rolled back by pgwarden: the open transaction is gone, unless its
    // COMMIT was already on the way, in which case nobody here knows.
    audit::Record r = base(audit::Event::transaction);
    r.command = unanswered ? std::nullopt : std::optional<std::string>("ROLLBACK");
    r.outcome = unanswered ? "unknown" : "ok";
    r.reason = std::string(why);
    r.in_transaction = false;
    if (!append(r, false)) broken_ = true;
  }
  transaction_audited_ = false;
  results_in_transaction_ = 0;
  extended_in_transaction_ = false;
  frontend_in_block_ = false;
  statements_in_unit_ = 0;
  error_since_ready_ = false;
  detached();
}

}  // namespace pgw::proxy
