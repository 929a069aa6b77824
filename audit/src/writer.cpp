// The audit writer: a bounded queue filled by the I/O threads, drained in batches (group commit) by one
// thread.
#include <pthread.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <stdexcept>
#include <string_view>
#include <thread>
#include <vector>

#include "body.hpp"
#include "pgw/audit/log.hpp"
#include "sink.hpp"

namespace pgw::audit {

namespace {

using steady = std::chrono::steady_clock;

// What a queued record costs against audit.queue_size: its rendered line and the queue entry.
std::size_t queued_bytes(const detail::UnnumberedBody& body) {
  return body.text.capacity() + 64;
}

// Room reserved in a rendered body for its seq's digits and the seal, so neither reallocates it.
constexpr std::size_t kSpare = 24 + Chain::kSealBytes;

// Written lines go back to the appending threads to render the next records into, so that a record costs no
// allocation once the log is warm. Bounded: by their total size (a batch's worth at a few thousand records a
// second), and a line longer than kSpareLineCapacity is freed rather than kept, here or on a refused append.
constexpr std::size_t kSpareBytes = std::size_t{1} << 20;
constexpr std::size_t kSpareLineCapacity = 4096;
// Records a batch keeps room for once written (a few tens of milliseconds' worth at a high rate).
constexpr std::size_t kKeptBatchCapacity = 4096;

// Each appending thread's buffer for the next rendered record. A flag outlives it: an append from a
// thread_local destructor after it is gone renders into a buffer of its own.
constinit thread_local bool render_buffer_gone = false;
struct RenderBuffer {
  std::string text;
  ~RenderBuffer() { render_buffer_gone = true; }
};
std::string* render_buffer() {
  if (render_buffer_gone) return nullptr;
  thread_local RenderBuffer buffer;
  return &buffer.text;
}

std::string host_name() {
  char host[256] = {};
  if (::gethostname(host, sizeof host - 1) == 0 && host[0] != '\0') return host;
  return "localhost";
}

}  // namespace

std::string_view to_string(AppendStatus s) noexcept {
  switch (s) {
    case AppendStatus::queued:
      return "queued";
    case AppendStatus::failing:
      return "failing";
    case AppendStatus::queue_full:
      return "queue full";
    case AppendStatus::dropped:
      return "dropped";
    case AppendStatus::stopped:
      return "stopped";
  }
  return "?";
}

struct AuditLog::Impl {
  // A queued record: rendered by the appending thread (so no Record crosses threads), numbered and sealed by
  // the writer.
  struct Pending {
    std::uint64_t seq = 0;
    detail::UnnumberedBody body;
    std::optional<std::string> line;  // sealed into the chain
    OnDurable on_durable;
    std::size_t bytes = 0;
    bool called = false;
    bool numbered = false;
  };

  Impl(const config::AuditSettings& settings, Options options)
      : cfg(settings),
        opt(std::move(options)),
        instance(settings.instance.empty() ? host_name() : settings.instance),
        hasher(read_key(settings)),
        chain(hasher) {
    if (cfg.sinks.empty()) throw std::runtime_error("audit.sinks is empty");
    detail::Tail tail;
    if (cfg.has_sink(config::AuditSink::file)) {
      file = std::make_unique<detail::FileSink>(cfg.path, cfg.rotate_size, cfg.rotate_keep);
      tail = file->recover(hasher, opt.alarm);
      if (!tail.instance.empty() && tail.instance != instance) {
        alarm("audit log " + cfg.path.string() + ": continuing the chain of instance \"" + tail.instance +
              "\" as instance \"" + instance + "\": audit verify will see a new chain starting at seq " +
              std::to_string(tail.last_seq + 1));
      }
    }
    if (cfg.has_sink(config::AuditSink::standard_output)) out = std::make_unique<detail::StdoutSink>();
    if (cfg.has_sink(config::AuditSink::syslog))
      sys = std::make_unique<detail::SyslogSink>(opt.syslog_socket);
    chain = Chain(hasher, tail.last_seq, tail.last_hash);
    next_seq = tail.last_seq + 1;
    handled_seq = tail.last_seq;
    stats.last_seq = tail.last_seq;
    stats.chain_head = to_hex(tail.last_hash);
    written_seq = tail.last_seq;
    written_hash = tail.last_hash;
    if (file) kept_from = file->kept_from().value_or(next_seq);
    file_done = out_done = sys_done = tail.last_seq;
    const auto now = steady::now();
    last_sync = now;
    next_checkpoint = now + cfg.checkpoint_interval;
    thread = std::thread([this] {
      pthread_setname_np(pthread_self(), "pgw-audit");
      run();
    });
  }

  static Hasher read_key(const config::AuditSettings& s) {
    if (s.hmac_key_file.empty()) return Hasher{};
    std::string error;
    auto key = config::read_key_file(s.hmac_key_file, error);
    if (!key) throw std::runtime_error("audit.hmac_key_file: " + error);
    return Hasher(std::move(*key));
  }

  // The queue's records behind the batch's (same order), under mu.
  void take_queue_locked() {
    for (Pending& p : queue)
      batch.push_back(std::move(p));
    queue.clear();
  }

  void alarm(const std::string& message) const {
    if (!opt.alarm) return;
    try {
      opt.alarm(message);
    } catch (...) {  // NOLINT(bugprone-empty-catch): the writer thread must survive a faulty callback
    }
  }

  void stop_and_join() {
    {
      std::lock_guard lk(mu);
      stop = true;
    }
    wake.notify_all();
    if (thread.joinable()) thread.join();
  }

  // ---- the I/O threads' side (under mu) ----

  std::uint64_t push_locked(detail::UnnumberedBody&& body, OnDurable&& cb) {
    const std::uint64_t seq = next_seq++;
    const std::size_t bytes = queued_bytes(body);
    queue.push_back(Pending{seq, std::move(body), std::nullopt, std::move(cb), bytes, false, false});
    ++stats.appended;
    ++stats.queue_records;
    stats.queue_bytes += bytes;
    return seq;
  }

  // Drops are never silent: the first record accepted after them says how many there were.
  void enqueue_dropped_locked() {
    if (dropped_pending == 0) return;
    Record d;
    d.event = Event::records_dropped;
    d.ts = std::chrono::system_clock::now();
    d.dropped = dropped_pending;
    dropped_pending = 0;
    push_locked(detail::unnumbered_body(d, d.ts, instance, kSpare), {});
  }

  Appended append(const Record& r, OnDurable&& cb) {
    const auto ts = r.ts == std::chrono::system_clock::time_point{} ? std::chrono::system_clock::now() : r.ts;
    // Rendered here, outside the lock: the writer thread only numbers, seals and writes.
    std::string* buffer = render_buffer();
    detail::UnnumberedBody body;
    if (buffer != nullptr) body.text = std::move(*buffer);
    detail::render_unnumbered(r, ts, instance, kSpare, body);
    const std::size_t bytes = queued_bytes(body);
    Appended result;
    bool first_drop = false;
    bool wake_writer = false;
    {
      std::lock_guard lk(mu);
      if (stop) return {AppendStatus::stopped, 0};
      // One record alone always fits, so a statement larger than queue_size can still be audited.
      const bool full = stats.queue_records > 0 && (stats.queue_records >= cfg.queue_records ||
                                                    stats.queue_bytes + bytes > cfg.queue_size);
      const bool is_failing = failing.load();
      if (is_failing || full) {
        // Not queued: the buffer stays this thread's, unless a large statement grew it.
        if (buffer != nullptr && body.text.capacity() <= kSpareLineCapacity) *buffer = std::move(body.text);
        if (cfg.on_failure == config::AuditOnFailure::drop) {
          first_drop = dropped_pending++ == 0;
          ++stats.dropped;
          result = {AppendStatus::dropped, 0};
        } else {
          ++stats.refused;
          result = {is_failing ? AppendStatus::failing : AppendStatus::queue_full, 0};
        }
      } else {
        // A context switch per record was the audit's largest cost under load. The writer is woken only
        // when it sleeps with nothing queued; it then lets records gather for write_delay. A record a session
        // waits for (fsync = "every"), a queue half full, or a flush() cuts that short.
        const bool urgent_now = static_cast<bool>(cb) || !gathers ||
                                (stats.queue_records + 1) * 2 >= cfg.queue_records ||
                                (stats.queue_bytes + bytes) * 2 >= cfg.queue_size;
        wake_writer = (queue.empty() && writer_idle) || (urgent_now && !urgent);
        urgent = urgent || urgent_now;
        enqueue_dropped_locked();
        result = {AppendStatus::queued, push_locked(std::move(body), std::move(cb))};
        if (buffer != nullptr && !spare_lines.empty()) {
          spare_bytes -= spare_lines.back().capacity();
          *buffer = std::move(spare_lines.back());
          spare_lines.pop_back();
        }
      }
    }
    if (result.ok()) {
      if (wake_writer) wake.notify_one();
    } else if (first_drop) {
      alarm("audit log: dropping records (on_failure = \"drop\"): " +
            std::string(failing.load() ? "records cannot be written" : "the writer is behind (queue full)") +
            "; a records_dropped record with the count follows when writing works again");
    }
    return result;
  }

  // ---- the writer thread ----

  std::error_code fault(std::string_view operation) const {
    return opt.fault ? opt.fault(operation) : std::error_code{};
  }

  void complete(Pending& p, bool ok) {
    if (p.called) return;
    p.called = true;
    if (!p.on_durable) return;
    try {
      p.on_durable(ok);
    } catch (...) {
      alarm("audit log: an on_durable callback threw; ignored");
    }
  }

  std::error_code write_file() {
    std::vector<std::string_view>& lines = file_lines;  // kept: no allocation per batch
    lines.clear();
    std::uint64_t buffered = 0;
    std::uint64_t buf_last = 0;
    auto flush = [&]() -> std::error_code {
      if (lines.empty()) return {};
      if (auto ec = fault("file")) return ec;
      if (auto ec = file->write(lines)) return ec;
      file_done = buf_last;
      lines.clear();
      buffered = 0;
      return {};
    };
    for (const Pending& p : batch) {
      if (!p.line || p.seq <= file_done) continue;
      if (file->needs_rotation(buffered, p.line->size())) {
        if (auto ec = flush()) return ec;
        if (auto ec = fault("rotate")) return ec;
        if (auto k = file->kept_from_after_rotation(p.seq)) {
          // Told to the other sinks before the file goes, so that no checkpoint after it still names it.
          kept_from = *k;
          checkpoint(true);
        }
        if (auto ec = file->rotate(cfg.fsync != config::AuditFsync::off)) return ec;
        std::lock_guard lk(mu);
        ++stats.rotations;
      }
      lines.emplace_back(*p.line);
      buffered += p.line->size();
      buf_last = p.seq;
    }
    return flush();
  }

  std::error_code write_stdout() {
    for (const Pending& p : batch) {
      if (!p.line || p.seq <= out_done) continue;
      if (auto ec = fault("stdout")) return ec;
      if (auto ec = out->write(*p.line)) return ec;
      out_done = p.seq;
    }
    return {};
  }

  std::error_code write_syslog() {
    for (const Pending& p : batch) {
      if (!p.line || p.seq <= sys_done) continue;
      std::error_code ec = fault("syslog");
      if (!ec) ec = sys->write(*p.line);
      if (ec == std::errc::message_size) {
        alarm(
            "audit log: record seq " + std::to_string(p.seq) + " (" + std::to_string(p.line->size()) +
            " bytes) is too large for one syslog datagram: not sent to syslog (the file and stdout have it)");
      } else if (ec) {
        return ec;
      }
      sys_done = p.seq;
    }
    return {};
  }

  std::error_code sync_file() {
    if (auto ec = fault("fsync")) return ec;
    const auto started = steady::now();
    if (auto ec = file->sync()) return ec;
    last_sync = steady::now();
    unsynced = false;
    const auto took = std::chrono::duration_cast<std::chrono::microseconds>(last_sync - started);
    std::lock_guard lk(mu);
    ++stats.fsyncs;
    stats.last_fsync = std::chrono::system_clock::now();
    stats.fsync_us_total += static_cast<std::uint64_t>(took.count());
    stats.fsync_us_max = std::max(stats.fsync_us_max, static_cast<std::uint64_t>(took.count()));
    stats.fsync_us_last = static_cast<std::uint64_t>(took.count());
    return {};
  }

  void set_failing(std::string_view what, const std::error_code& ec) {
    const bool was = failing.exchange(true);
    {
      std::lock_guard lk(mu);
      ++stats.write_errors;
    }
    retry_at = steady::now() + cfg.retry_interval;
    if (!was) {
      const bool block = cfg.on_failure == config::AuditOnFailure::block;
      alarm("audit log: " + std::string(what) + " failed: " + ec.message() +
            (block ? "; on_failure = \"block\": modifying statements are refused until it works again"
                   : "; on_failure = \"drop\": new records are dropped (and counted) until it works again") +
            "; retrying every " + std::to_string(cfg.retry_interval.count()) + "ms");
    }
  }

  void set_working() {
    if (failing.exchange(false)) alarm("audit log: writing works again");
  }

  // Writes the batch to every sink, fsyncs as audit.fsync asks, then completes the callbacks.
  void attempt() {
    std::error_code ec;
    std::string_view what = "write";
    for (Pending& p : batch) {
      if (p.line) continue;
      if (!p.numbered) {
        detail::number(p.body, p.seq);
        p.numbered = true;
      }
      if (!chain.seal_in_place(p.body.text, p.seq)) {  // the body stays as it was, for the retry
        ec = std::make_error_code(std::errc::io_error);
        what = "hashing";
        break;
      }
      p.line = std::move(p.body.text);
    }
    if (!ec && file) {
      ec = write_file();
      what = "writing the file";
    }
    if (!ec && out) {
      ec = write_stdout();
      what = "writing to stdout";
    }
    if (!ec && sys) {
      ec = write_syslog();
      what = "writing to syslog";
    }
    if (!ec && file && cfg.fsync != config::AuditFsync::off) {
      unsynced = true;
      if (cfg.fsync == config::AuditFsync::every || steady::now() >= last_sync + cfg.fsync_interval) {
        ec = sync_file();
        what = "fsync";
      }
    }
    if (ec) {
      set_failing(what, ec);
      {
        // Records queued behind the batch fail now too, rather than keep their sessions waiting for the disk.
        std::lock_guard lk(mu);
        take_queue_locked();
      }
      for (Pending& p : batch)
        complete(p, false);  // the records stay queued: they are written when writing works again
      mark_handled();
      return;
    }
    for (Pending& p : batch)
      complete(p, true);
    written_seq = batch.back().seq;
    written_hash = chain.last_hash();
    const std::size_t n = batch.size();
    std::size_t bytes = 0;
    for (Pending& p : batch) {
      bytes += p.bytes;
      if (p.line && p.line->capacity() <= kSpareLineCapacity) written_lines.push_back(std::move(*p.line));
    }
    batch.clear();
    // Kept for the appending threads (batch and queue trade places), except after a burst.
    if (batch.capacity() > kKeptBatchCapacity) std::vector<Pending>().swap(batch);
    set_working();
    {
      std::lock_guard lk(mu);
      stats.written += n;
      stats.queue_records -= n;
      stats.queue_bytes -= bytes;
      stats.last_seq = written_seq;
      stats.chain_head = to_hex(written_hash);
      handled_seq = std::max(handled_seq, written_seq);
      enqueue_dropped_locked();
      for (std::string& line : written_lines) {
        if (spare_bytes + line.capacity() > kSpareBytes) break;
        spare_bytes += line.capacity();
        spare_lines.push_back(std::move(line));
      }
    }
    written_lines.clear();
    handled_cv.notify_all();
  }

  void mark_handled() {
    {
      std::lock_guard lk(mu);
      for (const Pending& p : batch)
        handled_seq = std::max(handled_seq, p.seq);
    }
    handled_cv.notify_all();
  }

  void checkpoint(bool kept_from_changed = false) {
    if (!out && !sys) return;  // checkpoints go to the sinks other than the file
    if (checkpointed && checkpoint_seq == written_seq && !kept_from_changed) return;
    const std::string line = checkpoint_line(std::chrono::system_clock::now(), instance, written_seq,
                                             written_hash, file ? std::optional(kept_from) : std::nullopt);
    std::error_code ec;
    if (out) {
      ec = fault("stdout");
      if (!ec) ec = out->write(line);
    }
    if (sys) {
      std::error_code e2 = fault("syslog");
      if (!e2) e2 = sys->write(line);
      if (!ec) ec = e2;
    }
    if (ec) {
      alarm("audit log: cannot write a checkpoint: " + ec.message());
      return;
    }
    checkpointed = true;
    checkpoint_seq = written_seq;
    std::lock_guard lk(mu);
    ++stats.checkpoints;
  }

  steady::time_point next_deadline() const {
    steady::time_point d = steady::now() + std::chrono::seconds(1);  // bounded: re-check now and then
    if (cfg.checkpoint_interval.count() > 0) d = std::min(d, next_checkpoint);
    if (failing.load()) {
      d = std::min(d, retry_at);
    } else if (unsynced) {
      d = std::min(d, last_sync + cfg.fsync_interval);
    }
    return d;
  }

  void run() {
    for (;;) {
      bool stopping = false;
      {
        std::unique_lock lk(mu);
        const auto deadline = next_deadline();
        auto gather = [&] {
          wake.wait_until(lk, std::min(deadline, steady::now() + cfg.write_delay),
                          [&] { return stop || urgent; });
        };
        if (gathers && busy && batch.empty() && !stop) {
          // Under load: one timed wakeup per write_delay, and no append needs to wake the writer.
          gather();
        } else {
          writer_idle = true;
          wake.wait_until(lk, deadline, [&] { return stop || (batch.empty() && !queue.empty()); });
          writer_idle = false;
          if (gathers && !stop && !urgent && batch.empty() && !queue.empty()) gather();
        }
        busy = !queue.empty();  // nothing came during a whole write_delay: sleep until woken
        urgent = false;
        stopping = stop;
        if (batch.empty()) {
          batch.swap(queue);
        } else if (stopping) {
          take_queue_locked();
        }
      }
      const auto now = steady::now();
      if (!batch.empty() && (stopping || !failing.load() || now >= retry_at)) attempt();
      if (unsynced && !failing.load() && steady::now() >= last_sync + cfg.fsync_interval) {
        if (auto ec = sync_file()) set_failing("fsync", ec);
      } else if (unsynced && failing.load() && batch.empty() && steady::now() >= retry_at) {
        if (auto ec = sync_file()) {
          set_failing("fsync", ec);
        } else {
          set_working();
        }
      }
      if (cfg.checkpoint_interval.count() > 0 && steady::now() >= next_checkpoint) {
        checkpoint();
        next_checkpoint = steady::now() + cfg.checkpoint_interval;
      }
      if (stopping) {
        if (!batch.empty()) {
          alarm("audit log: " + std::to_string(batch.size()) +
                " records could not be written before shutdown (seq " + std::to_string(batch.front().seq) +
                ".." + std::to_string(batch.back().seq) + ")");
          for (Pending& p : batch)
            complete(p, false);
          mark_handled();
        }
        if (unsynced) {
          if (auto ec = sync_file()) alarm("audit log: the final fsync failed: " + ec.message());
        }
        checkpoint();
        return;
      }
    }
  }

  config::AuditSettings cfg;
  // Records gather for write_delay before the writer takes them; with fsync = "every" sessions wait for them.
  const bool gathers = cfg.fsync != config::AuditFsync::every && cfg.write_delay.count() > 0;
  Options opt;
  std::string instance;
  Hasher hasher;
  Chain chain;
  std::unique_ptr<detail::FileSink> file;
  std::unique_ptr<detail::StdoutSink> out;
  std::unique_ptr<detail::SyslogSink> sys;

  mutable std::mutex mu;
  std::condition_variable wake;
  std::condition_variable handled_cv;
  // The writer swaps the whole queue for its empty batch: both keep their storage, so that neither an append
  // nor a batch allocates (a deque allocated a block every few records on the I/O threads and freed it on the
  // writer's, which glibc's allocator makes dear).
  std::vector<Pending> queue;
  std::uint64_t next_seq = 1;
  std::uint64_t handled_seq = 0;
  std::uint64_t dropped_pending = 0;
  bool stop = false;
  bool writer_idle = false;  // the writer sleeps until something is queued: the next append wakes it
  bool urgent = false;       // something queued must not wait for write_delay
  bool busy = false;         // writer thread only: records came in the last write_delay
  Stats stats;
  std::vector<std::string> spare_lines;  // written lines, for the appending threads to render into
  std::size_t spare_bytes = 0;           // their capacity
  // Read by every session for every statement: a cache line of its own, apart from what the lock guards.
  alignas(64) std::atomic<bool> failing{false};

  // Writer thread only.
  alignas(64) std::vector<Pending> batch;
  std::vector<std::string> written_lines;  // on their way to spare_lines
  std::vector<std::string_view> file_lines;
  std::uint64_t file_done = 0, out_done = 0, sys_done = 0;  // last seq each sink has
  std::uint64_t written_seq = 0;
  Digest written_hash{};
  bool checkpointed = false;
  std::uint64_t checkpoint_seq = 0;
  std::uint64_t kept_from = 1;  // the oldest seq the file sink's files hold (checkpoints carry it)
  bool unsynced = false;
  steady::time_point last_sync, next_checkpoint, retry_at;

  std::thread thread;  // last: started when everything above is ready
};

AuditLog::AuditLog(const config::AuditSettings& settings, Options options)
    : impl_(std::make_unique<Impl>(settings, std::move(options))) {}

AuditLog::~AuditLog() {
  try {
    impl_->stop_and_join();
  } catch (...) {  // NOLINT(bugprone-empty-catch): a destructor must not throw
  }
}

Appended AuditLog::append(const Record& record, OnDurable on_durable) {
  return impl_->append(record, std::move(on_durable));
}

bool AuditLog::flush(std::chrono::milliseconds timeout) {
  std::unique_lock lk(impl_->mu);
  const std::uint64_t target = impl_->next_seq - 1;
  if (impl_->handled_seq < target && !impl_->urgent) {
    impl_->urgent = true;
    impl_->wake.notify_one();
  }
  return impl_->handled_cv.wait_for(lk, timeout, [&] { return impl_->handled_seq >= target; });
}

Stats AuditLog::stats() const {
  std::lock_guard lk(impl_->mu);
  Stats s = impl_->stats;
  s.failing = impl_->failing.load();
  return s;
}

bool AuditLog::failing() const noexcept {
  return impl_->failing.load();
}

const std::string& AuditLog::instance() const noexcept {
  return impl_->instance;
}

}  // namespace pgw::audit
