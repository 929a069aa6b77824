// What the audit log costs a worker thread per pgbench TPC-B transaction: the session's
// side (classifying each Query, tracking the answers, building and rendering the records) measured alone,
// without the network, TLS or PostgreSQL that make whole-system runs noisy on a small machine. The writer
// thread runs too (fsync = "off", a file in the temp dir); its CPU is reported as a counter.
//
//   inlined   pgbench -M simple: every UPDATE/INSERT carries its values, so each text is new to the
//   classifier repeated  the same five texts every time (cache hits), as with an ORM that binds parameters
//   client side
//             but repeats its values
//   extended  pgbench -M extended: Parse/Bind/Describe/Execute/Sync per statement, the same texts with $n
//             placeholders every time, parameters redacted
#include <benchmark/benchmark.h>
#include <time.h>

#include <boost/asio/io_context.hpp>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "audit_scratch.hpp"
#include "pgw/audit/classify.hpp"
#include "pgw/audit/log.hpp"
#include "session_audit.hpp"

namespace {

namespace audit = pgw::audit;
using pgw::protocol::Bytes;

double thread_cpu_seconds() {
  timespec ts{};
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

double process_cpu_seconds() {
  timespec ts{};
  ::clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

Bytes bytes_of(const std::string& s) {
  return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

struct Exchange {
  std::string query;
  std::string tag;  // CommandComplete body (with its NUL)
  char status;      // ReadyForQuery
};

std::vector<Exchange> tpcb(std::mt19937& rng, bool inlined) {
  auto pick = [&](int n) { return inlined ? std::to_string(1 + rng() % n) : std::string("1"); };
  const std::string aid = pick(1000000), tid = pick(100), bid = pick(10), delta = pick(5000);
  return {
      {"BEGIN;", std::string("BEGIN\0", 6), 'T'},
      {"UPDATE pgbench_accounts SET abalance = abalance + " + delta + " WHERE aid = " + aid + ";",
       std::string("UPDATE 1\0", 9), 'T'},
      {"SELECT abalance FROM pgbench_accounts WHERE aid = " + aid + ";", std::string("SELECT 1\0", 9), 'T'},
      {"UPDATE pgbench_tellers SET tbalance = tbalance + " + delta + " WHERE tid = " + tid + ";",
       std::string("UPDATE 1\0", 9), 'T'},
      {"UPDATE pgbench_branches SET bbalance = bbalance + " + delta + " WHERE bid = " + bid + ";",
       std::string("UPDATE 1\0", 9), 'T'},
      {"INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (" + tid + ", " + bid + ", " + aid +
           ", " + delta + ", CURRENT_TIMESTAMP);",
       std::string("INSERT 0 1\0", 11), 'T'},
      {"END;", std::string("COMMIT\0", 7), 'I'},
  };
}

// Runs one session through `transaction(session, done)` per iteration, with the writer thread behind it, and
// reports both threads' CPU per transaction.
template <class Transaction>
void measure(benchmark::State& state, const char* scratch_name, Transaction&& transaction) {
  const pgw::bench::AuditScratch scratch(scratch_name);
  const pgw::config::AuditSettings& settings = scratch.settings();
  std::uint64_t done = 0;
  double session_cpu = 0, process_cpu = 0;
  {
    boost::asio::io_context io;
    audit::AuditLog log(settings);
    audit::Classifier classifier;
    pgw::proxy::SessionAudit session(log, classifier, settings, io.get_executor(), false);
    auto& id = session.identity();
    id.session = "7f3a9c2e51b04d17";
    id.client_addr = "10.20.30.40";
    id.client_port = 51234;
    id.user = "jhe_app";
    id.database = "jhe";
    id.tls = audit::TlsInfo{"TLSv1.3", "TLS_AES_256_GCM_SHA384", std::nullopt};
    session.set_application_name("pgbench");
    session.connected();
    const double t0 = thread_cpu_seconds();
    const double p0 = process_cpu_seconds();
    for (auto _ : state) {
      // Transaction pooling with a pool of 20: most transactions land on another server connection.
      session.set_server("db.internal:5432", 48211 + static_cast<std::int32_t>(done % 20));
      if (!transaction(session, done)) state.SkipWithError("refused");
      session.detached();
      if (++done % 2048 == 0) log.flush(std::chrono::seconds(10));  // stay below the queue's bounds
    }
    session_cpu = thread_cpu_seconds() - t0;
    log.flush(std::chrono::seconds(10));
    process_cpu = process_cpu_seconds() - p0;
    if (log.stats().written < done * 5) state.SkipWithError("fewer records than transactions * 5");
  }
  const double n = done == 0 ? 1.0 : static_cast<double>(done);
  state.counters["session_us_per_txn"] = session_cpu * 1e6 / n;
  state.counters["process_us_per_txn"] = process_cpu * 1e6 / n;
}

void answer(pgw::proxy::SessionAudit& session, const std::string& tag, char status) {
  session.on_backend('C', bytes_of(tag));
  const auto byte = static_cast<std::uint8_t>(status);
  session.on_backend('Z', Bytes(&byte, 1));
}

void session_tpcb(benchmark::State& state) {
  const bool inlined = state.range(0) != 0;
  // Prepared before the clock starts: 4096 transactions' worth of texts, reused round robin.
  std::mt19937 rng(42);
  std::vector<std::vector<Exchange>> transactions;
  for (int i = 0; i < 4096; ++i)
    transactions.push_back(tpcb(rng, inlined));
  measure(state, "session-audit", [&](pgw::proxy::SessionAudit& session, std::uint64_t done) {
    bool in_transaction = false;
    for (const Exchange& e : transactions[done % transactions.size()]) {
      if (!session.on_query(e.query, in_transaction)) return false;
      answer(session, e.tag, e.status);
      in_transaction = e.status != 'I';
    }
    return true;
  });
  state.SetLabel(inlined ? "inlined values" : "repeated texts");
}
BENCHMARK(session_tpcb)->Arg(1)->Arg(0)->Unit(benchmark::kMicrosecond);

// pgbench -M extended: per statement Parse (unnamed, the same text with $n every time), Bind with redacted
// parameters, Describe, Execute, Sync, and ParseComplete, BindComplete, NoData, CommandComplete,
// ReadyForQuery.
void session_tpcb_extended(benchmark::State& state) {
  struct Statement {
    std::string sql;
    std::int16_t parameters;
    Exchange answer;
  };
  const std::vector<Statement> tx = {
      {"BEGIN;", 0, {"", std::string("BEGIN\0", 6), 'T'}},
      {"UPDATE pgbench_accounts SET abalance = abalance + $1 WHERE aid = $2;",
       2,
       {"", std::string("UPDATE 1\0", 9), 'T'}},
      {"SELECT abalance FROM pgbench_accounts WHERE aid = $1;", 1, {"", std::string("SELECT 1\0", 9), 'T'}},
      {"UPDATE pgbench_tellers SET tbalance = tbalance + $1 WHERE tid = $2;",
       2,
       {"", std::string("UPDATE 1\0", 9), 'T'}},
      {"UPDATE pgbench_branches SET bbalance = bbalance + $1 WHERE bid = $2;",
       2,
       {"", std::string("UPDATE 1\0", 9), 'T'}},
      {"INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES ($1, $2, $3, $4, "
       "CURRENT_TIMESTAMP);",
       4,
       {"", std::string("INSERT 0 1\0", 11), 'T'}},
      {"END;", 0, {"", std::string("COMMIT\0", 7), 'I'}},
  };
  measure(state, "session-audit-extended", [&](pgw::proxy::SessionAudit& session, std::uint64_t) {
    bool in_transaction = false;
    for (const Statement& s : tx) {
      session.on_parse("", s.sql);
      pgw::protocol::frontend::Bind bind;
      bind.num_parameters = s.parameters;
      session.on_bind(bind);
      if (!session.on_execute("", in_transaction)) return false;
      session.on_sync();
      session.on_backend('1', {});
      session.on_backend('2', {});
      session.on_backend('n', {});
      answer(session, s.answer.tag, s.answer.status);
      in_transaction = s.answer.status != 'I';
    }
    return true;
  });
  state.SetLabel("extended, parameters redacted");
}
BENCHMARK(session_tpcb_extended)->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
