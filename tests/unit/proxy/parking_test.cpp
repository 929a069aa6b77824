// Parking: a parked coroutine resumes once per wake(), from the executor's queue and never inside wake();
// a dropped one is destroyed unresumed.
#include "parking.hpp"

#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <memory>
#include <optional>

namespace pgw::proxy {
namespace {

namespace asio = boost::asio;

struct Probe {
  int resumed = 0;
  bool frame_gone = false;
};

// Parks `rounds` times, counting each resumption; marks its frame's end however it ends.
asio::awaitable<void> parker(Parking& park, Probe& probe, int rounds) {
  struct Gone {
    Probe& p;
    ~Gone() { p.frame_gone = true; }
  } gone{probe};
  for (int i = 0; i < rounds; ++i) {
    co_await park.async_park(asio::deferred);
    ++probe.resumed;
  }
}

TEST(Parking, WakeResumesFromTheQueueOnce) {
  asio::io_context io;
  Parking park(io);
  Probe probe;
  asio::co_spawn(io, parker(park, probe, 2), asio::detached);
  io.poll();
  ASSERT_TRUE(park.parked());
  EXPECT_EQ(probe.resumed, 0);

  park.wake();
  EXPECT_FALSE(park.parked());
  EXPECT_EQ(probe.resumed, 0) << "wake() must not resume the waiter inside the call";
  park.wake();  // nobody parked now: nothing
  io.restart();
  io.poll();
  EXPECT_EQ(probe.resumed, 1);
  ASSERT_TRUE(park.parked()) << "parked again for its second round";

  park.wake();
  io.restart();
  io.poll();
  EXPECT_EQ(probe.resumed, 2);
  EXPECT_TRUE(probe.frame_gone);
  EXPECT_FALSE(park.parked());
}

TEST(Parking, WakeWithNobodyParkedDoesNothing) {
  asio::io_context io;
  Parking park(io);
  EXPECT_FALSE(park.parked());
  park.wake();
  park.drop();
  EXPECT_FALSE(park.parked());
}

TEST(Parking, DroppedWaiterIsDestroyedUnresumed) {
  Probe probe;
  {
    asio::io_context io;
    Parking park(io);
    asio::co_spawn(io, parker(park, probe, 1), asio::detached);
    io.poll();
    ASSERT_TRUE(park.parked());
    park.drop();
    EXPECT_FALSE(park.parked());
    io.restart();
    io.poll();  // the frames' unwinding was handed to the executor
    EXPECT_EQ(probe.resumed, 0);
    EXPECT_TRUE(probe.frame_gone);
  }
  EXPECT_EQ(probe.resumed, 0);
}

TEST(Parking, DestroyingTheIoContextAfterADropFreesTheFrames) {
  // The forced exit's order: the handler is dropped, then the io_context goes without running again.
  Probe probe;
  auto io = std::make_unique<asio::io_context>();
  Parking park(*io);
  asio::co_spawn(*io, parker(park, probe, 1), asio::detached);
  io->poll();
  ASSERT_TRUE(park.parked());
  park.drop();
  EXPECT_FALSE(probe.frame_gone);
  io.reset();
  EXPECT_TRUE(probe.frame_gone);
  EXPECT_EQ(probe.resumed, 0);
}

TEST(Parking, WokenFromAnotherHandlerResumesAfterItOnItsOwnThread) {
  // As start_backend() and the janitor do: the wake comes from another handler of the same io_context, which
  // goes on to its end before the waiter runs.
  asio::io_context io;
  Parking park(io);
  Probe probe;
  std::optional<bool> in_io;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        co_await park.async_park(asio::deferred);
        ++probe.resumed;
        in_io = io.get_executor().running_in_this_thread();
      },
      asio::detached);
  io.poll();
  ASSERT_TRUE(park.parked());
  int resumed_when_waker_ended = -1;
  asio::post(io, [&] {
    park.wake();
    resumed_when_waker_ended = probe.resumed;
  });
  io.restart();
  io.poll();
  EXPECT_EQ(resumed_when_waker_ended, 0);
  EXPECT_EQ(probe.resumed, 1);
  ASSERT_TRUE(in_io.has_value());
  EXPECT_TRUE(*in_io);
}

}  // namespace
}  // namespace pgw::proxy
