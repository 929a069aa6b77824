// Byte views and a bounded big-endian reader over one message body (PostgreSQL docs 55.6: data types).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string_view>

#include "pgw/protocol/error.hpp"

namespace pgw::protocol {

using Bytes = std::span<const std::uint8_t>;

inline std::string_view as_text(Bytes b) noexcept {
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}
inline Bytes as_bytes(std::string_view s) noexcept {
  return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

inline std::uint32_t load_u32(const std::uint8_t* p) noexcept {
  return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) | p[3];
}
inline std::uint16_t load_u16(const std::uint8_t* p) noexcept {
  return static_cast<std::uint16_t>((p[0] << 8) | p[1]);
}

// Reads fields front to back; the first failure sticks, so a decoder checks once at the end.
class Reader {
 public:
  explicit Reader(Bytes body) noexcept : p_(body.data()), end_(body.data() + body.size()) {}

  std::uint8_t u8() noexcept {
    if (!need(1)) return 0;
    return *p_++;
  }
  std::int16_t i16() noexcept {
    if (!need(2)) return 0;
    auto v = static_cast<std::int16_t>(load_u16(p_));
    p_ += 2;
    return v;
  }
  std::int32_t i32() noexcept {
    if (!need(4)) return 0;
    auto v = static_cast<std::int32_t>(load_u32(p_));
    p_ += 4;
    return v;
  }
  // A NUL-terminated string that must end inside the body; the view excludes the NUL.
  std::string_view cstring() noexcept {
    if (error_ != Error::none) return {};
    // An empty view may hold a null pointer, which memchr must not be given even with a zero length.
    const void* nul = p_ == end_ ? nullptr : std::memchr(p_, 0, static_cast<std::size_t>(end_ - p_));
    if (nul == nullptr) {
      error_ = Error::missing_terminator;
      return {};
    }
    auto* z = static_cast<const std::uint8_t*>(nul);
    std::string_view s(reinterpret_cast<const char*>(p_), static_cast<std::size_t>(z - p_));
    p_ = z + 1;
    return s;
  }
  Bytes bytes(std::size_t n) noexcept {
    if (!need(n)) return {};
    Bytes b(p_, n);
    p_ += n;
    return b;
  }
  Bytes rest() noexcept {
    Bytes b(p_, static_cast<std::size_t>(end_ - p_));
    p_ = end_;
    return b;
  }
  const std::uint8_t* position() const noexcept { return p_; }
  std::size_t remaining() const noexcept { return static_cast<std::size_t>(end_ - p_); }
  void fail(Error e) noexcept {
    if (error_ == Error::none) error_ = e;
  }
  // The decoder's verdict: the first error, or trailing_bytes if the body was not consumed exactly.
  Error finish() const noexcept {
    if (error_ != Error::none) return error_;
    return p_ == end_ ? Error::none : Error::trailing_bytes;
  }
  Error error() const noexcept { return error_; }

 private:
  bool need(std::size_t n) noexcept {
    if (error_ != Error::none) return false;
    if (static_cast<std::size_t>(end_ - p_) < n) {
      error_ = Error::truncated;
      return false;
    }
    return true;
  }
  const std::uint8_t* p_;
  const std::uint8_t* end_;
  Error error_ = Error::none;
};

}  // namespace pgw::protocol
