// Cancel keys pgwarden hands its clients, and where each one's CancelRequest must go right now.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>

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

// What a CancelRequest found for its key.
struct CancelFound {
  std::optional<CancelTarget> target;  // the server backend serving the client now: the cancel goes there
  bool queued = false;                 // the client waits for a server connection: its request is abandoned
};

// Owned by a client session; read by whichever thread receives that client's CancelRequest.
class CancelSlot {
 public:
  // `wake_queued` ends the client's wait for a server connection early (it posts to the client's thread).
  explicit CancelSlot(std::function<void()> wake_queued = {}) : wake_queued_(std::move(wake_queued)) {}

  void set(std::optional<CancelTarget> target) {
    std::lock_guard lock(mutex_);
    target_ = std::move(target);
  }
  std::optional<CancelTarget> get() const {
    std::lock_guard lock(mutex_);
    return target_;
  }
  // The client queues for a server connection, its request in hand: a cancel now abandons that request.
  void begin_queue_wait() {
    std::lock_guard lock(mutex_);
    queued_ = true;
    cancelled_in_queue_ = false;
  }
  // The wait is over; whether a cancel came during it (decided here, under the lock, against any cancel).
  bool end_queue_wait() {
    std::lock_guard lock(mutex_);
    queued_ = false;
    return std::exchange(cancelled_in_queue_, false);
  }
  bool cancelled_in_queue() const {
    std::lock_guard lock(mutex_);
    return cancelled_in_queue_;
  }
  // What a cancel does now: the target with a cancel counted in flight on its connection (atomically with
  // reading it), or the queued request abandoned.
  CancelFound take_for_cancel() {
    CancelFound found;
    {
      std::lock_guard lock(mutex_);
      if (target_) {
        if (target_->connection)
          target_->connection->cancels_in_flight.fetch_add(1, std::memory_order_acq_rel);
        found.target = target_;
        return found;
      }
      if (!queued_) return found;
      cancelled_in_queue_ = true;
      found.queued = true;
    }
    if (wake_queued_) wake_queued_();
    return found;
  }

 private:
  mutable std::mutex mutex_;
  std::optional<CancelTarget> target_;
  bool queued_ = false;
  bool cancelled_in_queue_ = false;
  std::function<void()> wake_queued_;  // fixed at construction
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
  // What a cancel with this key does (the secret compared in constant time); nullopt for an unknown key.
  // The caller must decrement target->connection->cancels_in_flight when its cancel is done.
  std::optional<CancelFound> find(protocol::CancelRequest key) const;
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
