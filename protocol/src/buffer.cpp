#include "pgw/protocol/buffer.hpp"

#include <array>
#include <new>

namespace pgw::protocol {

namespace {

// A few free blocks per thread: enough for the sessions of one worker that are between two reads at the
// same moment, small enough not to matter (64 kB per thread).
struct FreeBlocks {
  std::array<std::uint8_t*, 4> blocks{};
  std::size_t count = 0;
  FreeBlocks() = default;
  FreeBlocks(const FreeBlocks&) = delete;
  FreeBlocks& operator=(const FreeBlocks&) = delete;
  ~FreeBlocks();
};

thread_local FreeBlocks free_blocks;
// Set once the thread's cache is destroyed: a Buffer freed later on this thread (a static's, say) goes
// straight to the allocator. Trivially destructible, so it outlives every other thread_local.
constinit thread_local bool cache_gone = false;

FreeBlocks::~FreeBlocks() {
  for (std::size_t i = 0; i < count; ++i)
    ::operator delete[](blocks[i]);
  count = 0;
  cache_gone = true;
}

}  // namespace

std::uint8_t* Buffer::allocate_block(std::size_t capacity) {
  if (capacity == recycled_capacity && !cache_gone && free_blocks.count > 0)
    return free_blocks.blocks[--free_blocks.count];
  return static_cast<std::uint8_t*>(::operator new[](capacity));
}

void Buffer::free_block(std::uint8_t* block, std::size_t capacity) noexcept {
  if (block == nullptr) return;
  if (capacity == recycled_capacity && !cache_gone && free_blocks.count < free_blocks.blocks.size()) {
    free_blocks.blocks[free_blocks.count++] = block;
    return;
  }
  ::operator delete[](block);
}

}  // namespace pgw::protocol
