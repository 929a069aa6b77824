// Passing listening sockets between two pgwarden processes (SCM_RIGHTS over a Unix stream socket).
#include "handover.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <functional>
#include <stdexcept>

namespace pgw::proxy::handover {

namespace {

constexpr std::size_t max_listeners = 64;

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const noexcept { return fd_; }

 private:
  int fd_;
};

// A connected Unix stream socket to `path`, or -1.
int connect_to(const std::filesystem::path& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  const std::string p = path.string();
  if (p.size() >= sizeof addr.sun_path) {
    errno = ENAMETOOLONG;
    return -1;
  }
  std::memcpy(addr.sun_path, p.data(), p.size());
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    int e = errno;
    ::close(fd);
    errno = e;
    return -1;
  }
  return fd;
}

std::string why(const std::string& what) {
  return what + ": " + std::strerror(errno);
}

}  // namespace

bool someone_listens(const std::filesystem::path& path) {
  int fd = connect_to(path);
  if (fd < 0) return false;
  ::close(fd);
  return true;
}

std::vector<int> take_over(const std::filesystem::path& path, std::chrono::milliseconds wait_for_exit,
                           const std::function<void()>& still_waiting) {
  Fd sock(connect_to(path));
  if (sock.get() < 0) throw std::runtime_error(why("cannot reach the running pgwarden at " + path.string()));
  if (::send(sock.get(), takeover_request.data(), takeover_request.size(), MSG_NOSIGNAL) !=
      static_cast<ssize_t>(takeover_request.size())) {
    throw std::runtime_error(why("cannot ask the running pgwarden for its listeners"));
  }
  // One message: a count byte and the descriptors as ancillary data.
  std::uint8_t count = 0;
  iovec iov{&count, 1};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * max_listeners)];
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  pollfd pfd{sock.get(), POLLIN, 0};
  if (::poll(&pfd, 1, 10'000) != 1)
    throw std::runtime_error("the running pgwarden did not hand its listeners over");
  ssize_t n = ::recvmsg(sock.get(), &msg, MSG_CMSG_CLOEXEC);
  if (n != 1) throw std::runtime_error(why("receiving the listeners failed"));
  std::vector<int> fds;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    std::size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (std::size_t i = 0; i < k; ++i) {
      int fd = -1;
      std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
      fds.push_back(fd);
    }
  }
  if (fds.size() != count || (msg.msg_flags & MSG_CTRUNC) != 0) {
    for (int fd : fds)
      ::close(fd);
    throw std::runtime_error("the running pgwarden handed over an incomplete set of listeners");
  }
  // The old process now drains; its end closes when it exits (after its audit log is closed), at the latest
  // 10 s after its shutdown_timeout. The listeners are never given up meanwhile: closing them would refuse
  // every client, so past `wait_for_exit` this keeps waiting and says so.
  auto deadline = std::chrono::steady_clock::now() + wait_for_exit;
  for (;;) {
    auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      if (still_waiting) still_waiting();
      deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
      continue;
    }
    pfd = {sock.get(), POLLIN, 0};
    int r = ::poll(&pfd, 1, static_cast<int>(std::min<std::int64_t>(left.count(), 1000)));
    if (r < 0 && errno != EINTR) {
      for (int fd : fds)
        ::close(fd);
      throw std::runtime_error(why("waiting for the old pgwarden"));
    }
    if (r == 1) {
      char buf[64];
      ssize_t got = ::recv(sock.get(), buf, sizeof buf, 0);
      if (got <= 0) break;  // EOF (or reset): it has exited
    }
  }
  return fds;
}

bool send_listeners(int socket, const std::vector<int>& fds) {
  if (fds.empty() || fds.size() > max_listeners) {
    errno = EINVAL;
    return false;
  }
  auto count = static_cast<std::uint8_t>(fds.size());
  iovec iov{&count, 1};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * max_listeners)]{};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
  cmsghdr* c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
  std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
  return ::sendmsg(socket, &msg, MSG_NOSIGNAL) == 1;
}

}  // namespace pgw::proxy::handover
