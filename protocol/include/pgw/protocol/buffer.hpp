// A contiguous byte buffer with read and write cursors, grown on demand up to what the caller allows.
#pragma once

#include <cstdint>
#include <cstring>
#include <memory>
#include <span>

#include "pgw/protocol/bytes.hpp"

namespace pgw::protocol {

class Buffer {
 public:
  Buffer() = default;
  explicit Buffer(std::size_t capacity) { reserve(capacity); }

  Bytes readable() const noexcept { return {data_.get() + begin_, end_ - begin_}; }
  std::span<std::uint8_t> writable() noexcept { return {data_.get() + end_, capacity_ - end_}; }
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
    std::memmove(data_.get(), data_.get() + begin_, end_ - begin_);
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
    auto bigger = std::make_unique_for_overwrite<std::uint8_t[]>(total);
    if (size() > 0) std::memcpy(bigger.get(), data_.get() + begin_, size());
    end_ -= begin_;
    begin_ = 0;
    data_ = std::move(bigger);
    capacity_ = total;
  }
  // Frees the storage when nothing is buffered (idle connections hold no I/O memory).
  void release_if_empty() noexcept {
    if (empty()) {
      data_.reset();
      capacity_ = begin_ = end_ = 0;
    }
  }
  // Shrinks back to `capacity` after a large message, keeping unread bytes.
  void shrink_to(std::size_t capacity) {
    if (capacity_ <= capacity || size() > capacity) return;
    auto smaller = std::make_unique_for_overwrite<std::uint8_t[]>(capacity);
    if (size() > 0) std::memcpy(smaller.get(), data_.get() + begin_, size());
    end_ -= begin_;
    begin_ = 0;
    data_ = std::move(smaller);
    capacity_ = capacity;
  }

 private:
  std::unique_ptr<std::uint8_t[]> data_;
  std::size_t capacity_ = 0;
  std::size_t begin_ = 0;
  std::size_t end_ = 0;
};

}  // namespace pgw::protocol
