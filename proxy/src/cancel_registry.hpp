// Cancel keys pgwarden hands its clients, and where each one's CancelRequest must go right now.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

#include "pgw/pool/server_connection.hpp"
#include "pgw/protocol/messages.hpp"
#include "pgw/tls/stream.hpp"

namespace pgw::proxy {

// The server backend serving a client at this moment.
struct CancelTarget {
  tls::tcp::endpoint endpoint;
  std::string host;
  protocol::CancelRequest server_key;
  // The connection itself: find() counts the cancel in flight on it, and its client does not give it back to
  // the pool before the cancel is done, so a late cancel never reaches the next client's query.
  std::shared_ptr<pool::ServerConnection> connection;
};

// Owned by a client session; read by whichever thread receives that client's CancelRequest.
class CancelSlot {
 public:
  void set(std::optional<CancelTarget> target) {
    std::lock_guard lock(mutex_);
    target_ = std::move(target);
  }
  std::optional<CancelTarget> get() const {
    std::lock_guard lock(mutex_);
    return target_;
  }
  // The target with a cancel counted in flight on its connection, atomically with reading it.
  std::optional<CancelTarget> take_for_cancel() const {
    std::lock_guard lock(mutex_);
    if (target_ && target_->connection)
      target_->connection->cancels_in_flight.fetch_add(1, std::memory_order_acq_rel);
    return target_;
  }

 private:
  mutable std::mutex mutex_;
  std::optional<CancelTarget> target_;
};

// Peering (proxy.peer_id): a cancel key's process id carries the instance that handed it out in bits 17-30,
// so whichever instance a load balancer sends the CancelRequest to knows where it belongs.
inline constexpr unsigned peer_id_shift = 17;
inline constexpr std::uint32_t peer_id_mask = 0x3fff;
// The peer id a key carries (0: none).
inline unsigned peer_of(protocol::CancelRequest key) noexcept {
  return (static_cast<std::uint32_t>(key.process_id) >> peer_id_shift) & peer_id_mask;
}

class CancelRegistry {
 public:
  // 0 = no peering (keys are 31 random bits); fixed at start.
  void set_peer_id(unsigned id) noexcept { peer_id_ = id; }
  // A fresh key, unique among live sessions, tied to the slot.
  protocol::CancelRequest add(const std::shared_ptr<CancelSlot>& slot);
  void remove(std::int32_t process_id);
  // The target for an exact key match (the secret compared in constant time), else nullopt. The caller must
  // decrement target->connection->cancels_in_flight when its cancel is done.
  std::optional<CancelTarget> find(protocol::CancelRequest key) const;
  std::size_t size() const;

 private:
  struct Entry {
    std::int32_t secret_key;
    std::weak_ptr<CancelSlot> slot;
  };
  mutable std::mutex mutex_;
  std::unordered_map<std::int32_t, Entry> entries_;
  unsigned peer_id_ = 0;
};

}  // namespace pgw::proxy
