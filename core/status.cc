#include "core/status.h"

#include <atomic>
#include <cstdio>
#include <cstdlib>

namespace edgehub::core {

std::string_view statusCodeName(StatusCode code) {
  switch (code) {
    case StatusCode::kOk: return "OK";
    case StatusCode::kInvalidArgument: return "INVALID_ARGUMENT";
    case StatusCode::kNotFound: return "NOT_FOUND";
    case StatusCode::kAlreadyExists: return "ALREADY_EXISTS";
    case StatusCode::kPermissionDenied: return "PERMISSION_DENIED";
    case StatusCode::kUnauthenticated: return "UNAUTHENTICATED";
    case StatusCode::kResourceExhausted: return "RESOURCE_EXHAUSTED";
    case StatusCode::kFailedPrecondition: return "FAILED_PRECONDITION";
    case StatusCode::kUnavailable: return "UNAVAILABLE";
    case StatusCode::kIoError: return "IO_ERROR";
    case StatusCode::kCorruption: return "CORRUPTION";
    case StatusCode::kCancelled: return "CANCELLED";
    case StatusCode::kInternal: return "INTERNAL";
  }
  return "UNKNOWN";
}

Status::Status(StatusCode code, std::string message) {
  // An "error" with code OK would be indistinguishable from success; treat it as a bug.
  HUB_RELEASE_ASSERT(code != StatusCode::kOk, "Status with code OK and a message");
  state_ = std::make_unique<State>(State{code, std::move(message)});
}

Status::Status(const Status& other)
    : state_(other.state_ ? std::make_unique<State>(*other.state_) : nullptr) {}

Status& Status::operator=(const Status& other) {
  if (this != &other) state_ = other.state_ ? std::make_unique<State>(*other.state_) : nullptr;
  return *this;
}

std::string Status::toString() const {
  if (isOk()) return "OK";
  std::string out(statusCodeName(state_->code));
  out += ": ";
  out += state_->message;
  return out;
}

Status Status::withContext(std::string_view context) const {
  if (isOk()) return Status();
  std::string msg(context);
  msg += ": ";
  msg += state_->message;
  return Status(state_->code, std::move(msg));
}

Status invalidArgument(std::string m) { return Status(StatusCode::kInvalidArgument, std::move(m)); }
Status notFound(std::string m) { return Status(StatusCode::kNotFound, std::move(m)); }
Status alreadyExists(std::string m) { return Status(StatusCode::kAlreadyExists, std::move(m)); }
Status permissionDenied(std::string m) { return Status(StatusCode::kPermissionDenied, std::move(m)); }
Status unauthenticated(std::string m) { return Status(StatusCode::kUnauthenticated, std::move(m)); }
Status resourceExhausted(std::string m) { return Status(StatusCode::kResourceExhausted, std::move(m)); }
Status failedPrecondition(std::string m) { return Status(StatusCode::kFailedPrecondition, std::move(m)); }
Status unavailable(std::string m) { return Status(StatusCode::kUnavailable, std::move(m)); }
Status ioError(std::string m) { return Status(StatusCode::kIoError, std::move(m)); }
Status corruption(std::string m) { return Status(StatusCode::kCorruption, std::move(m)); }
Status internalError(std::string m) { return Status(StatusCode::kInternal, std::move(m)); }

namespace {
std::atomic<uint64_t> g_bug_count{0};
}

void assertFailed(const char* file, int line, const char* cond, const char* msg) noexcept {
  std::fprintf(stderr, "edgehub: assertion failed at %s:%d: %s (%s)\n", file, line, cond, msg);
  std::fflush(stderr);
  std::abort();
}

void reportBug(const char* file, int line, const char* msg) noexcept {
  g_bug_count.fetch_add(1, std::memory_order_relaxed);
  std::fprintf(stderr, "edgehub: BUG at %s:%d: %s\n", file, line, msg);
#ifndef NDEBUG
  std::abort();
#endif
}

uint64_t bugCount() noexcept { return g_bug_count.load(std::memory_order_relaxed); }

}  // namespace edgehub::core
