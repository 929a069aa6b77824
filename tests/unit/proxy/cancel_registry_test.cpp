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
  ASSERT_TRUE(r.find(key));
  EXPECT_TRUE(r.find(key)->target);
  EXPECT_FALSE(r.find({key.process_id, key.secret_key ^ 1}));
  r.remove(key.process_id);
  EXPECT_FALSE(r.find(key));
}

TEST(CancelRegistry, ACancelWhileQueuedAbandonsThatWaitOnly) {
  CancelRegistry r;
  int wakes = 0;
  auto slot = std::make_shared<CancelSlot>([&] { ++wakes; });
  auto key = r.add(slot);
  // Neither attached nor queued: nothing to do.
  auto idle = r.find(key);
  ASSERT_TRUE(idle);
  EXPECT_FALSE(idle->target);
  EXPECT_FALSE(idle->queued);
  EXPECT_FALSE(slot->end_queue_wait());
  // Queued: the cancel abandons the request and wakes the wait; the session learns it when the wait ends.
  slot->begin_queue_wait();
  EXPECT_FALSE(slot->cancelled_in_queue());
  auto queued = r.find(key);
  ASSERT_TRUE(queued);
  EXPECT_TRUE(queued->queued);
  EXPECT_FALSE(queued->target);
  EXPECT_EQ(wakes, 1);
  EXPECT_TRUE(slot->cancelled_in_queue());
  EXPECT_TRUE(slot->end_queue_wait());
  // Consumed: neither the next wait nor a cancel after the wait sees it.
  EXPECT_FALSE(r.find(key)->queued);
  slot->begin_queue_wait();
  EXPECT_FALSE(slot->end_queue_wait());
  // Attached (no longer queued): the cancel goes to the server, not to the queue.
  slot->set(CancelTarget{});
  auto attached = r.find(key);
  EXPECT_TRUE(attached->target);
  EXPECT_FALSE(attached->queued);
  EXPECT_EQ(wakes, 1);
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
