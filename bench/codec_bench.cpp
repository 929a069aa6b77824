// Codec throughput: frames and bytes per second through the framer on recorded pgbench streams, delivered in
// chunks cut at random points (as reads from a socket would be).
#include <benchmark/benchmark.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <vector>

#include "pgw/protocol/buffer.hpp"
#include "pgw/protocol/framer.hpp"
#include "pgw/protocol/messages.hpp"
#include "pgw/protocol/scanner.hpp"

namespace {

using namespace pgw::protocol;

std::vector<std::uint8_t> load(const char* name) {
  std::filesystem::path p = std::filesystem::path(PGW_BENCH_DATA) / name;
  std::ifstream in(p, std::ios::binary);
  std::vector<std::uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (bytes.empty())
    throw std::runtime_error("missing benchmark data " + p.string() + " (run bench/record_stream.py)");
  return bytes;
}

// Chunk boundaries at random points (fixed seed): between 1 byte and 16 kB, like socket reads.
std::vector<std::size_t> cut_points(std::size_t size, std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<std::size_t> len(1, 16384);
  std::vector<std::size_t> cuts;
  for (std::size_t at = 0; at < size;) {
    at = std::min(size, at + len(rng));
    cuts.push_back(at);
  }
  return cuts;
}

bool relay_inspects(char type) {
  return type == backend::ready_for_query || type == backend::parameter_status ||
         type == backend::error_response || type == frontend::query || type == frontend::sync;
}

// What a relay direction does per read: append the chunk, walk the messages, decode ReadyForQuery, consume.
void scan_stream(benchmark::State& state, const char* file) {
  const auto stream = load(file);
  const auto cuts = cut_points(stream.size(), 42);
  std::size_t frames = 0;
  for (auto _ : state) {
    Buffer buf(16384);
    Scanner scanner(1 << 20);
    std::size_t from = 0;
    for (std::size_t cut : cuts) {
      std::size_t n = cut - from;
      buf.reserve(buf.size() + n);
      std::memcpy(buf.writable().data(), stream.data() + from, n);
      buf.commit(n);
      from = cut;
      Bytes data = buf.readable();
      std::size_t pos = 0;
      while (pos < data.size()) {
        auto item = scanner.next(data.subspan(pos), relay_inspects);
        if (item.kind == Scanner::Kind::need_more) break;
        if (item.kind == Scanner::Kind::error) {
          state.SkipWithError("framing error");
          return;
        }
        if (item.kind == Scanner::Kind::message) {
          ++frames;
          if (item.header.type == backend::ready_for_query) {
            backend::ReadyForQuery z;
            benchmark::DoNotOptimize(decode(item.body, z));
          }
        }
        pos += item.wire.size();
      }
      buf.consume(pos);
    }
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * stream.size()));
  state.counters["frames/s"] = benchmark::Counter(static_cast<double>(frames), benchmark::Counter::kIsRate);
}

// The whole-frame parser alone over a contiguous stream.
void parse_frames(benchmark::State& state, const char* file) {
  const auto stream = load(file);
  std::size_t frames = 0;
  for (auto _ : state) {
    Bytes rest(stream);
    while (!rest.empty()) {
      auto r = parse_frame(rest, 1 << 20);
      if (r.status != FrameStatus::complete) break;
      benchmark::DoNotOptimize(r.frame.body.data());
      rest = rest.subspan(r.frame.wire_size);
      ++frames;
    }
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * stream.size()));
  state.counters["frames/s"] = benchmark::Counter(static_cast<double>(frames), benchmark::Counter::kIsRate);
}

}  // namespace

BENCHMARK_CAPTURE(scan_stream, backend_simple, "pgbench_simple_backend.bin");
BENCHMARK_CAPTURE(scan_stream, frontend_simple, "pgbench_simple_frontend.bin");
BENCHMARK_CAPTURE(scan_stream, backend_extended, "pgbench_extended_backend.bin");
BENCHMARK_CAPTURE(scan_stream, frontend_extended, "pgbench_extended_frontend.bin");
BENCHMARK_CAPTURE(parse_frames, backend_extended, "pgbench_extended_backend.bin");
BENCHMARK_CAPTURE(parse_frames, frontend_extended, "pgbench_extended_frontend.bin");

BENCHMARK_MAIN();
