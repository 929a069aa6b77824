// Audit classifier cost per statement: cache hits, never-seen statements (token path, or the full parse where
// the token path does not decide), and the full parse alone for comparison.
//
// "Never seen" defeats the cache twice over: the classifier runs with cache_entries = 0, and every iteration
// classifies a different text (a literal varied over 4096 pre-built variants), as psycopg2's client-side
// parameters make every statement text new.
#include <benchmark/benchmark.h>

#include <string>
#include <vector>

#include "pgw/audit/classify.hpp"

namespace {

using pgw::audit::Classifier;
using pgw::audit::ClassifierLimits;
using pgw::audit::Statement;

const std::vector<std::string>& columns() {
  static const std::vector<std::string> c = {
      "first_name", "last_name", "email",      "phone",          "birth_date",     "mrn",
      "address1",   "address2",  "city",       "state",          "postal_code",    "country",
      "insurance",  "physician", "allergies",  "notes",          "created_at",     "updated_at",
      "is_active",  "gender",    "blood_type", "height_cm",      "weight_kg",      "emergency_contact",
      "emergency",  "language",  "ethnicity",  "marital_status", "preferred_name", "pronouns"};
  return c;
}

// One statement per scenario; `n` is the literal that varies.
std::string make(int scenario, int n) {
  const std::string k = std::to_string(n);
  switch (scenario) {
    case 0:
      return "SELECT abalance FROM pgbench_accounts WHERE aid = " + k + ";";
    case 1:
      return "UPDATE pgbench_accounts SET abalance = abalance + -4331 WHERE aid = " + k + ";";
    case 2:
      return "INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (7, 1, " + k +
             ", -4331, CURRENT_TIMESTAMP);";
    case 3: {  // Django INSERT, 30 columns
      std::string cols, vals;
      for (std::size_t i = 0; i < columns().size(); ++i) {
        cols += (i ? ", \"" : "\"") + columns()[i] + "\"";
        vals += (i ? ", '" : "'") + columns()[i] + "-" + k + "'";
      }
      return "INSERT INTO \"app_patient\" (" + cols + ") VALUES (" + vals +
             ") RETURNING \"app_patient\".\"id\"";
    }
    case 4: {  // Django UPDATE, 20 columns
      std::string sets;
      for (std::size_t i = 0; i < 20; ++i)
        sets += (i ? ", \"" : "\"") + columns()[i] + "\" = '" + k + "'";
      return "UPDATE \"app_patient\" SET " + sets + " WHERE \"app_patient\".\"id\" = " + k;
    }
    case 5: {  // Django SELECT, 30 columns
      std::string cols;
      for (std::size_t i = 0; i < columns().size(); ++i)
        cols += (i ? ", \"app_patient\".\"" : "\"app_patient\".\"") + columns()[i] + "\"";
      return "SELECT " + cols +
             " FROM \"app_patient\" WHERE (\"app_patient\".\"is_active\" AND \"app_patient\".\"id\" = " + k +
             ") ORDER BY \"app_patient\".\"id\" DESC LIMIT 21";
    }
    default: {  // a 2 kB CTE
      std::string q = "WITH ";
      for (int i = 0; i < 14; ++i)
        q += (i ? ", c" : "c") + std::to_string(i) + " AS (SELECT id, v, created FROM obs WHERE id > " + k +
             " AND v <> 'x" + std::to_string(i) + "' AND created < now())";
      q += " SELECT count(*) FROM c0";
      for (int i = 1; i < 14; ++i)
        q += " JOIN c" + std::to_string(i) + " USING (id, v, created)";
      return q;
    }
  }
}

const char* const kNames[] = {
    "pgbench_select",      "pgbench_update",      "pgbench_insert", "django_insert_30col",
    "django_update_20col", "django_select_30col", "cte_2kB"};

void cached(benchmark::State& state) {
  const std::string sql = make(static_cast<int>(state.range(0)), 12345);
  Classifier c;
  std::vector<Statement> out;
  // A cache of a few hundred texts, as a running application has: with 20 or fewer, libstdc++'s map finds a
  // key by comparing it with each (no hash), which no real cache of statements would measure.
  for (int i = 0; i < 256; ++i) {
    const std::string other = make(i % 7, 200000 + i);
    c.classify(other, nullptr, out);
    c.classify(other, nullptr, out);  // the second sight admits it
  }
  c.classify(sql, nullptr, out);
  c.classify(sql, nullptr, out);
  for (auto _ : state) {
    c.classify(sql, nullptr, out);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetLabel(std::string(kNames[state.range(0)]) + " (" + std::to_string(sql.size()) + " B)");
}

void never_seen(benchmark::State& state, bool fast_path) {
  std::vector<std::string> texts;
  for (int i = 0; i < 4096; ++i)
    texts.push_back(make(static_cast<int>(state.range(0)), 100000 + i));
  ClassifierLimits limits;
  limits.cache_entries = 0;
  limits.fast_path = fast_path;
  Classifier c(limits);
  std::vector<Statement> out;
  std::size_t i = 0;
  for (auto _ : state) {
    c.classify(texts[i++ & 4095], nullptr, out);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetLabel(std::string(kNames[state.range(0)]) + (c.stats().fast > 0 ? " token path" : " parsed"));
}

// Never-seen texts through a classifier whose cache is full of hot ones, as a running pgwarden meets
// pgbench -M simple or psycopg2: the cache's miss, its admission filter, then the token path.
void never_seen_past_full_cache(benchmark::State& state) {
  Classifier c;
  std::vector<Statement> out;
  for (int i = 0; i < 4096; ++i) {
    const std::string hot = make(i % 3, 300000 + i);
    c.classify(hot, nullptr, out);
    c.classify(hot, nullptr, out);
  }
  std::vector<std::string> texts;
  for (int i = 0; i < 65536; ++i)
    texts.push_back(make(static_cast<int>(state.range(0)), 100000 + i));
  std::size_t i = 0;
  for (auto _ : state) {
    c.classify(texts[i++ & 65535], nullptr, out);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetLabel(std::string(kNames[state.range(0)]) + ", cache of " + std::to_string(c.cache_size()));
}

void never_seen_fast(benchmark::State& state) {
  never_seen(state, true);
}
void never_seen_full_parse(benchmark::State& state) {
  never_seen(state, false);
}

BENCHMARK(cached)->DenseRange(0, 6);
BENCHMARK(never_seen_past_full_cache)->DenseRange(0, 2);
BENCHMARK(never_seen_fast)->DenseRange(0, 6);
BENCHMARK(never_seen_full_parse)->DenseRange(0, 6);

}  // namespace

BENCHMARK_MAIN();
