// The audit file sink: append whole lines, fdatasync, rotate by size, and pick the chain up again at
// start-up.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <charconv>
#include <stdexcept>

#include "line.hpp"
#include "sink.hpp"

namespace pgw::audit::detail {

namespace {

std::error_code last_error() {
  return {errno, std::generic_category()};
}

// pread all of [offset, offset + n).
bool read_at(int fd, std::uint64_t offset, std::size_t n, std::string& out) {
  out.resize(n);
  std::size_t got = 0;
  while (got < n) {
    const ssize_t r = ::pread(fd, out.data() + got, n - got, static_cast<off_t>(offset + got));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    got += static_cast<std::size_t>(r);
  }
  return true;
}

// Offset just after the last '\n' strictly before `end`, or 0.
std::optional<std::uint64_t> line_start_before(int fd, std::uint64_t end) {
  constexpr std::uint64_t chunk = std::uint64_t{64} * 1024;
  std::string buf;
  while (end > 0) {
    const std::uint64_t from = end > chunk ? end - chunk : 0;
    if (!read_at(fd, from, static_cast<std::size_t>(end - from), buf)) return std::nullopt;
    const auto nl = buf.rfind('\n');
    if (nl != std::string::npos) return from + nl + 1;
    end = from;
  }
  return 0;
}

void dir_sync(const std::filesystem::path& file) {
  std::filesystem::path dir = file.parent_path();
  if (dir.empty()) dir = ".";
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  ::fsync(fd);  // best effort: a rename that is lost in a power cut shows up as a seq gap in verify
  ::close(fd);
}

}  // namespace

FileSink::FileSink(std::filesystem::path path, std::uint64_t rotate_size, unsigned rotate_keep)
    : path_(std::move(path)), rotate_size_(rotate_size), rotate_keep_(rotate_keep) {}

FileSink::~FileSink() {
  if (fd_ >= 0) ::close(fd_);
}

std::filesystem::path FileSink::rotated(unsigned n) const {
  std::string name = path_.string();
  name += '.';
  name += std::to_string(n);
  return name;
}

Tail FileSink::recover(const Hasher& hasher, const std::function<void(std::string_view)>& alarm) {
  Tail tail;
  for (const auto& candidate : {path_, rotated(1)}) {
    const int fd = ::open(candidate.c_str(), O_RDWR | O_CLOEXEC);
    if (fd < 0) {
      if (errno == ENOENT) continue;
      throw std::runtime_error("cannot open the audit log " + candidate.string() + ": " +
                               last_error().message());
    }
    struct Closer {
      int fd;
      ~Closer() { ::close(fd); }
    } closer{fd};
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
      throw std::runtime_error("cannot stat the audit log " + candidate.string() + ": " +
                               last_error().message());
    }
    auto size = static_cast<std::uint64_t>(st.st_size);
    if (size == 0) continue;
    std::string last;
    if (!read_at(fd, size - 1, 1, last)) {
      throw std::runtime_error("cannot read the audit log " + candidate.string());
    }
    bool ends_in_newline = last == "\n";
    if (!ends_in_newline) {
      const auto cut = line_start_before(fd, size);
      std::string tail_line;
      std::string ignored;
      Digest h{};
      if (cut && read_at(fd, *cut, static_cast<std::size_t>(size - *cut), tail_line)) {
        // A whole record that only lacks its newline (a write cut just before it, or an edit that removed
        // it) is kept: cutting it could delete a record that was reported durable.
        auto parsed = parse_line(tail_line, ignored);
        if (parsed && parsed->event != "checkpoint" && hasher.hash(parsed->hashed, h) && h == parsed->hash) {
          if (::pwrite(fd, "\n", 1, static_cast<off_t>(size)) != 1 || ::fdatasync(fd) != 0)
            throw std::runtime_error("cannot end the last line of the audit log " + candidate.string());
          if (alarm) {
            alarm("audit log " + candidate.string() +
                  ": the last record lacked its newline (a write cut just before it, or an edit); kept, "
                  "newline added");
          }
          ++size;
          ends_in_newline = true;
        }
      }
    }
    if (!ends_in_newline) {
      // A crash during a write left part of a line: it was never reported durable, so cut it off rather than
      // chain onto bytes that are not a record.
      const auto cut = line_start_before(fd, size);
      if (!cut || ::ftruncate(fd, static_cast<off_t>(*cut)) != 0 || ::fdatasync(fd) != 0) {
        throw std::runtime_error("cannot cut the torn last line off the audit log " + candidate.string());
      }
      if (alarm) {
        alarm("audit log " + candidate.string() + ": cut off a torn last line of " +
              std::to_string(size - *cut) + " bytes at offset " + std::to_string(*cut) +
              " (a crash during a write); the chain continues from the last complete record");
      }
      size = *cut;
      if (size == 0) continue;
    }
    const auto start = line_start_before(fd, size - 1);
    std::string line;
    if (!start || !read_at(fd, *start, static_cast<std::size_t>(size - 1 - *start), line)) {
      throw std::runtime_error("cannot read the audit log " + candidate.string());
    }
    std::string error;
    auto parsed = parse_line(line, error);
    if (parsed && parsed->event == "checkpoint")
      error = "a checkpoint line, which the file sink never writes";
    if (!parsed || parsed->event == "checkpoint") {
      throw std::runtime_error("audit log " + candidate.string() +
                               ": the last line is not an audit record (" + error +
                               "); refusing to continue the chain from it: move the file away");
    }
    Digest h{};
    if (!hasher.hash(parsed->hashed, h) || h != parsed->hash) {
      throw std::runtime_error("audit log " + candidate.string() +
                               ": the hash of the last record does not match its line (was "
                               "audit.hmac_key_file changed, or the file edited?); refusing to continue the "
                               "chain: move the file away or restore the key");
    }
    tail.last_seq = parsed->seq;
    tail.last_hash = parsed->hash;
    tail.instance = parsed->instance;
    break;
  }
  if (auto ec = open()) {
    throw std::runtime_error("cannot open the audit log " + path_.string() + ": " + ec.message());
  }
  return tail;
}

std::error_code FileSink::open() {
  if (fd_ >= 0) return {};
  const int fd = ::open(path_.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return last_error();
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    auto ec = last_error();
    ::close(fd);
    return ec;
  }
  fd_ = fd;
  size_ = static_cast<std::uint64_t>(st.st_size);
  return {};
}

std::error_code FileSink::write(std::span<const std::string_view> lines) {
  if (auto ec = open()) return ec;
  std::size_t total = 0;
  for (std::string_view l : lines)
    total += l.size();
  std::size_t done = 0;         // bytes written by this call
  std::size_t line = 0;         // first line not completely written
  std::size_t line_offset = 0;  // bytes of it already written
  while (done < total) {
    std::array<iovec, 256> iov{};  // below IOV_MAX (1024 on Linux)
    std::size_t count = 0;
    for (std::size_t i = line; i < lines.size() && count < iov.size(); ++i) {
      const std::size_t skip = i == line ? line_offset : 0;
      if (lines[i].size() == skip) continue;
      iov[count].iov_base = const_cast<char*>(lines[i].data() + skip);
      iov[count].iov_len = lines[i].size() - skip;
      ++count;
    }
    const ssize_t n = ::writev(fd_, iov.data(), static_cast<int>(count));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const std::error_code ec = n < 0 ? last_error() : std::make_error_code(std::errc::io_error);
      if (done != 0 && ::ftruncate(fd_, static_cast<off_t>(size_)) != 0) {
        // Cannot cut the partial line back: reopen later; recover() at the next start cuts a torn tail.
        ::close(fd_);
        fd_ = -1;
      }
      return ec;
    }
    done += static_cast<std::size_t>(n);
    // Step over what was written: whole lines, then part of one.
    std::size_t left = static_cast<std::size_t>(n);
    while (left > 0 && line < lines.size()) {
      const std::size_t rest = lines[line].size() - line_offset;
      if (left < rest) {
        line_offset += left;
        left = 0;
      } else {
        left -= rest;
        ++line;
        line_offset = 0;
      }
    }
  }
  size_ += total;
  return {};
}

std::error_code FileSink::sync() {
  if (fd_ < 0) return std::make_error_code(std::errc::bad_file_descriptor);
  if (::fdatasync(fd_) != 0) return last_error();
  return {};
}

bool FileSink::needs_rotation(std::uint64_t buffered, std::size_t next) const noexcept {
  const std::uint64_t have = size_ + buffered;
  return rotate_size_ != 0 && have != 0 && have + next > rotate_size_;
}

namespace {

// The seq of a file's first record, from the start of its first line (pgwarden writes "ts" then "seq").
std::optional<std::uint64_t> first_seq(const std::filesystem::path& p) {
  const int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  char buf[128];
  const ssize_t n = ::pread(fd, buf, sizeof buf, 0);
  ::close(fd);
  if (n <= 0) return std::nullopt;
  const std::string_view head(buf, static_cast<std::size_t>(n));
  constexpr std::string_view key = ",\"seq\":";
  const auto at = head.find(key);
  if (at == std::string_view::npos) return std::nullopt;
  std::uint64_t seq = 0;
  const char* begin = head.data() + at + key.size();
  const auto [end, ec] = std::from_chars(begin, head.data() + head.size(), seq);
  if (ec != std::errc{} || end == begin) return std::nullopt;
  return seq;
}

}  // namespace

std::optional<std::uint64_t> FileSink::kept_from() const {
  for (unsigned i = rotate_keep_; i >= 1; --i) {
    if (auto seq = first_seq(rotated(i))) return seq;
  }
  return first_seq(path_);
}

std::optional<std::uint64_t> FileSink::kept_from_after_rotation(std::uint64_t next_seq) const {
  if (rotate_keep_ == 0) return next_seq;
  std::error_code ec;
  if (!std::filesystem::exists(rotated(rotate_keep_), ec)) return std::nullopt;
  for (unsigned i = rotate_keep_ - 1; i >= 1; --i) {
    if (auto seq = first_seq(rotated(i))) return seq;
  }
  if (auto seq = first_seq(path_)) return seq;
  return next_seq;
}

std::error_code FileSink::rotate(bool sync_first) {
  if (fd_ >= 0 && sync_first) {
    if (auto ec = sync()) return ec;
  }
  std::error_code ec;
  if (rotate_keep_ == 0) {
    std::filesystem::remove(path_, ec);
  } else {
    for (unsigned i = rotate_keep_; i > 1; --i) {
      if (std::filesystem::exists(rotated(i - 1), ec))
        std::filesystem::rename(rotated(i - 1), rotated(i), ec);
      if (ec) return ec;
    }
    std::filesystem::rename(path_, rotated(1), ec);
  }
  if (ec) return ec;
  if (fd_ >= 0) ::close(fd_);  // it now names path.1 (or nothing): never write to it again
  fd_ = -1;
  size_ = 0;
  dir_sync(path_);
  return open();
}

}  // namespace pgw::audit::detail
