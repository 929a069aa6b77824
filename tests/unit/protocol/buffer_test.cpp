// Unit tests for Buffer: reserve, commit/consume, compact, shrink_to and release_if_empty keep unread bytes.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "pgw/protocol/buffer.hpp"

namespace pgw::protocol {
namespace {

void write(Buffer& b, std::string_view s) {
  b.reserve(b.size() + s.size());
  ASSERT_GE(b.writable().size(), s.size());
  std::memcpy(b.writable().data(), s.data(), s.size());
  b.commit(s.size());
}

std::string contents(const Buffer& b) {
  return std::string(as_text(b.readable()));
}

TEST(Buffer, StartsEmptyWithoutStorage) {
  Buffer b;
  EXPECT_TRUE(b.empty());
  EXPECT_EQ(b.size(), 0u);
  EXPECT_EQ(b.capacity(), 0u);
  EXPECT_TRUE(b.readable().empty());
  EXPECT_TRUE(b.writable().empty());
}

TEST(Buffer, ConstructorReserves) {
  Buffer b(64);
  EXPECT_EQ(b.capacity(), 64u);
  EXPECT_EQ(b.writable().size(), 64u);
  EXPECT_TRUE(b.empty());
}

TEST(Buffer, CommitAndConsume) {
  Buffer b(16);
  write(b, "hello world");
  EXPECT_EQ(b.size(), 11u);
  EXPECT_EQ(contents(b), "hello world");
  b.consume(6);
  EXPECT_EQ(contents(b), "world");
  EXPECT_EQ(b.writable().size(), 5u);  // the consumed front is not writable until compacted
  b.consume(5);
  EXPECT_TRUE(b.empty());
  // Consuming everything rewinds both cursors: the whole capacity is writable again.
  EXPECT_EQ(b.writable().size(), 16u);
}

TEST(Buffer, CompactMovesUnreadBytesToTheFront) {
  Buffer b(16);
  write(b, "0123456789abcdef");
  b.consume(10);
  EXPECT_EQ(b.writable().size(), 0u);
  const std::uint8_t* front = b.readable().data() - 10;
  b.compact();
  EXPECT_EQ(contents(b), "abcdef");
  EXPECT_EQ(b.readable().data(), front);
  EXPECT_EQ(b.writable().size(), 10u);
  b.compact();  // nothing to move
  EXPECT_EQ(contents(b), "abcdef");
}

TEST(Buffer, ReserveWithinTailKeepsStorage) {
  Buffer b(32);
  write(b, "abcd");
  const std::uint8_t* data = b.readable().data();
  b.reserve(20);
  EXPECT_EQ(b.capacity(), 32u);
  EXPECT_EQ(b.readable().data(), data);
  EXPECT_EQ(contents(b), "abcd");
}

TEST(Buffer, ReserveCompactsWhenTheFrontHasRoom) {
  Buffer b(32);
  write(b, std::string(30, 'x') + "yz");
  b.consume(30);
  const std::uint8_t* front = b.readable().data() - 30;
  b.reserve(20);  // 20 > capacity - begin (2), but fits in the capacity once compacted
  EXPECT_EQ(b.capacity(), 32u);
  EXPECT_EQ(b.readable().data(), front);
  EXPECT_EQ(contents(b), "yz");
  EXPECT_GE(b.writable().size(), 18u);
}

TEST(Buffer, ReserveGrowsAndKeepsUnreadBytes) {
  Buffer b(8);
  write(b, "12345678");
  b.consume(3);
  b.reserve(100);
  EXPECT_EQ(b.capacity(), 100u);
  EXPECT_EQ(contents(b), "45678");
  EXPECT_EQ(b.writable().size(), 95u);
  write(b, "9");
  EXPECT_EQ(contents(b), "456789");
}

TEST(Buffer, ReserveOnEmptyBufferAllocates) {
  Buffer b;
  b.reserve(10);
  EXPECT_EQ(b.capacity(), 10u);
  EXPECT_EQ(b.writable().size(), 10u);
  b.reserve(0);
  EXPECT_EQ(b.capacity(), 10u);
}

TEST(Buffer, ShrinkToKeepsUnreadBytes) {
  Buffer b(4096);
  write(b, std::string(1000, 'a') + "tail");
  b.consume(1000);
  b.shrink_to(64);
  EXPECT_EQ(b.capacity(), 64u);
  EXPECT_EQ(contents(b), "tail");
  EXPECT_EQ(b.writable().size(), 60u);
}

TEST(Buffer, ShrinkToDoesNothingWhenTooMuchIsBuffered) {
  Buffer b(256);
  write(b, std::string(100, 'q'));
  b.shrink_to(64);
  EXPECT_EQ(b.capacity(), 256u);
  EXPECT_EQ(b.size(), 100u);
}

TEST(Buffer, ShrinkToDoesNotGrow) {
  Buffer b(32);
  write(b, "x");
  b.shrink_to(64);
  EXPECT_EQ(b.capacity(), 32u);
  EXPECT_EQ(contents(b), "x");
}

TEST(Buffer, ShrinkToExactlyTheBufferedSize) {
  Buffer b(128);
  write(b, "0123456789");
  b.shrink_to(10);
  EXPECT_EQ(b.capacity(), 10u);
  EXPECT_EQ(contents(b), "0123456789");
  EXPECT_TRUE(b.writable().empty());
}

TEST(Buffer, ReleaseIfEmptyFreesStorage) {
  Buffer b(1024);
  b.release_if_empty();
  EXPECT_EQ(b.capacity(), 0u);
  EXPECT_TRUE(b.writable().empty());
  // Usable again afterwards.
  write(b, "again");
  EXPECT_EQ(contents(b), "again");
}

TEST(Buffer, ReleaseIfEmptyKeepsUnreadBytes) {
  Buffer b(1024);
  write(b, "pending");
  b.release_if_empty();
  EXPECT_EQ(b.capacity(), 1024u);
  EXPECT_EQ(contents(b), "pending");
  b.consume(7);
  b.release_if_empty();
  EXPECT_EQ(b.capacity(), 0u);
}

TEST(Buffer, ManyWriteConsumeCyclesStayWithinCapacity) {
  Buffer b(64);
  std::string expected;
  for (int i = 0; i < 1000; ++i) {
    std::string piece(static_cast<std::size_t>(i % 13 + 1), static_cast<char>('a' + i % 26));
    write(b, piece);
    expected += piece;
    std::size_t take = std::min<std::size_t>(b.size(), static_cast<std::size_t>(i % 17));
    ASSERT_EQ(contents(b).substr(0, take), expected.substr(0, take));
    b.consume(take);
    expected.erase(0, take);
    ASSERT_EQ(contents(b), expected);
  }
  EXPECT_LE(b.capacity(), 1024u);
}

TEST(Buffer, ReleasedStandardBlocksAreReusedOnTheSameThread) {
  const std::size_t standard = Buffer::recycled_capacity;
  Buffer a(standard);
  const std::uint8_t* block = a.writable().data();
  a.release_if_empty();
  // Had `a` given its block back to malloc, this allocation of the same size would most likely take it.
  void* other = ::operator new[](standard);
  Buffer b(standard);
  EXPECT_EQ(b.writable().data(), block);  // the block a gave back
  write(b, "kept");
  EXPECT_EQ(contents(b), "kept");
  ::operator delete[](other);
}

TEST(Buffer, GrowingFromAStandardBlockKeepsUnreadBytes) {
  Buffer b(Buffer::recycled_capacity);
  write(b, std::string(100, 'x') + "end");
  b.consume(100);
  b.reserve(Buffer::recycled_capacity * 2);
  EXPECT_EQ(contents(b), "end");
  EXPECT_EQ(b.capacity(), Buffer::recycled_capacity * 2);
  b.shrink_to(Buffer::recycled_capacity);
  EXPECT_EQ(contents(b), "end");
  EXPECT_EQ(b.capacity(), Buffer::recycled_capacity);
}

TEST(Buffer, ManyBuffersAtOnceEachGetTheirOwnBlock) {
  // More live buffers than the cache holds: every block is distinct and keeps its own bytes.
  std::vector<Buffer> live(10);
  for (std::size_t i = 0; i < live.size(); ++i) {
    live[i].reserve(Buffer::recycled_capacity);
    write(live[i], std::to_string(i));
  }
  for (std::size_t i = 0; i < live.size(); ++i) {
    EXPECT_EQ(contents(live[i]), std::to_string(i));
    for (std::size_t j = i + 1; j < live.size(); ++j)
      EXPECT_NE(live[i].readable().data(), live[j].readable().data());
  }
  for (Buffer& b : live) {
    b.consume(b.size());
    b.release_if_empty();
  }
}

}  // namespace
}  // namespace pgw::protocol
