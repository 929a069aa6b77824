// systemd's readiness protocol: one sd_notify(3) datagram per state change, nothing without NOTIFY_SOCKET.
#include "systemd_notify.hpp"

#include <systemd/sd-daemon.h>

#include <chrono>
#include <cstdlib>
#include <string>
#include <system_error>

#include "log.hpp"

namespace pgw::proxy::systemd {

namespace {

// STATUS= ends at a newline (each line of the datagram is one assignment): keep the text on one line.
std::string one_line(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  return out;
}

// Builds the message only under systemd; whatever fails is logged, never thrown (these run in destructors
// and signal paths).
template <class MakeMessage>
void send(MakeMessage make_message) noexcept {
  try {
    // sd_notify() checks this too; looking first keeps the common case (not under systemd) to one getenv.
    if (std::getenv("NOTIFY_SOCKET") == nullptr) return;  // NOLINT(concurrency-mt-unsafe): nobody sets it
    std::string message = make_message();
    int r = sd_notify(0, message.c_str());
    if (r < 0) {
      spdlog::warn("systemd notification \"{}\" not sent: {}", one_line(message),
                   std::system_category().message(-r));
    } else {
      spdlog::debug("systemd notification sent: {}", one_line(message));
    }
  } catch (const std::exception& e) {
    spdlog::warn("systemd notification not sent: {}", e.what());
  } catch (...) {
    spdlog::warn("systemd notification not sent");
  }
}

}  // namespace

void notify_ready(std::string_view status) noexcept {
  send([status] {
    std::string message = "READY=1";
    if (!status.empty()) message += "\nSTATUS=" + one_line(status);
    return message;
  });
}

void notify_reloading() noexcept {
  send([] {
    // MONOTONIC_USEC: CLOCK_MONOTONIC now (steady_clock on Linux), which Type=notify-reload (systemd 253+)
    // requires with RELOADING=1 and older versions ignore.
    auto usec = std::chrono::duration_cast<std::chrono::microseconds>(
                    std::chrono::steady_clock::now().time_since_epoch())
                    .count();
    return "RELOADING=1\nMONOTONIC_USEC=" + std::to_string(usec);
  });
}

void notify_stopping() noexcept {
  send([] { return std::string("STOPPING=1"); });
}

void notify_status(std::string_view status) noexcept {
  send([status] { return "STATUS=" + one_line(status); });
}

}  // namespace pgw::proxy::systemd
