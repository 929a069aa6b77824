// Audit statement classifier: the corpus in tests/data/audit_statements.tsv (checked against PostgreSQL 15's
// own log_statement by tests/integration/test_audit_classify.py), fast path == full parse on the corpus and
// on random mutations of it, the per-session PREPARE memory, the cache bounds and literal redaction.
#include "pgw/audit/classify.hpp"
#include "../../tools/corpus_text.hpp"

#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

namespace {

using pgw::audit::Classifier;
using pgw::audit::ClassifierLimits;
using pgw::audit::PreparedEffect;
using pgw::audit::SqlPrepared;
using pgw::audit::Statement;
using pgw::audit::StatementClass;
using pgw::audit::Superset;

struct Row {
  int line = 0;
  std::vector<std::string> classes, commands, objects;  // per statement; objects comma-joined or "-"
  std::string sql;
};

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::string cur;
  for (char c : s) {
    if (c == sep) {
      out.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  out.push_back(cur);
  return out;
}

using pgw::testing::unescape;

std::vector<Row> load_corpus() {
  std::ifstream in(std::string(PGW_SOURCE_DIR) + "/tests/data/audit_statements.tsv");
  EXPECT_TRUE(in.good()) << "corpus not found";
  std::vector<Row> rows;
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    ++n;
    if (line.empty() || line[0] == '#') continue;
    const std::vector<std::string> cols = split(line, '\t');
    EXPECT_EQ(cols.size(), 4u) << "line " << n;
    if (cols.size() != 4) continue;
    Row r;
    r.line = n;
    r.classes = split(cols[0], ',');
    r.commands = split(cols[1], '|');
    r.objects = split(cols[2], '|');
    r.sql = unescape(cols[3]);
    rows.push_back(std::move(r));
  }
  return rows;
}

std::string join_objects(const Statement& st) {
  if (st.objects.empty()) return "-";
  std::string out;
  for (const std::string& o : st.objects) {
    if (!out.empty()) out += ',';
    out += o;
  }
  return out;
}

std::string describe(const Statement& st, std::string_view sql) {
  std::ostringstream os;
  os << "[" << st.offset << "+" << st.length << " " << pgw::audit::class_name(st.cls) << " " << st.command
     << " " << join_objects(st) << " " << pgw::audit::superset_name(st.superset)
     << " effect=" << static_cast<int>(st.effect) << " name=" << st.prepared_name << "] " << st.text(sql);
  return os.str();
}

std::string describe(const std::vector<Statement>& v, std::string_view sql) {
  std::string out;
  for (const Statement& st : v)
    out += describe(st, sql) + "\n";
  return out;
}

bool same(const Statement& a, const Statement& b) {
  return a.offset == b.offset && a.length == b.length && a.cls == b.cls && a.command == b.command &&
         a.objects == b.objects && a.superset == b.superset && a.effect == b.effect &&
         a.prepared_name == b.prepared_name;
}

bool same(const std::vector<Statement>& a, const std::vector<Statement>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (!same(a[i], b[i])) return false;
  }
  return true;
}

ClassifierLimits no_cache(bool fast) {
  ClassifierLimits l;
  l.cache_entries = 0;
  l.fast_path = fast;
  return l;
}

TEST(ClassifyCorpus, HasEnoughRows) {
  EXPECT_GE(load_corpus().size(), 150u);
}

// Every row as written in the corpus, processed in order by one session, through a cached classifier (each
// row twice: the second answer comes from the cache) and through the full parse alone.
TEST(ClassifyCorpus, MatchesExpectations) {
  const std::vector<Row> rows = load_corpus();
  for (bool fast : {true, false}) {
    ClassifierLimits limits;
    limits.fast_path = fast;
    Classifier classifier(limits);
    SqlPrepared session;
    for (const Row& row : rows) {
      for (int pass = 0; pass < 2; ++pass) {
        const std::vector<Statement> got = classifier.classify(row.sql, &session);
        SCOPED_TRACE("line " + std::to_string(row.line) + (fast ? " fast" : " full") + " pass " +
                     std::to_string(pass) + ": " + row.sql + "\n" + describe(got, row.sql));
        ASSERT_EQ(got.size(), row.classes.size());
        ASSERT_EQ(got.size(), row.commands.size());
        ASSERT_EQ(got.size(), row.objects.size());
        for (std::size_t i = 0; i < got.size(); ++i) {
          EXPECT_EQ(pgw::audit::class_name(got[i].cls), row.classes[i]);
          EXPECT_EQ(got[i].command, row.commands[i]);
          EXPECT_EQ(join_objects(got[i]), row.objects[i]);
          EXPECT_LE(got[i].offset + got[i].length, row.sql.size());
        }
      }
      // As the proxy does once the server completed them (the corpus is written so that they succeed).
      for (const Statement& st : classifier.classify(row.sql, &session))
        session.on_complete(st);
    }
    EXPECT_GT(classifier.stats().hits, 0u);
  }
}

// The token path decides a good share of the corpus, and always as the full parse does.
TEST(ClassifyDifferential, FastPathEqualsFullParseOnCorpus) {
  const std::vector<Row> rows = load_corpus();
  Classifier fast(no_cache(true));
  Classifier full(no_cache(false));
  SqlPrepared s1;
  SqlPrepared s2;
  for (const Row& row : rows) {
    const std::vector<Statement> a = fast.classify(row.sql, &s1);
    const std::vector<Statement> b = full.classify(row.sql, &s2);
    EXPECT_TRUE(same(a, b)) << "line " << row.line << ": " << row.sql << "\nfast:\n"
                            << describe(a, row.sql) << "full:\n"
                            << describe(b, row.sql);
    for (const Statement& st : a)
      s1.on_complete(st);
    for (const Statement& st : b)
      s2.on_complete(st);
  }
  EXPECT_GE(fast.stats().fast, rows.size() / 4) << "the token path decides too little of the corpus";
  EXPECT_EQ(full.stats().fast, 0u);
}

std::string mutate(const std::string& s, std::mt19937& rng) {
  static const std::vector<std::string> kPieces = {";",
                                                   "'",
                                                   "\"",
                                                   "$$",
                                                   "$x$",
                                                   "/*",
                                                   "*/",
                                                   "--",
                                                   "\n",
                                                   "(",
                                                   ")",
                                                   "E'",
                                                   "\\",
                                                   "\\'",
                                                   "''",
                                                   " INTO t ",
                                                   " DELETE ",
                                                   " UPDATE ",
                                                   " FOR ",
                                                   "$1",
                                                   ".",
                                                   "U&",
                                                   " ",
                                                   "SELECT",
                                                   " WITH",
                                                   "INSERT INTO t VALUES (1)",
                                                   "; DELETE FROM x",
                                                   "e",
                                                   "1e",
                                                   "*",
                                                   "&",
                                                   "b'",
                                                   "\"\"",
                                                   "::",
                                                   " ATOMIC ",
                                                   " DO UPDATE ",
                                                   " KEY ",
                                                   "0x",
                                                   "\t"};
  std::string out = s;
  const int edits = 1 + static_cast<int>(rng() % 3);
  for (int e = 0; e < edits; ++e) {
    const std::size_t pos = out.empty() ? 0 : rng() % (out.size() + 1);
    switch (rng() % 4) {
      case 0:
        out.insert(pos, kPieces[rng() % kPieces.size()]);
        break;
      case 1:
        if (!out.empty() && pos < out.size())
          out.erase(pos, 1 + rng() % std::min<std::size_t>(8, out.size() - pos));
        break;
      case 2:
        if (pos < out.size()) out[pos] = static_cast<char>(out[pos] ^ 0x20);  // flips case, space <-> NUL
        break;
      default: {
        const std::size_t from = out.empty() ? 0 : rng() % out.size();
        out.insert(pos, out.substr(from, rng() % 24));
        break;
      }
    }
  }
  return out;
}

TEST(ClassifyDifferential, FastPathEqualsFullParseOnMutations) {
  const std::vector<Row> rows = load_corpus();
  // Fixed seed, the same texts every run; PGW_CLASSIFY_SEED explores others by hand.
  const char* seed = std::getenv("PGW_CLASSIFY_SEED");
  std::mt19937 rng(seed != nullptr ? static_cast<std::uint32_t>(std::strtoul(seed, nullptr, 10)) : 20241122u);
  Classifier fast(no_cache(true));
  Classifier full(no_cache(false));
  SqlPrepared session;  // empty: EXECUTE resolves the same way on both sides
  int compared = 0;
  for (const Row& row : rows) {
    for (int i = 0; i < 100; ++i) {
      const std::string text = mutate(row.sql, rng);
      const std::vector<Statement> a = fast.classify(text, &session);
      const std::vector<Statement> b = full.classify(text, &session);
      ++compared;
      ASSERT_TRUE(same(a, b)) << "mutation of line " << row.line << ":\n"
                              << text << "\nfast:\n"
                              << describe(a, text) << "full:\n"
                              << describe(b, text);
    }
  }
  EXPECT_GT(fast.stats().fast, static_cast<std::uint64_t>(compared / 10));
}

TEST(Classify, RangesAreTheTextAsSent) {
  Classifier c;
  const std::string sql = "  /* a */ INSERT INTO obs VALUES (1) ; ;\n SELECT ';' -- x\n;  DELETE FROM t  ";
  const std::vector<Statement> v = c.classify(sql);
  ASSERT_EQ(v.size(), 3u);
  EXPECT_EQ(v[0].text(sql), "/* a */ INSERT INTO obs VALUES (1)");
  EXPECT_EQ(v[1].text(sql), "SELECT ';' -- x");
  EXPECT_EQ(v[2].text(sql), "DELETE FROM t");
  EXPECT_TRUE(c.classify("").empty());
  EXPECT_TRUE(c.classify(" ; -- nothing\n ;").empty());
}

TEST(Classify, SupersetReasonsAreMarked) {
  Classifier c;
  EXPECT_EQ(c.classify("WITH d AS (DELETE FROM t RETURNING 1) SELECT * FROM d")[0].superset,
            Superset::modifying_with);
  EXPECT_EQ(c.classify("COPY (DELETE FROM t RETURNING 1) TO STDOUT")[0].superset, Superset::copy_dml_to);
  EXPECT_EQ(c.classify("SELECT 1 AS a INTO t UNION SELECT 2")[0].superset, Superset::select_into_setop);
  EXPECT_EQ(c.classify("EXECUTE p")[0].superset, Superset::unknown_execute);
  EXPECT_EQ(c.classify("INSERT INTO t VALUES (1")[0].superset, Superset::not_parsed);
  EXPECT_EQ(c.classify("INSERT INTO t VALUES (1)")[0].superset, Superset::none);
}

// The classifier and its caller reuse their statements from one text to the next (no allocation per
// never-seen text): nothing of an earlier text may show through.
TEST(Classify, NothingCarriesOverFromTheTextBefore) {
  Classifier c;
  std::vector<Statement> out;
  auto objects_of = [&](std::string_view sql) {
    c.classify(sql, nullptr, out);
    std::vector<std::vector<std::string>> all;
    for (const Statement& st : out)
      all.push_back(st.objects);
    return all;
  };
  using Objects = std::vector<std::vector<std::string>>;
  EXPECT_EQ(objects_of("UPDATE public.pgbench_accounts SET abalance = 1 WHERE aid = 7"),
            (Objects{{"public.pgbench_accounts"}}));
  EXPECT_EQ(objects_of("SELECT abalance FROM pgbench_accounts WHERE aid = 7"), (Objects{{}}));
  EXPECT_EQ(objects_of("BEGIN"), (Objects{{}}));
  EXPECT_EQ(objects_of("INSERT INTO h VALUES (1); DELETE FROM \"Obs\" WHERE id = 2"),
            (Objects{{"h"}, {"\"Obs\""}}));
  EXPECT_EQ(objects_of("SELECT 1; UPDATE t SET a = 2"), (Objects{{}, {"t"}}));
  EXPECT_EQ(objects_of("UPDATE tt SET a = 2"), (Objects{{"tt"}}));
  // A full parse's superset and a PREPARE's effect do not stay on the statement the token path fills next.
  c.classify("PREPARE p AS UPDATE t SET a = 1", nullptr, out);
  EXPECT_EQ(out[0].effect, PreparedEffect::prepare);
  c.classify("UPDATE t2 SET a = 3", nullptr, out);
  EXPECT_EQ(out[0].effect, PreparedEffect::none);
  EXPECT_TRUE(out[0].prepared_name.empty());
  c.classify("WITH d AS (DELETE FROM t RETURNING 1) SELECT * FROM d", nullptr, out);
  EXPECT_EQ(out[0].superset, Superset::modifying_with);
  c.classify("SELECT 2", nullptr, out);
  EXPECT_EQ(out[0].superset, Superset::none);
  EXPECT_EQ(out[0].command, "SELECT");
  EXPECT_EQ(out[0].cls, StatementClass::none);
}

TEST(SqlPreparedTest, RemembersOnlyCompletedStatements) {
  Classifier c;
  SqlPrepared s;
  const Statement prep = c.classify("PREPARE w (int) AS DELETE FROM public.obs WHERE id = $1")[0];
  EXPECT_EQ(prep.effect, PreparedEffect::prepare);
  EXPECT_EQ(prep.prepared_name, "w");
  EXPECT_EQ(prep.cls, StatementClass::mod);
  EXPECT_EQ(c.classify("EXECUTE w(1)", &s)[0].superset, Superset::unknown_execute);  // not completed yet
  s.on_complete(prep);
  Statement exec = c.classify("EXECUTE w(1)", &s)[0];
  EXPECT_EQ(exec.cls, StatementClass::mod);
  EXPECT_EQ(exec.superset, Superset::none);
  EXPECT_EQ(exec.objects, std::vector<std::string>{"public.obs"});
  s.on_complete(c.classify("PREPARE r AS SELECT 1")[0]);
  EXPECT_EQ(c.classify("execute R", &s)[0].cls, StatementClass::none);  // names fold like identifiers
  s.on_complete(c.classify("DEALLOCATE w")[0]);
  EXPECT_EQ(c.classify("EXECUTE w(1)", &s)[0].cls, StatementClass::mod);
  EXPECT_EQ(s.size(), 1u);
  s.on_complete(c.classify("DISCARD ALL")[0]);
  EXPECT_EQ(s.size(), 0u);

  SqlPrepared small(2);
  for (const char* q : {"PREPARE a AS SELECT 1", "PREPARE b AS SELECT 1", "PREPARE c AS SELECT 1"})
    small.on_complete(c.classify(q)[0]);
  EXPECT_EQ(small.size(), 2u);
  EXPECT_EQ(c.classify("EXECUTE c", &small)[0].cls, StatementClass::mod);  // forgotten: fail closed
}

TEST(ClassifyCache, BoundedByEntriesAndBytes) {
  ClassifierLimits l;
  l.cache_entries = 8;
  l.cache_bytes = 1u << 20;
  Classifier c(l);
  for (int i = 0; i < 100; ++i) {
    c.classify("SELECT " + std::to_string(i));
    c.classify("SELECT " + std::to_string(i));  // seen twice: admitted
  }
  EXPECT_LE(c.cache_size(), 8u);
  EXPECT_GT(c.stats().evictions, 0u);

  l.cache_entries = 1000;
  l.cache_bytes = 4096;
  Classifier b(l);
  for (int i = 0; i < 200; ++i) {
    b.classify("UPDATE obs SET v = 'x' WHERE id = " + std::to_string(i));
    b.classify("UPDATE obs SET v = 'x' WHERE id = " + std::to_string(i));
  }
  EXPECT_LE(b.cache_bytes(), 4096u);
  EXPECT_GT(b.cache_size(), 0u);

  // A hot statement survives a stream of one-off ones (CLOCK second chance).
  l.cache_entries = 16;
  l.cache_bytes = 1u << 20;
  Classifier h(l);
  for (int i = 0; i < 200; ++i) {
    h.classify("INSERT INTO obs VALUES ($1, $2)");
    h.classify("SELECT " + std::to_string(i));
  }
  EXPECT_GE(h.stats().hits, 198u);  // cached at its second sight
}

TEST(ClassifyCache, OneOffTextsAreNotCached) {
  // pgbench -M simple: every statement carries its own values, so none repeats.
  Classifier c;
  for (int i = 0; i < 5000; ++i) {
    auto got = c.classify("UPDATE pgbench_accounts SET abalance = abalance + " + std::to_string(i) +
                          " WHERE aid = " + std::to_string(i * 7) + ";");
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(got[0].cls, StatementClass::mod);
  }
  EXPECT_EQ(c.cache_size(), 0u);
  EXPECT_EQ(c.stats().evictions, 0u);
  EXPECT_EQ(c.stats().not_admitted, 5000u);
  // A text seen twice is cached, and the third sight is a hit.
  c.classify("SELECT abalance FROM pgbench_accounts WHERE aid = $1");
  c.classify("SELECT abalance FROM pgbench_accounts WHERE aid = $1");
  EXPECT_EQ(c.cache_size(), 1u);
  const auto hits = c.stats().hits;
  c.classify("SELECT abalance FROM pgbench_accounts WHERE aid = $1");
  EXPECT_EQ(c.stats().hits, hits + 1);
}

TEST(ClassifyCache, AnswersStayRightThroughEvictions) {
  // A small cache under churn: every answer, from the cache or not, is its own text's (the index itself is
  // tested in text_index_test.cpp).
  ClassifierLimits l;
  l.cache_entries = 8;
  l.cache_bytes = 1u << 20;
  Classifier c(l);
  Classifier uncached(no_cache(true));
  auto text = [](int i) { return "INSERT INTO t" + std::to_string(i) + " VALUES (1)"; };
  std::uint32_t state = 12345;
  for (int step = 0; step < 20000; ++step) {
    state = state * 1103515245u + 12345u;
    const std::string sql = text(static_cast<int>((state >> 16) % 40));
    const auto got = c.classify(sql);
    ASSERT_EQ(got.size(), 1u) << sql;
    ASSERT_EQ(got[0].objects, uncached.classify(sql)[0].objects) << sql;
  }
  EXPECT_GT(c.stats().evictions, 1000u);
  EXPECT_GT(c.stats().hits, 1000u);
  EXPECT_LE(c.cache_size(), 8u);
}

TEST(Classify, LargeAndOddInputsDoNotCrash) {
  ClassifierLimits l;
  l.max_parse_bytes = 4096;
  Classifier c(l);
  std::string big = "INSERT INTO obs VALUES ";
  for (int i = 0; i < 20000; ++i)
    big += (i ? ",(" : "(") + std::to_string(i) + ", 'v')";
  std::vector<Statement> v = c.classify(big);
  ASSERT_EQ(v.size(), 1u);
  EXPECT_EQ(v[0].cls, StatementClass::mod);
  EXPECT_EQ(v[0].objects, std::vector<std::string>{"obs"});  // token path, no parse

  std::string big_copy = "COPY obs FROM STDIN; " + std::string(8000, ' ') + "SELECT 1";
  v = c.classify(big_copy);
  ASSERT_EQ(v.size(), 2u);
  EXPECT_EQ(v[0].cls, StatementClass::mod);

  std::string nested(100000, '(');
  v = c.classify("SELECT " + nested);
  ASSERT_EQ(v.size(), 1u);
  v = c.classify("SELECT " + nested + "1" + std::string(100000, ')'));
  ASSERT_EQ(v.size(), 1u);

  const std::string with_nul("SELECT 1\0; DELETE FROM obs", 26);
  v = c.classify(with_nul);
  ASSERT_EQ(v.size(), 1u);
  EXPECT_EQ(v[0].cls, StatementClass::none);

  std::string bytes;
  for (int i = 1; i < 256; ++i)
    bytes += static_cast<char>(i);
  v = c.classify(bytes);
  for (const Statement& st : v)
    EXPECT_LE(st.offset + st.length, bytes.size());
}

TEST(Redact, ReplacesConstants) {
  EXPECT_EQ(pgw::audit::redact_literals("INSERT INTO obs VALUES (42, 'John Doe')"),
            "INSERT INTO obs VALUES ($1, $2)");
  EXPECT_EQ(pgw::audit::redact_literals("SELECT * FROM t WHERE ssn = E'123\\'45'"),
            "SELECT * FROM t WHERE ssn = $1");
  EXPECT_EQ(pgw::audit::redact_literals("SELECT 'unterminated"), pgw::audit::kRedactionFailed);
  EXPECT_EQ(pgw::audit::redact_literals("SELECT 'x'", 4), pgw::audit::kRedactionFailed);
}

}  // namespace
