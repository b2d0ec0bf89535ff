#pragma once
// SpscRing<T>: a bounded, lock-free, single-producer single-consumer FIFO ring.
//
// Layout: head_ (next slot to read, written by the consumer) and tail_ (next slot to write,
// written by the producer) sit on separate cache lines. Each side also keeps a private cached
// copy of the other side's index and re-reads the shared one only when the cache says
// "full"/"empty", so in steady state a push or pop touches no cache line the other thread is
// writing. Indices grow without wrapping into the mask (size_t overflow is harmless since
// capacity is a power of two). Nothing is allocated after construction.
//
// Thread-safety: exactly one producer thread calls tryPush()/tryEmplace(), exactly one consumer
// thread calls tryPop()/popBatch(). Changing which thread plays a role needs an external
// happens-before (e.g. a thread join). capacity() is safe anywhere; approxSize() is racy.
// Ownership: the ring owns the elements it holds; elements left at destruction are destroyed.
// Progress: both sides are wait-free.
#include <atomic>
#include <cstddef>
#include <memory>
#include <new>
#include <type_traits>
#include <utility>

#include "core/queue/mpsc_queue.h"  // kCacheLineSize, roundUpToPowerOfTwo

namespace edgehub::core {

template <typename T>
class SpscRing {
  static_assert(std::is_nothrow_move_constructible_v<T>);
  static_assert(std::is_nothrow_destructible_v<T>);

 public:
  // Capacity is rounded up to a power of two (minimum 1).
  explicit SpscRing(std::size_t capacity)
      : mask_(roundUpToPowerOfTwo(capacity == 0 ? 1 : capacity) - 1),
        slots_(std::make_unique<Slot[]>(mask_ + 1)) {}

  ~SpscRing() {
    // Runs after both threads are done (owner's guarantee).
    const std::size_t tail = tail_.load(std::memory_order_acquire);
    for (std::size_t i = head_.load(std::memory_order_relaxed); i != tail; ++i) {
      slots_[i & mask_].ptr()->~T();
    }
  }

  SpscRing(const SpscRing&) = delete;
  SpscRing& operator=(const SpscRing&) = delete;

  // REQUIRES: producer thread. Returns false (args untouched) when full.
  template <typename... Args>
  [[nodiscard]] bool tryEmplace(Args&&... args) noexcept {
    const std::size_t tail = tail_.load(std::memory_order_relaxed);
    if (tail - cached_head_ > mask_) {
      cached_head_ = head_.load(std::memory_order_acquire);  // Pairs with the consumer's release.
      if (tail - cached_head_ > mask_) return false;
    }
    ::new (static_cast<void*>(slots_[tail & mask_].storage)) T(std::forward<Args>(args)...);
    tail_.store(tail + 1, std::memory_order_release);  // Publish the element.
    return true;
  }

  // REQUIRES: producer thread.
  [[nodiscard]] bool tryPush(T&& value) noexcept { return tryEmplace(std::move(value)); }

  // REQUIRES: consumer thread. Moves the oldest element into out; false when empty.
  [[nodiscard]] bool tryPop(T& out) noexcept {
    const std::size_t head = head_.load(std::memory_order_relaxed);
    if (head == cached_tail_) {
      cached_tail_ = tail_.load(std::memory_order_acquire);  // Pairs with the producer's release.
      if (head == cached_tail_) return false;
    }
    T* p = slots_[head & mask_].ptr();
    out = std::move(*p);
    p->~T();
    head_.store(head + 1, std::memory_order_release);  // Give the slot back to the producer.
    return true;
  }

  // REQUIRES: consumer thread. Calls fn(T&&) for up to max_items ready elements, oldest first,
  // and frees their slots with a single release store at the end (one shared-line write per
  // batch instead of per element). Returns the number consumed. fn must not touch the ring.
  template <typename Fn>
  std::size_t popBatch(Fn&& fn, std::size_t max_items) noexcept {
    const std::size_t head = head_.load(std::memory_order_relaxed);
    std::size_t avail = cached_tail_ - head;
    if (avail == 0) {
      cached_tail_ = tail_.load(std::memory_order_acquire);
      avail = cached_tail_ - head;
      if (avail == 0) return 0;
    }
    const std::size_t n = avail < max_items ? avail : max_items;
    for (std::size_t i = 0; i < n; ++i) {
      T* p = slots_[(head + i) & mask_].ptr();
      fn(std::move(*p));
      p->~T();
    }
    head_.store(head + n, std::memory_order_release);
    return n;
  }

  std::size_t capacity() const noexcept { return mask_ + 1; }

  std::size_t approxSize() const noexcept {
    const std::size_t tail = tail_.load(std::memory_order_relaxed);
    const std::size_t head = head_.load(std::memory_order_relaxed);
    return tail >= head ? tail - head : 0;
  }

 private:
  struct Slot {
    alignas(T) unsigned char storage[sizeof(T)];
    T* ptr() noexcept { return std::launder(reinterpret_cast<T*>(storage)); }
  };

  const std::size_t mask_;
  const std::unique_ptr<Slot[]> slots_;
  // Consumer line: the shared head plus the consumer's private view of tail.
  alignas(kCacheLineSize) std::atomic<std::size_t> head_{0};
  std::size_t cached_tail_ = 0;
  // Producer line: the shared tail plus the producer's private view of head.
  alignas(kCacheLineSize) std::atomic<std::size_t> tail_{0};
  std::size_t cached_head_ = 0;
};

}  // namespace edgehub::core
