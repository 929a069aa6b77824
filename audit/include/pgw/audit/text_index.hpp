// The classifier cache's index (an implementation detail of Classifier, in its own header for its unit test):
// a text's hash to the number of the slot holding it, with the cache's admission filter in the same buckets.
#pragma once

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace pgw::audit::detail {

// Open addressing with linear probing over a power-of-two table at most half full, so that a miss (most
// statements with inlined values) reads one cache line, which also holds the admission fingerprint of the
// texts whose probe starts there. A node-based map read three or four lines per miss (bucket, node, key text,
// then the admission's own array), each cold on a machine shared with PostgreSQL.
class TextIndex {
 public:
  static constexpr std::uint32_t kNone = 0xffffffffu;

  // Room for max_entries (at most 2^24); forgets everything.
  void reset(std::size_t max_entries) {
    max_entries_ = std::min<std::size_t>(max_entries, std::size_t{1} << 24);
    table_.assign(std::bit_ceil(std::max<std::size_t>(max_entries_, 4) * 2), Bucket{});
    size_ = 0;
  }
  bool ready() const noexcept { return !table_.empty(); }
  std::size_t size() const noexcept { return size_; }
  std::size_t max_entries() const noexcept { return max_entries_; }

  // The slot of the first entry with this hash that `is_it(slot)` accepts, else kNone.
  template <class IsIt>
  std::uint32_t find(std::uint64_t hash, IsIt&& is_it) const {
    if (table_.empty()) return kNone;
    const std::size_t mask = table_.size() - 1;
    std::size_t i = hash & mask;
    // Every probe is bounded by the table's size: at most half full, probes end at an empty bucket long
    // before, but a slip must cost a miss, not a hang.
    for (std::size_t probes = 0; probes < table_.size(); ++probes, i = (i + 1) & mask) {
      const Bucket& b = table_[i];
      if (b.slot == kNone) return kNone;
      if (b.hash == hash && is_it(b.slot)) return b.slot;
    }
    return kNone;
  }

  // False when full (max_entries).
  bool insert(std::uint64_t hash, std::uint32_t slot) {
    if (table_.empty() || size_ >= max_entries_ || slot == kNone) return false;
    const std::size_t mask = table_.size() - 1;
    std::size_t i = hash & mask;
    for (std::size_t probes = 0; table_[i].slot != kNone; ++probes, i = (i + 1) & mask) {
      if (probes == table_.size()) return false;
    }
    table_[i].hash = hash;
    table_[i].slot = slot;
    ++size_;
    return true;
  }

  // Takes out the entry (hash, slot); false when there is none.
  bool erase(std::uint64_t hash, std::uint32_t slot) {
    if (table_.empty() || slot == kNone) return false;  // kNone would match an empty bucket
    const std::size_t mask = table_.size() - 1;
    std::size_t i = hash & mask;
    for (std::size_t probes = 0; table_[i].slot != slot || table_[i].hash != hash;
         ++probes, i = (i + 1) & mask) {
      if (table_[i].slot == kNone || probes == table_.size()) return false;
    }
    // Backward shift: pull a later member of the run into the hole when its probe starts at or before the
    // hole (cyclically), so that no probe meets an empty bucket before its entry. Fingerprints stay put.
    std::size_t j = (i + 1) & mask;
    for (std::size_t probes = 0; table_[j].slot != kNone && probes < table_.size();
         ++probes, j = (j + 1) & mask) {
      const std::size_t home = table_[j].hash & mask;
      const bool reachable_past_hole = i <= j ? (i < home && home <= j) : (i < home || home <= j);
      if (reachable_past_hole) continue;
      table_[i].hash = table_[j].hash;
      table_[i].slot = table_[j].slot;
      i = j;
    }
    table_[i] = Bucket{table_[i].seen_once};
    --size_;
    return true;
  }

  // Admission: true the second time this hash is offered (a collision of fingerprints in one bucket only
  // hastens or delays an admission).
  bool admit(std::uint64_t hash) {
    if (table_.empty()) return false;
    const auto fingerprint = static_cast<std::uint32_t>(hash >> 32) | 1u;
    std::uint32_t& seen = table_[hash & (table_.size() - 1)].seen_once;
    if (seen == fingerprint) {
      seen = 0;
      return true;
    }
    seen = fingerprint;
    return false;
  }

 private:
  struct Bucket {
    std::uint32_t seen_once = 0;  // fingerprint of a text seen once whose probe starts here; 0: none
    std::uint32_t slot = kNone;
    std::uint64_t hash = 0;
  };
  std::vector<Bucket> table_;
  std::size_t size_ = 0;
  std::size_t max_entries_ = 0;
};

}  // namespace pgw::audit::detail
