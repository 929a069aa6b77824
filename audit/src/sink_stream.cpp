// The audit stdout and syslog sinks: the same chained lines as the file, one JSON line per record.
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include "sink.hpp"

namespace pgw::audit::detail {

std::error_code StdoutSink::write(std::string_view lines) {
  std::size_t done = 0;
  while (done < lines.size()) {
    const ssize_t n = ::write(STDOUT_FILENO, lines.data() + done, lines.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0)
      return n < 0 ? std::error_code(errno, std::generic_category())
                   : std::make_error_code(std::errc::io_error);
    done += static_cast<std::size_t>(n);
  }
  return {};
}

namespace {

std::string syslog_host() {
  char host[256] = {};
  if (::gethostname(host, sizeof host - 1) != 0 || host[0] == '\0') return std::string(1, '-');  // NILVALUE
  return std::string(host);
}

}  // namespace

SyslogSink::SyslogSink(std::filesystem::path socket_path)
    : socket_path_(std::move(socket_path)), hostname_(syslog_host()) {}

SyslogSink::~SyslogSink() {
  if (fd_ >= 0) ::close(fd_);
}

std::error_code SyslogSink::connect() {
  if (fd_ >= 0) return {};
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  const std::string p = socket_path_.string();
  if (p.size() >= sizeof addr.sun_path) return std::make_error_code(std::errc::filename_too_long);
  std::memcpy(addr.sun_path, p.c_str(), p.size() + 1);
  const int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return {errno, std::generic_category()};
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    std::error_code ec(errno, std::generic_category());
    ::close(fd);
    return ec;
  }
  fd_ = fd;
  return {};
}

std::error_code SyslogSink::write(std::string_view line) {
  if (!line.empty() && line.back() == '\n') line.remove_suffix(1);
  if (auto ec = connect()) return ec;
  // RFC 5424 section 6: <PRI>VERSION TIMESTAMP HOSTNAME APP-NAME PROCID MSGID STRUCTURED-DATA MSG
  std::string msg = "<86>1 " + format_ts(std::chrono::system_clock::now()) + " " + hostname_ + " pgwarden " +
                    std::to_string(::getpid()) + " audit - ";
  msg.append(line);
  for (;;) {
    const ssize_t n = ::send(fd_, msg.data(), msg.size(),
                             MSG_NOSIGNAL | MSG_DONTWAIT);  // a stalled daemon is a failure, not a hang
    if (n < 0 && errno == EINTR) continue;
    if (n == static_cast<ssize_t>(msg.size())) return {};
    std::error_code ec =
        n < 0 ? std::error_code(errno, std::generic_category()) : std::make_error_code(std::errc::io_error);
    if (ec != std::errc::message_size) {
      ::close(fd_);  // the syslog daemon may have restarted: connect again next time
      fd_ = -1;
    }
    return ec;
  }
}

}  // namespace pgw::audit::detail
