#pragma once
// MpscQueue<T>: a bounded, lock-free, multi-producer single-consumer FIFO.
//
// Algorithm: a ring of cells, each with its own sequence number (after D. Vyukov's bounded
// queue). A producer claims a slot by CAS on the shared enqueue counter only when the slot's
// sequence says it is free, constructs the element in place, then publishes it by storing a new
// sequence with release order. The single consumer needs no atomic RMW at all: it reads the
// sequence of the next cell with acquire order, moves the element out and hands the cell back to
// producers for the next lap. Nothing is allocated after construction.
//
// Why bounded: an unbounded cross-thread queue turns overload into OOM (style anti-pattern 6).
// tryPush() fails when the queue is full, so the caller decides (drop and count, retry later).
//
// Thread-safety: tryPush()/tryEmplace() are safe from any number of threads concurrently.
// tryPop() and empty() must be called by one consumer thread at a time (moving the consumer
// role to another thread needs an external happens-before, e.g. a thread join). capacity() is
// safe anywhere; approxSize() is a racy estimate meant for metrics.
// Ownership: the queue owns the elements it holds; elements left at destruction are destroyed.
// Progress: producers are lock-free (a CAS may retry under contention); the consumer is
// wait-free. A producer that was pre-empted between claiming and publishing a slot makes the
// consumer see "empty" at that slot until it publishes, even if later slots are ready; callers
// that pair the queue with a wake-up (Loop::post) must wake after the push, never before.
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>
#include <type_traits>
#include <utility>

#include "core/assert.h"

namespace edgehub::core {

// Producer and consumer counters live on separate cache lines so that producers hammering the
// enqueue counter do not invalidate the consumer's line. 64 is right for x86-64 and most ARMv8.
inline constexpr std::size_t kCacheLineSize = 64;

// Smallest power of two >= n (n >= 1). Capacities are powers of two so that "index modulo
// capacity" is a mask.
constexpr std::size_t roundUpToPowerOfTwo(std::size_t n) {
  std::size_t p = 1;
  while (p < n) p <<= 1;
  return p;
}

template <typename T>
class MpscQueue {
  static_assert(std::is_nothrow_move_constructible_v<T>,
                "elements are moved in and out of cells; a throwing move would corrupt the ring");
  static_assert(std::is_nothrow_destructible_v<T>);

 public:
  // Capacity is rounded up to a power of two, minimum 2 (the sequence scheme needs two cells to
  // tell "full" from "empty").
  explicit MpscQueue(std::size_t capacity)
      : mask_(roundUpToPowerOfTwo(capacity < 2 ? 2 : capacity) - 1),
        cells_(std::make_unique<Cell[]>(mask_ + 1)) {
    for (std::size_t i = 0; i <= mask_; ++i) cells_[i].seq.store(i, std::memory_order_relaxed);
  }

  ~MpscQueue() {
    // The destructor runs after every producer is gone (owner's guarantee), so draining through
    // the consumer path is race-free.
    std::size_t pos = dequeue_pos_.load(std::memory_order_relaxed);
    while (true) {
      Cell& cell = cells_[pos & mask_];
      if (cell.seq.load(std::memory_order_acquire) != pos + 1) break;
      cell.ptr()->~T();
      ++pos;
    }
  }

  MpscQueue(const MpscQueue&) = delete;
  MpscQueue& operator=(const MpscQueue&) = delete;

  // Constructs an element from args in the next free slot. Returns false (and leaves args
  // untouched, so an rvalue passed in is NOT moved from) when the queue is full.
  template <typename... Args>
  [[nodiscard]] bool tryEmplace(Args&&... args) noexcept {
    std::size_t pos = enqueue_pos_.load(std::memory_order_relaxed);
    Cell* cell;
    while (true) {
      cell = &cells_[pos & mask_];
      const std::size_t seq = cell->seq.load(std::memory_order_acquire);
      const auto diff = static_cast<std::intptr_t>(seq) - static_cast<std::intptr_t>(pos);
      if (diff == 0) {
        // The cell is free for this lap: claim it. Relaxed is enough because the acquire load
        // of seq above already ordered us after the consumer released the cell.
        if (enqueue_pos_.compare_exchange_weak(pos, pos + 1, std::memory_order_relaxed)) break;
        // On failure pos was reloaded by compare_exchange_weak; try the new slot.
      } else if (diff < 0) {
        return false;  // The consumer has not freed this cell from the previous lap: full.
      } else {
        pos = enqueue_pos_.load(std::memory_order_relaxed);  // Another producer won; catch up.
      }
    }
    ::new (static_cast<void*>(cell->storage)) T(std::forward<Args>(args)...);
    cell->seq.store(pos + 1, std::memory_order_release);  // Publish to the consumer.
    return true;
  }

  // Pushes by move. Returns false when full; value is then left as it was.
  [[nodiscard]] bool tryPush(T&& value) noexcept { return tryEmplace(std::move(value)); }

  // REQUIRES: single consumer. Moves the oldest published element into out and returns true,
  // or returns false when nothing is ready.
  [[nodiscard]] bool tryPop(T& out) noexcept {
    const std::size_t pos = dequeue_pos_.load(std::memory_order_relaxed);
    Cell& cell = cells_[pos & mask_];
    if (cell.seq.load(std::memory_order_acquire) != pos + 1) return false;
    T* p = cell.ptr();
    out = std::move(*p);
    p->~T();
    // Hand the cell to producers for the next lap (pos + capacity).
    cell.seq.store(pos + mask_ + 1, std::memory_order_release);
    dequeue_pos_.store(pos + 1, std::memory_order_relaxed);
    return true;
  }

  // REQUIRES: single consumer. True if the next element is not (yet) published.
  bool empty() const noexcept {
    const std::size_t pos = dequeue_pos_.load(std::memory_order_relaxed);
    const Cell& cell = cells_[pos & mask_];
    return cell.seq.load(std::memory_order_acquire) != pos + 1;
  }

  std::size_t capacity() const noexcept { return mask_ + 1; }

  // Racy estimate (claimed minus consumed) for metrics; may include claimed-unpublished slots.
  std::size_t approxSize() const noexcept {
    const std::size_t enq = enqueue_pos_.load(std::memory_order_relaxed);
    const std::size_t deq = dequeue_pos_.load(std::memory_order_relaxed);
    return enq >= deq ? enq - deq : 0;
  }

 private:
  struct Cell {
    std::atomic<std::size_t> seq;
    alignas(T) unsigned char storage[sizeof(T)];
    T* ptr() noexcept { return std::launder(reinterpret_cast<T*>(storage)); }
  };

  const std::size_t mask_;
  const std::unique_ptr<Cell[]> cells_;
  alignas(kCacheLineSize) std::atomic<std::size_t> enqueue_pos_{0};
  // Written only by the consumer. Atomic (relaxed, a plain store on x86-64 and ARMv8) solely so
  // that approxSize() may read it from another thread. Kept on its own line, away from
  // enqueue_pos_.
  alignas(kCacheLineSize) std::atomic<std::size_t> dequeue_pos_{0};
};

}  // namespace edgehub::core
