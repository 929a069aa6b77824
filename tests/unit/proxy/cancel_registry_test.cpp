// Cancel keys: unique, matched only with their secret, and carrying the instance's peer id when peering is
// on.
#include "cancel_registry.hpp"

#include <gtest/gtest.h>

#include <set>

namespace pgw::proxy {
namespace {

TEST(CancelRegistry, KeysAreUniqueAndNeedTheirSecret) {
  CancelRegistry r;
  auto slot = std::make_shared<CancelSlot>();
  std::set<std::int32_t> pids;
  for (int i = 0; i < 1000; ++i) {
    auto key = r.add(slot);
    EXPECT_GT(key.process_id, 0);
    EXPECT_TRUE(pids.insert(key.process_id).second);
  }
  auto key = r.add(slot);
  slot->set(CancelTarget{});
  EXPECT_TRUE(r.find(key));
  EXPECT_FALSE(r.find({key.process_id, key.secret_key ^ 1}));
  r.remove(key.process_id);
  EXPECT_FALSE(r.find(key));
}

TEST(CancelRegistry, PeeringPutsTheInstanceIdInEveryKey) {
  CancelRegistry r;
  r.set_peer_id(16383);
  auto slot = std::make_shared<CancelSlot>();
  for (int i = 0; i < 2000; ++i) {
    auto key = r.add(slot);
    EXPECT_GT(key.process_id, 0);
    EXPECT_EQ(peer_of(key), 16383u);
  }
  CancelRegistry plain;
  int with_peer_bits = 0;
  for (int i = 0; i < 200; ++i)
    with_peer_bits += peer_of(plain.add(slot)) != 0 ? 1 : 0;
  EXPECT_GT(with_peer_bits, 150);  // without peering the bits are random, and nobody reads them
}

TEST(CancelRegistry, APeersKeySpaceRunningOutFallsBackToLocalKeys) {
  CancelRegistry r;
  r.set_peer_id(3);
  auto slot = std::make_shared<CancelSlot>();
  // 2^17 - 1 keys fill instance 3's space; the next ones still come, without a peer id.
  int local_only = 0;
  for (int i = 0; i < (1 << 17) + 100; ++i) {
    auto key = r.add(slot);
    if (peer_of(key) == 0)
      ++local_only;
    else
      EXPECT_EQ(peer_of(key), 3u);
  }
  EXPECT_GE(local_only, 101);
  EXPECT_EQ(r.size(), static_cast<std::size_t>((1 << 17) + 100));
}

}  // namespace
}  // namespace pgw::proxy
