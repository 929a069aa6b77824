// A contiguous byte buffer with read and write cursors, grown on demand up to what the caller allows.
#pragma once

#include <cstdint>
#include <cstring>
#include <span>

#include "pgw/protocol/bytes.hpp"

namespace pgw::protocol {

class Buffer {
 public:
  // Blocks of exactly this size are recycled per thread: a connection takes one for each burst of traffic
  // and gives it back when its bytes are consumed, so a busy relay neither holds memory while idle nor goes
  // to malloc for every message.
  static constexpr std::size_t recycled_capacity = std::size_t{16} * 1024;

  Buffer() = default;
  explicit Buffer(std::size_t capacity) { reserve(capacity); }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  ~Buffer() { free_block(data_, capacity_); }

  Bytes readable() const noexcept { return {data_ + begin_, end_ - begin_}; }
  std::span<std::uint8_t> writable() noexcept { return {data_ + end_, capacity_ - end_}; }
  std::size_t size() const noexcept { return end_ - begin_; }
  bool empty() const noexcept { return begin_ == end_; }
  std::size_t capacity() const noexcept { return capacity_; }

  void commit(std::size_t n) noexcept { end_ += n; }
  void consume(std::size_t n) noexcept {
    begin_ += n;
    if (begin_ == end_) begin_ = end_ = 0;
  }
  // Moves unread bytes to the front so the whole tail is writable.
  void compact() noexcept {
    if (begin_ == 0) return;
    std::memmove(data_, data_ + begin_, end_ - begin_);
    end_ -= begin_;
    begin_ = 0;
  }
  // Makes room for at least `total` unread bytes in one contiguous run.
  void reserve(std::size_t total) {
    if (total <= capacity_ - begin_) return;
    if (total <= capacity_) {
      compact();
      return;
    }
    replace(total);
  }
  // Frees the storage when nothing is buffered (idle connections hold no I/O memory).
  void release_if_empty() noexcept {
    if (empty()) {
      free_block(data_, capacity_);
      data_ = nullptr;
      capacity_ = begin_ = end_ = 0;
    }
  }
  // Shrinks back to `capacity` after a large message, keeping unread bytes.
  void shrink_to(std::size_t capacity) {
    if (capacity_ <= capacity || size() > capacity) return;
    replace(capacity);
  }

 private:
  // New storage of `capacity` bytes holding the unread ones.
  void replace(std::size_t capacity) {
    std::uint8_t* block = allocate_block(capacity);
    if (size() > 0) std::memcpy(block, data_ + begin_, size());
    free_block(data_, capacity_);
    end_ -= begin_;
    begin_ = 0;
    data_ = block;
    capacity_ = capacity;
  }
  static std::uint8_t* allocate_block(std::size_t capacity);
  static void free_block(std::uint8_t* block, std::size_t capacity) noexcept;

  std::uint8_t* data_ = nullptr;
  std::size_t capacity_ = 0;
  std::size_t begin_ = 0;
  std::size_t end_ = 0;
};

}  // namespace pgw::protocol
