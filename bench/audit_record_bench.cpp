// What one audit record costs: its JSON body, sealing it into the hash chain (SHA-256 and HMAC-SHA-256), and
// a whole append through the writer thread into a file (fsync = "off", so the disk is not what is measured).
// The record is the statement record of a pgbench TPC-B UPDATE as pgwarden writes it.
#include <benchmark/benchmark.h>

#include <chrono>
#include <string>

#include "audit_scratch.hpp"
#include "pgw/audit/log.hpp"

namespace {

namespace audit = pgw::audit;

audit::Record pgbench_update(int n) {
  audit::Record r;
  r.event = audit::Event::statement;
  r.ts = std::chrono::system_clock::now();
  r.session = "7f3a9c2e51b04d17";
  r.client_addr = "10.20.30.40";
  r.client_port = 51234;
  r.user = "jhe_app";
  r.database = "jhe";
  r.application_name = "pgbench";
  r.tls = audit::TlsInfo{"TLSv1.3", "TLS_AES_256_GCM_SHA384", std::nullopt};
  r.server = "db.internal:5432";
  r.backend_pid = 48211;
  r.protocol = "simple";
  r.command = "UPDATE";
  r.statement_class = "mod";
  r.objects = {"pgbench_accounts"};
  r.statement = "UPDATE pgbench_accounts SET abalance = abalance + -4331 WHERE aid = " + std::to_string(n);
  r.instance = "pgwarden-1";
  r.in_transaction = true;
  r.outcome = "ok";
  r.tag = "UPDATE 1";
  r.rows = 1;
  r.duration_us = 212;
  return r;
}

void record_body(benchmark::State& state) {
  const audit::Record r = pgbench_update(383929);
  for (auto _ : state) {
    std::string body = audit::record_body(r);
    benchmark::DoNotOptimize(body.data());
  }
}
BENCHMARK(record_body);

void seal(benchmark::State& state) {
  audit::Chain chain(state.range(0) != 0 ? audit::Hasher(std::string(32, 'k')) : audit::Hasher());
  const std::string body = audit::record_body(pgbench_update(383929));
  std::uint64_t seq = 0;
  for (auto _ : state) {
    auto line = chain.seal(body, ++seq);
    benchmark::DoNotOptimize(line->data());
  }
  state.SetLabel(state.range(0) != 0 ? "hmac-sha256" : "sha256");
}
BENCHMARK(seal)->Arg(0)->Arg(1);

// Records appended by this thread and written by the writer thread; the time is this thread's, the writer's
// CPU is reported as a counter (per record).
void append_and_write(benchmark::State& state) {
  const pgw::bench::AuditScratch scratch("audit-record");
  std::uint64_t records = 0;
  {
    audit::AuditLog log(scratch.settings());
    const audit::Record r = pgbench_update(383929);
    const auto cpu0 = std::clock();
    for (auto _ : state) {
      if (!log.append(r).ok()) state.SkipWithError("append refused");
      ++records;
      if (records % 4096 == 0) log.flush(std::chrono::seconds(10));  // stay below the queue's bounds
    }
    log.flush(std::chrono::seconds(10));
    const double process_cpu = static_cast<double>(std::clock() - cpu0) / CLOCKS_PER_SEC;
    state.counters["process_cpu_ns_per_record"] =
        records == 0 ? 0.0 : process_cpu * 1e9 / static_cast<double>(records);
  }
}
BENCHMARK(append_and_write)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
