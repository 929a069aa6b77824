// systemd's readiness protocol (sd_notify(3)): READY, RELOADING, STOPPING and STATUS for Type=notify units.
#pragma once

#include <string_view>

namespace pgw::proxy::systemd {

// Each call sends one datagram to $NOTIFY_SOCKET and is a no-op when the variable is unset (not started by
// systemd, or by a unit that is not Type=notify). A failure to send is logged, never thrown: the service
// keeps serving, and systemd's own start or reload timeout reports the missing message.
//
// Debian 12's systemd 252 knows Type=notify but not Type=notify-reload (systemd 253): the unit reloads with
// ExecReload=kill -HUP $MAINPID, and RELOADING=1 ... READY=1 keeps `systemctl reload` waiting until the
// reload is done. RELOADING=1 also carries MONOTONIC_USEC, which Type=notify-reload requires, so the same
// binary works with either unit type.

// READY=1, with STATUS= when status is not empty: after the listeners are bound, and at the end of every
// reload (taken or refused).
void notify_ready(std::string_view status) noexcept;
// RELOADING=1 and MONOTONIC_USEC=: a SIGHUP reload begins; READY=1 must follow.
void notify_reloading() noexcept;
// STOPPING=1: a drain began (systemd stops waiting for readiness and starts TimeoutStopSec).
void notify_stopping() noexcept;
// STATUS= alone: a line for `systemctl status`.
void notify_status(std::string_view status) noexcept;

// RELOADING=1 now, READY=1 when the scope ends, on every path out of a reload.
class ReloadNotice {
 public:
  ReloadNotice() { notify_reloading(); }
  ~ReloadNotice() { notify_ready({}); }
  ReloadNotice(const ReloadNotice&) = delete;
  ReloadNotice& operator=(const ReloadNotice&) = delete;
};

}  // namespace pgw::proxy::systemd
