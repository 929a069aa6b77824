// The classifier cache's index: entries stay reachable through erasures inside probe runs (also runs that
// wrap around the table's end), against a model under random operations; the admission filter.
#include <gtest/gtest.h>

#include <cstdint>
#include <map>
#include <set>
#include <utility>
#include <vector>

#include "pgw/audit/text_index.hpp"

namespace {

using pgw::audit::detail::TextIndex;

// The table for 8 entries has 16 buckets: a hash's probe starts at hash % 16.
constexpr std::uint64_t kBuckets = 16;

std::uint32_t find(const TextIndex& index, std::uint64_t hash, std::uint32_t slot) {
  return index.find(hash, [&](std::uint32_t s) { return s == slot; });
}

TEST(TextIndex, EntriesOfOneRunStayReachableWhateverIsErased) {
  // Six hashes with the same starting bucket, then two that start inside their run: erase each in turn
  // and every other entry must still be found.
  for (std::uint32_t victim = 0; victim < 8; ++victim) {
    TextIndex index;
    index.reset(8);
    std::vector<std::pair<std::uint64_t, std::uint32_t>> entries;
    for (std::uint32_t k = 0; k < 6; ++k)
      entries.emplace_back(5 + kBuckets * (k + 1), k);
    entries.emplace_back(7 + kBuckets, 6);  // starts inside the run
    entries.emplace_back(6 + kBuckets * 9, 7);
    for (const auto& [hash, slot] : entries)
      ASSERT_TRUE(index.insert(hash, slot));
    ASSERT_TRUE(index.erase(entries[victim].first, entries[victim].second));
    EXPECT_EQ(index.size(), 7u);
    for (std::uint32_t k = 0; k < 8; ++k) {
      const auto& [hash, slot] = entries[k];
      EXPECT_EQ(find(index, hash, slot), k == victim ? TextIndex::kNone : slot)
          << "victim " << victim << " entry " << k;
    }
  }
}

TEST(TextIndex, RunsThatWrapAroundTheEnd) {
  TextIndex index;
  index.reset(8);
  // Starting at buckets 14 and 15, four entries spill into buckets 0 and 1; one that starts at 0 goes after.
  const std::pair<std::uint64_t, std::uint32_t> entries[] = {{14 + kBuckets, 0},
                                                             {15 + kBuckets, 1},
                                                             {14 + 2 * kBuckets, 2},
                                                             {15 + 2 * kBuckets, 3},
                                                             {0 + kBuckets, 4}};
  for (const auto& [hash, slot] : entries)
    ASSERT_TRUE(index.insert(hash, slot));
  ASSERT_TRUE(index.erase(entries[0].first, entries[0].second));
  ASSERT_TRUE(index.erase(entries[3].first, entries[3].second));
  EXPECT_EQ(find(index, entries[1].first, 1), 1u);
  EXPECT_EQ(find(index, entries[2].first, 2), 2u);
  EXPECT_EQ(find(index, entries[4].first, 4), 4u);
  EXPECT_FALSE(index.erase(entries[0].first, entries[0].second));  // already gone
}

TEST(TextIndex, MatchesAModelUnderRandomOperations) {
  // Hashes from a small range: long runs, many equal hashes (distinct texts with one hash), wrap-arounds.
  TextIndex index;
  index.reset(8);
  std::set<std::pair<std::uint64_t, std::uint32_t>> model;
  std::uint32_t state = 2024;
  auto next = [&] {
    state = state * 1664525u + 1013904223u;
    return state >> 8;
  };
  std::uint32_t next_slot = 0;
  for (int step = 0; step < 200000; ++step) {
    const std::uint64_t hash = next() % 40;
    if (next() % 2 == 0) {
      const bool room = model.size() < 8;
      EXPECT_EQ(index.insert(hash, next_slot), room);
      if (room) model.emplace(hash, next_slot);
      ++next_slot;
    } else if (!model.empty()) {
      auto it = model.begin();
      std::advance(it, static_cast<long>(next() % model.size()));
      ASSERT_TRUE(index.erase(it->first, it->second)) << "step " << step;
      model.erase(it);
    }
    ASSERT_EQ(index.size(), model.size());
    for (const auto& [h, slot] : model)
      ASSERT_EQ(find(index, h, slot), slot) << "step " << step << " hash " << h;
    EXPECT_EQ(find(index, hash, TextIndex::kNone - 1), TextIndex::kNone);
  }
}

TEST(TextIndex, AdmitsAHashTheSecondTimeItIsOffered) {
  TextIndex index;
  EXPECT_FALSE(index.admit(42));  // no table yet
  index.reset(8);
  const std::uint64_t a = 3 | (std::uint64_t{0xabc} << 32);
  const std::uint64_t b = 3 | (std::uint64_t{0xdef} << 32);  // same bucket, another fingerprint
  EXPECT_FALSE(index.admit(a));
  EXPECT_TRUE(index.admit(a));
  EXPECT_FALSE(index.admit(a));  // admitted once: seen anew
  EXPECT_FALSE(index.admit(b));
  EXPECT_FALSE(index.admit(a));  // b took the bucket's place: a starts over
  EXPECT_TRUE(index.admit(a));
  // Entries moving through the bucket leave its fingerprint alone.
  EXPECT_FALSE(index.admit(b));
  ASSERT_TRUE(index.insert(3, 1));
  ASSERT_TRUE(index.insert(3 + kBuckets, 2));
  ASSERT_TRUE(index.erase(3, 1));
  EXPECT_TRUE(index.admit(b));
  // The bucket an erasure leaves empty keeps its fingerprint too.
  const std::uint64_t c = 9 | (std::uint64_t{0x123} << 32);
  EXPECT_FALSE(index.admit(c));
  ASSERT_TRUE(index.insert(9, 3));
  ASSERT_TRUE(index.erase(9, 3));
  EXPECT_TRUE(index.admit(c));
  // A hash whose upper half is zero is not taken for an empty fingerprint.
  EXPECT_FALSE(index.admit(11));
  EXPECT_TRUE(index.admit(11));
}

TEST(TextIndex, HoldsNoMoreThanItsLimit) {
  TextIndex index;
  EXPECT_FALSE(index.insert(1, 1));  // no table yet
  index.reset(3);
  EXPECT_TRUE(index.insert(1, 1));
  EXPECT_TRUE(index.insert(1, 2));
  EXPECT_TRUE(index.insert(1, 3));
  EXPECT_FALSE(index.insert(2, 4));
  EXPECT_EQ(index.size(), 3u);
  EXPECT_FALSE(index.insert(5, TextIndex::kNone));
  EXPECT_FALSE(index.erase(0, TextIndex::kNone));  // what an empty bucket holds
  EXPECT_EQ(index.size(), 3u);
}

}  // namespace
