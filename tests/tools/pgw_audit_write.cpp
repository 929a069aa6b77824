// Test tool: appends N statement records through AuditLog with a given [audit] setup, for the verify tests.
//   pgw_audit_write --path FILE --count N [--hmac-key-file KEY] [--instance NAME] [--rotate-size BYTES]
//                   [--rotate-keep N] [--sinks file,stdout,syslog] [--fsync every|batch|off]
//                   [--checkpoint-interval MS] [--threads N]
// Exit 0 when every record was queued and reported durable; 1 otherwise; 2 on bad arguments.
#include <atomic>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <iostream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "pgw/audit/log.hpp"

namespace {

bool to_uint(std::string_view s, std::uint64_t& out) {
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc{} && p == s.data() + s.size();
}

int usage(std::string_view why) {
  std::cerr
      << "pgw_audit_write: " << why
      << "\nusage: pgw_audit_write --path FILE --count N [--hmac-key-file KEY] [--instance NAME] "
         "[--rotate-size BYTES] [--rotate-keep N] [--sinks file,stdout,syslog] [--fsync every|batch|off] "
         "[--checkpoint-interval MS] [--threads N]\n";
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace pgw;
  config::AuditSettings s;
  s.instance = "test-instance";
  s.rotate_size = 0;
  s.checkpoint_interval = std::chrono::milliseconds(0);
  std::uint64_t count = 0, threads = 1;
  for (int i = 1; i < argc; ++i) {
    const std::string_view flag = argv[i];
    if (i + 1 >= argc) return usage("missing value after " + std::string(flag));
    const std::string_view v = argv[++i];
    std::uint64_t n = 0;
    if (flag == "--path") {
      s.path = std::string(v);
    } else if (flag == "--count" && to_uint(v, n)) {
      count = n;
    } else if (flag == "--hmac-key-file") {
      s.hmac_key_file = std::string(v);
    } else if (flag == "--instance") {
      s.instance = std::string(v);
    } else if (flag == "--rotate-size" && to_uint(v, n)) {
      s.rotate_size = n;
    } else if (flag == "--rotate-keep" && to_uint(v, n)) {
      s.rotate_keep = static_cast<unsigned>(n);
    } else if (flag == "--checkpoint-interval" && to_uint(v, n)) {
      s.checkpoint_interval = std::chrono::milliseconds(n);
    } else if (flag == "--threads" && to_uint(v, n) && n > 0 && n <= 64) {
      threads = n;
    } else if (flag == "--fsync") {
      if (v == "every") {
        s.fsync = config::AuditFsync::every;
      } else if (v == "batch") {
        s.fsync = config::AuditFsync::batch;
      } else if (v == "off") {
        s.fsync = config::AuditFsync::off;
      } else {
        return usage("bad --fsync");
      }
    } else if (flag == "--sinks") {
      s.sinks.clear();
      std::string_view rest = v;
      while (!rest.empty()) {
        const auto comma = rest.find(',');
        const std::string_view name = rest.substr(0, comma);
        if (name == "file") {
          s.sinks.push_back(config::AuditSink::file);
        } else if (name == "stdout") {
          s.sinks.push_back(config::AuditSink::standard_output);
        } else if (name == "syslog") {
          s.sinks.push_back(config::AuditSink::syslog);
        } else {
          return usage("unknown sink " + std::string(name));
        }
        rest = comma == std::string_view::npos ? std::string_view{} : rest.substr(comma + 1);
      }
    } else {
      return usage("bad argument " + std::string(flag) + " " + std::string(v));
    }
  }
  if (count == 0) return usage("--count N (N > 0) is required");

  std::atomic<std::uint64_t> ok{0}, failed{0};
  try {
    audit::AuditLog log(s, {[](std::string_view m) { std::cerr << "alarm: " << m << "\n"; }, {}, "/dev/log"});
    std::vector<std::thread> workers;
    for (std::uint64_t t = 0; t < threads; ++t) {
      workers.emplace_back([&, t] {
        for (std::uint64_t i = t; i < count; i += threads) {
          audit::Record r;
          r.session = std::string("s").append(std::to_string(t)).append("-").append(std::to_string(i));
          r.client_addr = "10.0.1.5";
          r.client_port = 51234;
          r.user = "jheuser";
          r.database = "jhe_production";
          r.application_name = "django \"quoted\" \\ app";
          r.tls = audit::TlsInfo{"TLSv1.3", "TLS_AES_256_GCM_SHA384", std::nullopt};
          r.server = "127.0.0.1:5432";
          r.backend_pid = 4242;
          r.protocol = "simple";
          r.command = "INSERT";
          r.statement_class = "mod";
          r.objects = {"public.obs"};
          r.statement = "INSERT INTO obs VALUES (" + std::to_string(i) + ", 'caf\xc3\xa9 \x01\n\xff')";
          r.params.kind = audit::Params::Kind::redacted;
          r.in_transaction = false;
          r.outcome = "ok";
          r.tag = "INSERT 0 1";
          r.rows = 1;
          r.duration_us = 512;
          auto res = log.append(r, [&](bool good) { (good ? ok : failed).fetch_add(1); });
          if (!res.ok()) failed.fetch_add(1);
        }
      });
    }
    for (auto& w : workers)
      w.join();
    if (!log.flush(std::chrono::seconds(60))) {
      std::cerr << "pgw_audit_write: records still pending after 60s\n";
      return 1;
    }
  } catch (const std::exception& e) {
    std::cerr << "pgw_audit_write: " << e.what() << "\n";
    return 1;
  }
  if (ok.load() != count || failed.load() != 0) {
    std::cerr << "pgw_audit_write: " << ok.load() << " durable, " << failed.load() << " failed of " << count
              << "\n";
    return 1;
  }
  return 0;
}
