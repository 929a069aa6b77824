// A record's JSON body rendered before its seq is known: AuditLog renders it on the appending thread, outside
// its lock, and the writer thread inserts the seq (assigned under the lock, in queue order) before sealing
// it.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "pgw/audit/log.hpp"

namespace pgw::audit::detail {

struct UnnumberedBody {
  std::string text;        // record_body() without the seq's digits
  std::size_t seq_at = 0;  // where they go: right after "seq":
};

// `ts` and `instance` replace r.ts and r.instance; `spare`: capacity to reserve for what is appended later
// (the seq, the seal).
UnnumberedBody unnumbered_body(const Record& r, std::chrono::system_clock::time_point ts,
                               std::string_view instance, std::size_t spare);
// The same into `body`, whose text's storage is reused (what it held is replaced).
void render_unnumbered(const Record& r, std::chrono::system_clock::time_point ts, std::string_view instance,
                       std::size_t spare, UnnumberedBody& body);
// Inserts the seq's digits (in place: no allocation when `spare` left room); returns the numbered body.
std::string& number(UnnumberedBody& body, std::uint64_t seq);

}  // namespace pgw::audit::detail
