#include "core/loop/uv_error.h"

#include <uv.h>

#include <string>

namespace edgehub::core {

namespace {

StatusCode codeFor(int rc) {
  switch (rc) {
    case UV_EINVAL:
    case UV_EAI_ADDRFAMILY:
    case UV_EAI_FAMILY:
    case UV_ENAMETOOLONG:
      return StatusCode::kInvalidArgument;
    case UV_ENOENT:
    case UV_EAI_NONAME:
      return StatusCode::kNotFound;
    case UV_EEXIST:
    case UV_EADDRINUSE:  // Somebody else holds the address: "already exists" is what callers test.
      return StatusCode::kAlreadyExists;
    case UV_EACCES:
    case UV_EPERM:
      return StatusCode::kPermissionDenied;
    case UV_ENOMEM:
    case UV_EMFILE:
    case UV_ENFILE:
    case UV_ENOBUFS:
    case UV_ENOSPC:
      return StatusCode::kResourceExhausted;
    case UV_EBUSY:
    case UV_EALREADY:
    case UV_EISCONN:
    case UV_ENOTCONN:
    case UV_EBADF:
      return StatusCode::kFailedPrecondition;
    case UV_ECANCELED:
      return StatusCode::kCancelled;
    case UV_EOF:
    case UV_ECONNREFUSED:
    case UV_ECONNRESET:
    case UV_ECONNABORTED:
    case UV_EPIPE:
    case UV_ETIMEDOUT:
    case UV_ENETUNREACH:
    case UV_EHOSTUNREACH:
    case UV_ENETDOWN:
    case UV_EADDRNOTAVAIL:
    case UV_EAGAIN:
      return StatusCode::kUnavailable;  // Transient or peer-related: the caller may retry.
    default:
      return StatusCode::kIoError;
  }
}

}  // namespace

Status fromUv(int rc) {
  if (rc >= 0) return Status::ok();
  std::string message = uv_err_name(rc);
  message += ": ";
  message += uv_strerror(rc);
  return Status(codeFor(rc), std::move(message));
}

}  // namespace edgehub::core
