// The audit log's sinks: a rotated, fsynced file; stdout; syslog (RFC 5424 datagrams to /dev/log).
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>

#include "pgw/audit/log.hpp"

namespace pgw::audit::detail {

// Where the chain stands in the newest file at start-up.
struct Tail {
  std::uint64_t last_seq = 0;  // 0 = no record yet: seq 1 with prev 0...0 comes next
  Digest last_hash{};
  std::string instance;
};

class FileSink {
 public:
  FileSink(std::filesystem::path path, std::uint64_t rotate_size, unsigned rotate_keep);
  ~FileSink();
  FileSink(const FileSink&) = delete;
  FileSink& operator=(const FileSink&) = delete;

  // Reads the end of the current file (or of path.1 when the current one is missing or empty): a torn last
  // line (no '\n') is cut off, with a warning through `alarm`; the last complete line must be a record whose
  // hash `hasher` recomputes, or this throws std::runtime_error (start-up only).
  Tail recover(const Hasher& hasher, const std::function<void(std::string_view)>& alarm);

  // Appends whole lines (gathered: one writev, not a copy into one buffer); on a failed or short write the
  // file is cut back to where it was, so a line is never left half-written by an error we saw.
  std::error_code write(std::span<const std::string_view> lines);
  std::error_code sync();
  // True when `next` more bytes after `buffered` unwritten ones would take a non-empty file past rotate_size
  // (a single line larger than rotate_size still goes into a file of its own).
  bool needs_rotation(std::uint64_t buffered, std::size_t next) const noexcept;
  // path -> path.1 -> ... -> path.<rotate_keep> (the oldest is replaced), then a new empty path.
  std::error_code rotate(bool sync_first);
  // The oldest seq the files hold (the first record of the oldest one); nullopt when they hold none.
  std::optional<std::uint64_t> kept_from() const;
  // What kept_from() will be after the next rotate() when it drops a file (path.<rotate_keep>, or the current
  // file with rotate_keep = 0); nullopt when it drops none. `next_seq`: the seq the new file starts with.
  std::optional<std::uint64_t> kept_from_after_rotation(std::uint64_t next_seq) const;
  const std::filesystem::path& path() const noexcept { return path_; }
  std::uint64_t size() const noexcept { return size_; }

 private:
  std::error_code open();
  std::filesystem::path rotated(unsigned n) const;

  std::filesystem::path path_;
  std::uint64_t rotate_size_;
  unsigned rotate_keep_;
  int fd_ = -1;
  std::uint64_t size_ = 0;
};

class StdoutSink {
 public:
  std::error_code write(std::string_view lines);
};

// RFC 5424 (section 6) messages over a Unix datagram socket: facility authpriv (10), severity info (6), so
// PRI 86; APP-NAME pgwarden, MSGID "audit"; MSG is the JSON line without its '\n'. One datagram per line.
class SyslogSink {
 public:
  explicit SyslogSink(std::filesystem::path socket_path);
  ~SyslogSink();
  SyslogSink(const SyslogSink&) = delete;
  SyslogSink& operator=(const SyslogSink&) = delete;
  // One line (with or without its '\n'). std::errc::message_size: too big for one datagram (never retried).
  std::error_code write(std::string_view line);

 private:
  std::error_code connect();
  std::filesystem::path socket_path_;
  std::string hostname_;
  int fd_ = -1;
};

}  // namespace pgw::audit::detail
