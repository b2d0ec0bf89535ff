#pragma once
// fromUv(): the one translation from libuv error codes to core::Status (style rule 11).
// Thread-safety: pure function, safe from any thread.
#include "core/status.h"

namespace edgehub::core {

// rc is a libuv return value: 0 (or any non-negative count) is OK, a negative UV_E* code becomes
// a Status whose message is "<UV_ERR_NAME>: <strerror text>". Add where it happened with
// Status::withContext().
Status fromUv(int rc);

}  // namespace edgehub::core
