// A place where one coroutine waits until code on the same thread wakes it: the server side of a session in
// transaction mode, between transactions.
#pragma once

#include <array>
#include <cstddef>
#include <new>
#include <type_traits>
#include <utility>

#include <boost/asio/async_result.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

namespace pgw::proxy {

// A steady_timer armed and cancelled once per transaction cost its timer queue insertion and removal, a
// cancellation handler installed and cleared, and a completion through the reactor. Parking holds the
// waiter's completion handler itself, and wake() posts one plain function that calls it to the io_context the
// waiter runs on. A post through the handler's own (type-erased) executor costs several times more: a work
// dispatcher, a tracked executor copy and a second hop when it runs. It installs no cancellation handler:
// whoever stops the waiter wakes it (ClientSession::join_backend).
//
// The held handler owns the waiter's coroutine frames. If those can never be woken (the io_context is going
// away), drop() destroys the handler unresumed, which hands the frames' destruction to their executor.
// Not thread-safe: every call on the owning thread.
class Parking {
 public:
  // `io`: the io_context whose thread the waiter runs on (its coroutine's executor).
  explicit Parking(boost::asio::io_context& io) : executor_(io.get_executor()) {}
  Parking(const Parking&) = delete;
  Parking& operator=(const Parking&) = delete;
  ~Parking() { drop(); }

  // Completes (with no arguments) once wake() is called. At most one waiter at a time.
  template <typename Token>
  auto async_park(Token&& token) {
    return boost::asio::async_initiate<Token, void()>(
        [self = this](auto handler) { self->hold(std::move(handler)); }, token);
  }

  bool parked() const noexcept { return held_ != nullptr; }

  // Posts the waiter's completion; it resumes from the executor's queue, never inside this call. Nothing
  // when nobody is parked.
  void wake() {
    Held* held = std::exchange(held_, nullptr);
    if (held != nullptr) held->post_and_destroy(executor_);
  }

  void drop() noexcept {
    Held* held = std::exchange(held_, nullptr);
    if (held != nullptr) held->destroy();
  }

 private:
  using Executor = boost::asio::io_context::executor_type;
  struct Held {
    virtual void post_and_destroy(const Executor& executor) = 0;
    virtual void destroy() noexcept = 0;

   protected:
    ~Held() = default;
  };

  template <typename Handler>
  struct HeldHandler final : Held {
    explicit HeldHandler(Handler&& h) : handler(std::move(h)) {}
    void post_and_destroy(const Executor& executor) override {
      Handler h = std::move(handler);
      this->~HeldHandler();
      // Run from this io_context's queue, on the waiter's own thread: calling the handler there is what a
      // dispatch to its executor would do.
      boost::asio::post(executor, [h = std::move(h)]() mutable { std::move(h)(); });
    }
    void destroy() noexcept override { this->~HeldHandler(); }
    Handler handler;
  };

  template <typename Handler>
  void hold(Handler&& handler) {
    using Stored = HeldHandler<std::decay_t<Handler>>;
    // An awaitable's handler is a pointer or two; a handler that does not fit is a compile error, not a
    // heap allocation per wait.
    static_assert(sizeof(Stored) <= sizeof(storage_));
    static_assert(alignof(Stored) <= alignof(std::max_align_t));
    drop();
    held_ = ::new (storage_.data()) Stored(std::forward<Handler>(handler));
  }

  Executor executor_;
  alignas(std::max_align_t) std::array<std::byte, 64> storage_{};
  Held* held_ = nullptr;
};

}  // namespace pgw::proxy
