// Rolling restart: a new pgwarden takes the running one's listening sockets over a Unix socket (SCM_RIGHTS),
// so connections queued on them are never refused; the old one drains and exits, and only then does the new
// one open the audit log (one writer per file, the chain continues) and serve what waited in the backlog.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

namespace pgw::proxy::handover {

// The message the new process sends; the old one answers with its listeners' descriptors.
inline constexpr std::string_view takeover_request = "TAKEOVER\n";

// True when a process accepts connections on `path`.
bool someone_listens(const std::filesystem::path& path);

// A client connection accepted while the old process drained, with the bytes already read from it.
struct HeldConnection {
  int fd;
  std::vector<std::uint8_t> bytes;
};
struct Taken {
  std::vector<int> listeners;
  std::vector<HeldConnection> held;
};

// The new process: asks the one listening on `path` for its listeners, then waits until that process has
// exited (its end of the connection closes). Meanwhile it accepts: CancelRequests are passed to the old
// process (a line "CANCEL <16 hex digits: process id, secret>"), other connections are held for the caller.
// Past `wait_for_exit` it calls `still_waiting` every 10 s and goes on waiting: giving the listeners up would
// refuse every client. Throws std::runtime_error saying what failed.
Taken take_over(const std::filesystem::path& path, std::chrono::milliseconds wait_for_exit,
                const std::function<void()>& still_waiting = {});

// The old process: sends `fds` over the connected Unix socket `socket`. False (errno set) on failure.
bool send_listeners(int socket, const std::vector<int>& fds);

}  // namespace pgw::proxy::handover
