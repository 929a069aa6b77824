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

#include "pgw/protocol/bytes.hpp"
#include "pgw/protocol/messages.hpp"

namespace pgw::proxy::handover {

namespace {

constexpr std::size_t max_listeners = 64;
constexpr std::size_t max_held = 4096;  // connections held while the old process drains; the rest queue

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

Taken take_over(const std::filesystem::path& path, std::chrono::milliseconds wait_for_exit,
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
  // 10 s after its shutdown_timeout. Meanwhile connections are accepted here: a CancelRequest goes to the old
  // process over this socket (its key is one of the old process's), anything else is held, its first bytes
  // read, until the old process has gone. The listeners are never given up: closing them would refuse every
  // client, so past `wait_for_exit` this keeps waiting and says so.
  Taken out;
  out.listeners = fds;
  struct Pending {
    int fd;
    std::vector<std::uint8_t> bytes;
  };
  std::vector<Pending> pending;  // first packet not classified yet
  auto deadline = std::chrono::steady_clock::now() + wait_for_exit;
  for (;;) {
    auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      if (still_waiting) still_waiting();
      deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
      continue;
    }
    std::vector<pollfd> pfds{{sock.get(), POLLIN, 0}};
    const bool room = pending.size() + out.held.size() < max_held;
    if (room) {
      for (int fd : fds)
        pfds.push_back({fd, POLLIN, 0});
    }
    for (const auto& p : pending)
      pfds.push_back({p.fd, POLLIN, 0});
    int r = ::poll(pfds.data(), pfds.size(), static_cast<int>(std::min<std::int64_t>(left.count(), 1000)));
    if (r < 0 && errno != EINTR) {
      for (int fd : fds)
        ::close(fd);
      throw std::runtime_error(why("waiting for the old pgwarden"));
    }
    if (r <= 0) continue;
    if ((pfds[0].revents & (POLLIN | POLLHUP | POLLERR)) != 0) {
      char buf[64];
      ssize_t got = ::recv(sock.get(), buf, sizeof buf, MSG_DONTWAIT);
      if (got == 0 || (got < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) break;  // it has exited
    }
    std::size_t at = 1;
    if (room) {
      for (int fd : fds) {
        if ((pfds[at++].revents & POLLIN) == 0) continue;
        int client = ::accept4(fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (client >= 0) pending.push_back({client, {}});
      }
    }
    for (std::size_t k = 0; k < pending.size(); ++at) {
      auto& p = pending[k];
      if (at < pfds.size() && pfds[at].fd == p.fd && (pfds[at].revents & (POLLIN | POLLHUP | POLLERR)) != 0) {
        // The first 8 bytes say what it is; a CancelRequest is 16 in all.
        std::uint8_t buf[16];
        std::size_t want = p.bytes.size() < 8 ? 8 - p.bytes.size() : 16 - p.bytes.size();
        ssize_t got = ::recv(p.fd, buf, want, MSG_DONTWAIT);
        if (got == 0 || (got < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
          ::close(p.fd);
          pending.erase(pending.begin() + static_cast<std::ptrdiff_t>(k));
          continue;
        }
        if (got > 0) p.bytes.insert(p.bytes.end(), buf, buf + got);
        const bool cancel = p.bytes.size() >= 8 && protocol::load_u32(p.bytes.data()) == 16 &&
                            protocol::load_u32(p.bytes.data() + 4) ==
                                static_cast<std::uint32_t>(protocol::cancel_request_code);
        if (cancel && p.bytes.size() == 16) {
          std::string line = "CANCEL ";
          static constexpr char hex[] = "0123456789abcdef";
          for (std::size_t b = 8; b < 16; ++b) {
            line += hex[p.bytes[b] >> 4];
            line += hex[p.bytes[b] & 15];
          }
          line += "\n";
          ::send(sock.get(), line.data(), line.size(), MSG_NOSIGNAL);
          ::close(p.fd);
          pending.erase(pending.begin() + static_cast<std::ptrdiff_t>(k));
          continue;
        }
        if (p.bytes.size() >= 8 && !cancel) {
          out.held.push_back({p.fd, std::move(p.bytes)});
          pending.erase(pending.begin() + static_cast<std::ptrdiff_t>(k));
          continue;
        }
      }
      ++k;
    }
  }
  for (auto& p : pending)
    out.held.push_back({p.fd, std::move(p.bytes)});
  return out;
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
