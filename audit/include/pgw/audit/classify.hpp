// Audit statement classifier: splits simple-query text into statements and gives each PostgreSQL 15's
// log_statement class (GetCommandLogLevel, src/backend/tcop/utility.c), its command tag and the relations it
// writes, using PostgreSQL's own grammar (libpg_query) with an exact token-level fast path and a bounded
// cache.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "pgw/audit/text_index.hpp"

namespace pgw::audit {

// PostgreSQL's log_statement levels (LOGSTMT_ALL is `none` here: it is never audited at "ddl" or "mod"), plus
// `routine` for DO and CALL: a proxy cannot see what they do, so audit.routines decides whether they are
// recorded.
enum class StatementClass : std::uint8_t { none, ddl, mod, routine };
std::string_view class_name(StatementClass c);  // "none" | "ddl" | "mod" | "routine"

// Where our class is stricter than PostgreSQL's own log_statement, and why (SPEC "Audit record": a documented
// superset). Every statement we class mod/ddl that PostgreSQL 15 would not log at log_statement = 'mod'
// carries one of these, except text the grammar rejects that the token path decided (the server refuses it
// anyway).
enum class Superset : std::uint8_t {
  none,               // PostgreSQL logs it at this class too
  modifying_with,     // SELECT (also under EXPLAIN ANALYZE, PREPARE, COPY ... TO) whose WITH holds an
                      // INSERT/UPDATE/DELETE: GetCommandLogLevel looks only at the top node (SELECT: "all")
  copy_dml_to,        // COPY (INSERT|UPDATE|DELETE ... RETURNING) TO: PostgreSQL logs only COPY FROM as "mod"
  select_into_setop,  // SELECT ... INTO t ... UNION ...: the INTO sits on the leftmost arm, not the top node
  unknown_execute,    // EXECUTE of a name this session has no (completed) PREPARE for: assumed to write
  not_parsed,  // not parsed (grammar rejects it, or longer than max_parse_bytes) and not decided by the
               // token path: class from the leading keyword, fail closed
};
std::string_view superset_name(Superset s);

// What a statement asks of the session's SQL-level prepared statements (see SqlPrepared).
enum class PreparedEffect : std::uint8_t { none, prepare, execute, deallocate, deallocate_all };

// One top-level statement of the classified text.
struct Statement {
  std::size_t offset = 0;  // byte range in the classified text: the statement exactly as sent, without the
  std::size_t length = 0;  // terminating ';' and surrounding whitespace (comments inside the range are kept)
  StatementClass cls = StatementClass::none;
  std::string_view command;  // PostgreSQL's command tag name ("INSERT", "CREATE TABLE", "SELECT INTO",
                             // "UNKNOWN" for text the grammar rejects); static storage
  std::vector<std::string> objects;  // relations written, as qualified in the text ("public.obs" / "obs")
  Superset superset = Superset::none;
  PreparedEffect effect = PreparedEffect::none;
  std::string prepared_name;  // for effect != none (except deallocate_all); for FETCH / MOVE, the portal

  std::string_view text(std::string_view sql) const { return sql.substr(offset, length); }
};

// Per-session memory of SQL-level PREPAREs (not protocol-level Parse), so EXECUTE gets the class of what it
// runs, as GetCommandLogLevel does. Cheap: one hash map lookup per EXECUTE. Bounded: a PREPARE beyond
// max_names is not remembered, and an EXECUTE we cannot resolve is classed mod (fail closed).
class SqlPrepared {
 public:
  struct Entry {
    StatementClass cls = StatementClass::none;
    Superset superset = Superset::none;
    std::vector<std::string> objects;
  };

  explicit SqlPrepared(std::size_t max_names = 1000) : max_names_(max_names) {}

  // Call when the server completed `stmt` (CommandComplete, not ErrorResponse): a failed PREPARE defines
  // nothing and a failed DEALLOCATE (e.g. in an aborted transaction) forgets nothing. PREPARE remembers the
  // class of its statement, DEALLOCATE name / DEALLOCATE ALL / DISCARD ALL forget.
  void on_complete(const Statement& stmt);
  const Entry* find(std::string_view name) const;
  std::size_t size() const { return entries_.size(); }
  void clear() { entries_.clear(); }

 private:
  struct Hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
  };
  std::unordered_map<std::string, Entry, Hash, std::equal_to<>> entries_;
  std::size_t max_names_;
};

struct ClassifierLimits {
  std::size_t cache_entries = 4096;    // texts remembered (0: no cache)
  std::size_t cache_bytes = 8u << 20;  // their total size (texts + results)
  std::size_t max_cached_text =
      16u << 10;  // longer texts are classified every time (bulk loads rarely repeat)
  std::size_t max_parse_bytes = 1u << 20;  // longer statements are not given to the parser (time and memory
                                           // grow with the tree): the token path, else leading keywords
  bool fast_path = true;                   // false: always the full parse (tests compare both)
};

// Classifies simple-query (or Parse) text. One per worker thread: not thread safe, no locks.
//
// Cost: a cache hit is one hash lookup. A never-seen text is first lexed by a small scanner that mirrors
// PostgreSQL's scan.l for what decides statement boundaries (comments incl. nested, standard/E'' strings,
// quoted identifiers, dollar quotes) and gives up on anything unusual; it decides exactly the common shapes
// (SELECT/WITH with no INTO or data-modifying keyword; INSERT INTO t / UPDATE t / DELETE FROM t with no other
// data-modifying keyword; bare BEGIN/COMMIT/ROLLBACK). Everything else goes to PostgreSQL 15's grammar
// (pg_query_parse_protobuf). Unit tests check that the fast path equals the full parse on a corpus and on
// random mutations of it.
//
// Text the grammar rejects (the server refuses the whole query string, so none of it runs): split with
// PostgreSQL's scanner; each statement that parses alone is classified exactly, the rest from the token path
// or else from the leading keyword (DO/CALL routine; CREATE/ALTER/DROP/GRANT/... ddl; SELECT/SET/SHOW/...
// none when no INTO or data-modifying keyword appears; anything else mod), command "UNKNOWN".
//
// Assumes standard_conforming_strings = on (the default since 9.1; the server reports it as a
// ParameterStatus) and an ASCII-safe client_encoding (UTF8, LATIN*): with either off, a backslash can end a
// string where we do not see it end.
class Classifier {
 public:
  struct Stats {
    std::uint64_t hits = 0, misses = 0;  // cache
    std::uint64_t fast = 0;              // texts decided by the token path
    std::uint64_t parsed = 0;            // texts given to the full parser
    std::uint64_t rejected = 0;          // texts the grammar rejected (or too large to parse)
    std::uint64_t evictions = 0;
    std::uint64_t not_admitted = 0;  // misses not cached: the text was not seen before
  };

  explicit Classifier(ClassifierLimits limits = {});

  // Fills `out` (reusing its storage) with the statements of `sql` in order; empty statements (";;", only
  // comments) give none. `session` resolves EXECUTE; nullptr or an unknown name: class mod. Text after a NUL
  // byte is ignored (a protocol string ends there).
  void classify(std::string_view sql, const SqlPrepared* session, std::vector<Statement>& out);
  std::vector<Statement> classify(std::string_view sql, const SqlPrepared* session = nullptr);

  const Stats& stats() const { return stats_; }
  std::size_t cache_size() const { return index_.size(); }
  std::size_t cache_bytes() const { return bytes_; }

 private:
  struct Slot {
    std::string key;
    std::size_t hash = 0;  // of key: the index's, and the admission's
    std::vector<Statement> value;
    std::size_t bytes = 0;
    bool used = false;
    bool referenced = false;
  };

  void compute(std::string_view sql, std::vector<Statement>& out);
  bool try_fast(std::string_view sql, std::vector<Statement>& out);
  void full(std::string_view sql, std::vector<Statement>& out);
  const Slot* find(std::string_view sql, std::size_t hash);
  bool admit(std::size_t hash);
  void remember(std::string_view sql, std::size_t hash, const std::vector<Statement>& value);
  bool evict_one();

  ClassifierLimits limits_;
  Stats stats_;
  // CLOCK cache: slots never move (deque), the index holds their numbers.
  std::deque<Slot> slots_;
  std::vector<std::size_t> free_;
  // A text is hashed once per statement: the lookup, the admission and the insert share it. Admission: a
  // text is cached the second time it is seen. Statements with inlined values (psql, pgbench -M simple,
  // psycopg2) are rarely seen twice; caching each would evict the hot ones and cost a copy, an insert and an
  // eviction per statement. A fingerprint collision only hastens or delays an admission.
  detail::TextIndex index_;  // its table is allocated at the first lookup
  std::size_t hand_ = 0;
  std::size_t bytes_ = 0;
};

// audit.literals = "redact": constants replaced by $n (pg_query_normalize), e.g. psycopg2's inlined
// parameters. Text that does not parse, or is longer than max_bytes, cannot be redacted reliably and comes
// back as a fixed marker instead: a redaction that fails must not leak the literals.
std::string redact_literals(std::string_view sql, std::size_t max_bytes = 1u << 20);
inline constexpr std::string_view kRedactionFailed = "/* pgwarden: statement text redacted (not parsed) */";

}  // namespace pgw::audit
