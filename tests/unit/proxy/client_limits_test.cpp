// AddressLimits (cap and token bucket per address, IPv4-mapped = IPv4) and NameLimits (per database, per
// user).
#include <gtest/gtest.h>

#include "client_limits.hpp"

namespace pgw::proxy {
namespace {

using namespace std::chrono_literals;

config::IpAddress ip(std::string_view text) {
  auto a = config::parse_ip(text);
  EXPECT_TRUE(a.has_value()) << text;
  return a.value_or(config::IpAddress{});
}

TEST(AddressLimits, CapPerAddressAndRelease) {
  AddressLimits l;
  EXPECT_TRUE(l.add_connection(ip("10.0.0.1"), 2));
  EXPECT_TRUE(l.add_connection(ip("10.0.0.1"), 2));
  EXPECT_FALSE(l.add_connection(ip("10.0.0.1"), 2));
  EXPECT_TRUE(l.add_connection(ip("10.0.0.2"), 2)) << "another address has its own budget";
  // The IPv4-mapped form is the same client.
  EXPECT_FALSE(l.add_connection(ip("::ffff:10.0.0.1"), 2));
  l.release(ip("::ffff:10.0.0.1"));
  EXPECT_EQ(l.connections(ip("10.0.0.1")), 1U);
  EXPECT_TRUE(l.add_connection(ip("10.0.0.1"), 2));
  EXPECT_TRUE(l.add_connection(ip("10.0.0.1"), 0)) << "0 = unlimited";
  l.release(ip("10.0.0.9"));  // never admitted: nothing happens
  EXPECT_EQ(l.connections(ip("10.0.0.9")), 0U);
}

TEST(AddressLimits, TokenBucketRefills) {
  AddressLimits l;
  auto t = AddressLimits::Clock::time_point{} + 1h;
  for (int i = 0; i < 4; ++i)
    EXPECT_TRUE(l.take_token(ip("10.0.0.1"), 4, t)) << i;
  EXPECT_FALSE(l.take_token(ip("10.0.0.1"), 4, t));
  EXPECT_TRUE(l.take_token(ip("10.0.0.2"), 4, t)) << "another address has its own bucket";
  EXPECT_TRUE(l.take_token(ip("10.0.0.1"), 4, t + 250ms)) << "a quarter second refills one";
  EXPECT_FALSE(l.take_token(ip("10.0.0.1"), 4, t + 250ms));
  EXPECT_TRUE(l.take_token(ip("10.0.0.1"), 4, t + 10s)) << "refilled to the burst";
  for (int i = 0; i < 3; ++i)
    EXPECT_TRUE(l.take_token(ip("10.0.0.1"), 4, t + 10s));
  EXPECT_FALSE(l.take_token(ip("10.0.0.1"), 4, t + 10s)) << "the burst is the rate";
  EXPECT_TRUE(l.take_token(ip("10.0.0.1"), 0, t)) << "0 = unlimited";
}

TEST(AddressLimits, IdleAddressesAreSwept) {
  AddressLimits l;
  auto t = AddressLimits::Clock::time_point{} + 1h;
  config::IpAddress a;
  a.family = config::IpAddress::Family::inet6;
  for (std::size_t i = 0; i < AddressLimits::max_idle_addresses + 10; ++i) {
    a.bytes[13] = static_cast<std::uint8_t>(i >> 16);
    a.bytes[14] = static_cast<std::uint8_t>(i >> 8);
    a.bytes[15] = static_cast<std::uint8_t>(i);
    ASSERT_TRUE(l.take_token(a, 1000, t));
  }
  // Their buckets are full again a few seconds later: the next new address sweeps them, and forgetting them
  // changes nothing (a fresh entry starts with a full bucket too).
  EXPECT_EQ(l.tracked(), AddressLimits::max_idle_addresses + 10);
  EXPECT_TRUE(l.take_token(ip("10.0.0.1"), 1000, t + 5s));
  EXPECT_EQ(l.tracked(), 1U);
  for (int i = 0; i < 1000; ++i)
    ASSERT_TRUE(l.take_token(a, 1000, t + 5s)) << i;
}

TEST(NameLimits, PerDatabaseAndPerUser) {
  NameLimits n;
  EXPECT_TRUE(n.admit("app", "alice", 2, 0));
  EXPECT_TRUE(n.admit("app", "bob", 2, 0));
  EXPECT_FALSE(n.admit("app", "carol", 2, 0)) << "database full";
  EXPECT_FALSE(n.admit("other", "alice", 2, 1)) << "alice already has one and the user limit is 1";
  n.release("app", "alice");
  EXPECT_TRUE(n.admit("other", "alice", 2, 1));
  EXPECT_TRUE(n.admit("app", "carol", 2, 0));
  EXPECT_TRUE(n.admit("x", "y", 0, 0)) << "0 = unlimited";
}

}  // namespace
}  // namespace pgw::proxy
