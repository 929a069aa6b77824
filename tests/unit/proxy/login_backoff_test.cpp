// LoginBackoff: engages after N failures in a row, doubles, caps, releases with time, forgets on success.
#include <gtest/gtest.h>

#include "login_backoff.hpp"

namespace pgw::proxy {
namespace {

using namespace std::chrono_literals;
using Clock = LoginBackoff::Clock;

const LoginBackoff::Policy policy{3, 1000ms, 4000ms};

TEST(LoginBackoff, EngagesAfterTheConfiguredFailures) {
  LoginBackoff b;
  auto t = Clock::time_point{} + 1h;
  b.failed("10.0.0.1", policy, t);
  b.failed("10.0.0.1", policy, t);
  EXPECT_EQ(b.remaining("10.0.0.1", t).count(), 0);
  b.failed("10.0.0.1", policy, t);
  EXPECT_EQ(b.remaining("10.0.0.1", t), 1000ms);
  EXPECT_EQ(b.remaining("10.0.0.2", t).count(), 0) << "other addresses are not affected";
  EXPECT_EQ(b.remaining("10.0.0.1", t + 999ms), 1ms);
  EXPECT_EQ(b.remaining("10.0.0.1", t + 1000ms).count(), 0) << "released when the back-off passes";
}

TEST(LoginBackoff, DoublesUpToTheMaximum) {
  LoginBackoff b;
  auto t = Clock::time_point{} + 1h;
  for (int i = 0; i < 3; ++i)
    b.failed("a", policy, t);
  b.failed("a", policy, t + 1s);
  EXPECT_EQ(b.remaining("a", t + 1s), 2000ms);
  b.failed("a", policy, t + 3s);
  EXPECT_EQ(b.remaining("a", t + 3s), 4000ms);
  b.failed("a", policy, t + 7s);
  EXPECT_EQ(b.remaining("a", t + 7s), 4000ms) << "capped at max";
  for (int i = 0; i < 100; ++i)
    b.failed("a", policy, t + 7s);
  EXPECT_EQ(b.remaining("a", t + 7s), 4000ms) << "no overflow however many failures";
}

TEST(LoginBackoff, SuccessForgetsAndQuietPeriodStartsOver) {
  LoginBackoff b;
  auto t = Clock::time_point{} + 1h;
  b.failed("a", policy, t);
  b.failed("a", policy, t);
  b.succeeded("a");
  b.failed("a", policy, t);
  EXPECT_EQ(b.remaining("a", t).count(), 0) << "the count restarted after the success";
  EXPECT_EQ(b.tracked(), 1u);
  // Two more failures, but long after the last one: they do not add up to a back-off.
  b.failed("a", policy, t + 1min);
  b.failed("a", policy, t + 1min);
  EXPECT_EQ(b.remaining("a", t + 1min).count(), 0);
}

TEST(LoginBackoff, OffWhenZero) {
  LoginBackoff b;
  auto t = Clock::time_point{} + 1h;
  for (int i = 0; i < 10; ++i)
    b.failed("a", {0, 1000ms, 4000ms}, t);
  EXPECT_EQ(b.remaining("a", t).count(), 0);
  EXPECT_EQ(b.tracked(), 0u);
}

TEST(LoginBackoff, TableIsBounded) {
  LoginBackoff b;
  auto t = Clock::time_point{} + 1h;
  for (std::size_t i = 0; i < LoginBackoff::max_addresses + 100; ++i)
    b.failed("addr-" + std::to_string(i), policy, t);
  EXPECT_LE(b.tracked(), LoginBackoff::max_addresses);
  // Once the old entries are quiet long enough they make room again.
  b.failed("late", policy, t + 1h);
  EXPECT_EQ(b.tracked(), 1u);
}

}  // namespace
}  // namespace pgw::proxy
