// Random cancel keys; lookups compare the secret in constant time so timing reveals nothing about it.
#include "cancel_registry.hpp"

#include <openssl/crypto.h>
#include <openssl/rand.h>

namespace pgw::proxy {

protocol::CancelRequest CancelRegistry::add(const std::shared_ptr<CancelSlot>& slot) {
  std::lock_guard lock(mutex_);
  for (unsigned attempt = 0;; ++attempt) {
    std::uint32_t raw[2];
    RAND_bytes(reinterpret_cast<unsigned char*>(raw), sizeof raw);
    // Positive process ids, as PostgreSQL's are; some clients print them. With peering, 17 random bits under
    // the peer id; should those run out (131071 sessions at once), keys without a peer id (handled here
    // only), then 31 random bits: the loop always ends.
    std::uint32_t bits = raw[0] & 0x7fffffff;
    if (peer_id_ != 0 && attempt < 64) {
      bits = (peer_id_ << peer_id_shift) | (raw[0] & ((1u << peer_id_shift) - 1));
    } else if (peer_id_ != 0 && attempt < 128) {
      bits = raw[0] & ((1u << peer_id_shift) - 1);
    }
    auto pid = static_cast<std::int32_t>(bits);
    if (pid == 0 || entries_.contains(pid)) continue;
    auto secret = static_cast<std::int32_t>(raw[1]);
    entries_.emplace(pid, Entry{secret, slot});
    return {pid, secret};
  }
}

void CancelRegistry::remove(std::int32_t process_id) {
  std::lock_guard lock(mutex_);
  entries_.erase(process_id);
}

std::optional<CancelFound> CancelRegistry::find(protocol::CancelRequest key) const {
  std::shared_ptr<CancelSlot> slot;
  {
    std::lock_guard lock(mutex_);
    auto it = entries_.find(key.process_id);
    if (it == entries_.end()) return std::nullopt;
    if (CRYPTO_memcmp(&it->second.secret_key, &key.secret_key, sizeof key.secret_key) != 0)
      return std::nullopt;
    slot = it->second.slot.lock();
  }
  if (!slot) return std::nullopt;
  return slot->take_for_cancel();
}

std::size_t CancelRegistry::size() const {
  std::lock_guard lock(mutex_);
  return entries_.size();
}

}  // namespace pgw::proxy
