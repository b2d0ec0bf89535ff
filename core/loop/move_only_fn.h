#pragma once
// MoveOnlyFunction<R(Args...)>: a move-only type-erased callable with small-buffer storage,
// standing in for C++23 std::move_only_function. MoveOnlyFn is the void() flavour used by
// Loop::post() and the handle wrappers.
//
// Why not std::function: it requires copyable targets (so no captured unique_ptr or
// MessageRef) and allocates for anything beyond two pointers in libstdc++. Here callables up to
// kInlineSize bytes with nothrow moves live inline, so posting a lambda that captures a few
// pointers allocates nothing; larger ones fall back to one heap allocation.
//
// Thread-safety: a value type; one object must not be used by two threads at once. Moving it
// to another thread (through a queue) is the intended use.
// Invoking an empty MoveOnlyFunction is a bug (asserts in debug builds).
#include <cstddef>
#include <new>
#include <type_traits>
#include <utility>

#include "core/assert.h"

namespace edgehub::core {

template <typename Signature>
class MoveOnlyFunction;

template <typename R, typename... Args>
class MoveOnlyFunction<R(Args...)> {
 public:
  // 40 bytes inline (five pointers) + the ops pointer = 48 bytes at 16-byte alignment, so an
  // MPSC queue cell (8-byte sequence number, padded to 16, plus this) is one 64-byte line.
  static constexpr std::size_t kInlineSize = 40;

  MoveOnlyFunction() noexcept = default;
  MoveOnlyFunction(std::nullptr_t) noexcept {}  // NOLINT: implicit like std::function

  template <typename F, typename D = std::decay_t<F>,
            typename = std::enable_if_t<!std::is_same_v<D, MoveOnlyFunction> &&
                                        std::is_invocable_r_v<R, D&, Args...>>>
  MoveOnlyFunction(F&& f) noexcept {  // NOLINT: implicit like std::function
    if constexpr (fitsInline<D>()) {
      ::new (static_cast<void*>(storage_)) D(std::forward<F>(f));
      ops_ = &kInlineOps<D>;
    } else {
      *reinterpret_cast<D**>(storage_) = new D(std::forward<F>(f));
      ops_ = &kHeapOps<D>;
    }
  }

  MoveOnlyFunction(MoveOnlyFunction&& other) noexcept { moveFrom(other); }
  MoveOnlyFunction& operator=(MoveOnlyFunction&& other) noexcept {
    if (this != &other) {
      reset();
      moveFrom(other);
    }
    return *this;
  }
  MoveOnlyFunction& operator=(std::nullptr_t) noexcept {
    reset();
    return *this;
  }
  MoveOnlyFunction(const MoveOnlyFunction&) = delete;
  MoveOnlyFunction& operator=(const MoveOnlyFunction&) = delete;

  ~MoveOnlyFunction() { reset(); }

  explicit operator bool() const noexcept { return ops_ != nullptr; }

  R operator()(Args... args) {
    HUB_ASSERT(ops_ != nullptr, "calling an empty MoveOnlyFunction");
    return ops_->invoke(storage_, std::forward<Args>(args)...);
  }

  // Destroys the target (and what it captured) now; the function becomes empty.
  void reset() noexcept {
    if (ops_ != nullptr) {
      ops_->destroy(storage_);
      ops_ = nullptr;
    }
  }

 private:
  struct Ops {
    R (*invoke)(void* storage, Args&&... args);
    // Move-constructs the target from src storage into dst storage and destroys src's target.
    void (*relocate)(void* dst, void* src) noexcept;
    void (*destroy)(void* storage) noexcept;
  };

  template <typename D>
  static constexpr bool fitsInline() {
    return sizeof(D) <= kInlineSize && alignof(D) <= alignof(std::max_align_t) &&
           std::is_nothrow_move_constructible_v<D>;
  }

  template <typename D>
  static constexpr Ops kInlineOps = {
      [](void* s, Args&&... args) -> R {
        return (*std::launder(static_cast<D*>(s)))(std::forward<Args>(args)...);
      },
      [](void* dst, void* src) noexcept {
        D* from = std::launder(static_cast<D*>(src));
        ::new (dst) D(std::move(*from));
        from->~D();
      },
      [](void* s) noexcept { std::launder(static_cast<D*>(s))->~D(); },
  };

  template <typename D>
  static constexpr Ops kHeapOps = {
      [](void* s, Args&&... args) -> R {
        return (**static_cast<D**>(s))(std::forward<Args>(args)...);
      },
      [](void* dst, void* src) noexcept {
        *static_cast<D**>(dst) = *static_cast<D**>(src);  // The pointer moves; the target stays.
      },
      [](void* s) noexcept { delete *static_cast<D**>(s); },
  };

  void moveFrom(MoveOnlyFunction& other) noexcept {
    if (other.ops_ != nullptr) {
      other.ops_->relocate(storage_, other.storage_);
      ops_ = other.ops_;
      other.ops_ = nullptr;
    }
  }

  alignas(std::max_align_t) unsigned char storage_[kInlineSize];
  const Ops* ops_ = nullptr;
};

using MoveOnlyFn = MoveOnlyFunction<void()>;

}  // namespace edgehub::core
