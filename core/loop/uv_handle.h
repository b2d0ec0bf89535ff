#pragma once
// Internal to core/loop/*.cc: allocation and closing of libuv handles (style rule 14).
// Handles live in raw heap memory that is released only in the close callback, never by the
// wrapper's destructor, because libuv keeps touching a closing handle until close_cb.
#include <uv.h>

#include <cstdlib>
#include <cstring>
#include <new>

#include "core/assert.h"

namespace edgehub::core::uvdetail {

// Zeroed memory for one libuv handle or request whose data points at owner.
template <typename H>
H* allocate(void* owner) {
  void* mem = std::calloc(1, sizeof(H));
  HUB_RELEASE_ASSERT(mem != nullptr, "out of memory allocating a libuv handle");
  H* h = static_cast<H*>(mem);
  h->data = owner;
  return h;
}

// close_cb that frees the memory; only for handles whose owner is already gone.
inline void freeOnClose(uv_handle_t* handle) noexcept { std::free(handle); }

// Detaches the owner (late callbacks then see data == nullptr and return) and closes the handle;
// memory is freed in close_cb. Safe on nullptr.
template <typename H>
void closeAndFree(H* h) noexcept {
  if (h == nullptr) return;
  auto* handle = reinterpret_cast<uv_handle_t*>(h);
  handle->data = nullptr;
  if (!uv_is_closing(handle)) uv_close(handle, &freeOnClose);
  // Already closing (the owner called close() earlier): that close_cb frees the memory and,
  // now that data is null, reports nothing.
}

}  // namespace edgehub::core::uvdetail
