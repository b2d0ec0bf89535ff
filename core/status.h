#pragma once
// Status and Result<T>: the error types of the whole project.
//
// Thread-safety: value types; distinct objects may be used from different threads, one object
// must not be mutated concurrently (same contract as std::string).
// Cost: an OK Status holds one null pointer, so returning OK costs nothing; an error allocates
// its state once (errors are cold). No exceptions are thrown anywhere in this file.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>

#include "core/assert.h"

namespace edgehub::core {

// The error categories. Deliberately few: callers branch on the code, humans read the message.
enum class StatusCode : uint8_t {
  kOk = 0,
  kInvalidArgument,   // bad input from outside: malformed manifest, packet, token, JSON, flag
  kNotFound,
  kAlreadyExists,
  kPermissionDenied,  // authenticated but not allowed
  kUnauthenticated,   // credentials missing or wrong
  kResourceExhausted, // a bound was hit: queue full, store full, message too large
  kFailedPrecondition,
  kUnavailable,       // transient: peer gone, link down; retry later
  kIoError,           // disk or socket error from the OS or a library
  kCorruption,        // stored data is damaged
  kCancelled,
  kInternal,          // a bug
};

std::string_view statusCodeName(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message);

  Status(const Status& other);
  Status& operator=(const Status& other);
  Status(Status&&) noexcept = default;
  Status& operator=(Status&&) noexcept = default;

  static Status ok() { return Status(); }

  bool isOk() const { return state_ == nullptr; }
  explicit operator bool() const { return isOk(); }
  StatusCode code() const { return state_ ? state_->code : StatusCode::kOk; }
  // The human-readable reason; empty for OK.
  std::string_view message() const { return state_ ? std::string_view(state_->message) : ""; }
  // "INVALID_ARGUMENT: reason" or "OK".
  std::string toString() const;

  // Returns a copy whose message is "context: message" (for adding where an error happened).
  Status withContext(std::string_view context) const;

  // Marks a deliberately ignored error (the call site says why in a comment).
  void permitUncheckedError() const {}

 private:
  struct State {
    StatusCode code;
    std::string message;
  };
  std::unique_ptr<State> state_;
};

inline bool operator==(const Status& a, const Status& b) {
  return a.code() == b.code() && a.message() == b.message();
}

// Shorthands for the common codes.
Status invalidArgument(std::string message);
Status notFound(std::string message);
Status alreadyExists(std::string message);
Status permissionDenied(std::string message);
Status unauthenticated(std::string message);
Status resourceExhausted(std::string message);
Status failedPrecondition(std::string message);
Status unavailable(std::string message);
Status ioError(std::string message);
Status corruption(std::string message);
Status internalError(std::string message);

// Result<T>: either a T or a non-OK Status.
template <typename T>
class [[nodiscard]] Result {
  static_assert(!std::is_same_v<std::remove_cv_t<T>, Status>, "use Status directly");

 public:
  Result(T value) : value_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Status status) : status_(std::move(status)) {  // NOLINT: implicit by design
    HUB_RELEASE_ASSERT(!status_.isOk(), "Result constructed from an OK Status without a value");
  }

  bool isOk() const { return value_.has_value(); }
  explicit operator bool() const { return isOk(); }
  const Status& status() const { return status_; }

  T& value() & {
    HUB_RELEASE_ASSERT(isOk(), "Result::value() on an error");
    return *value_;
  }
  const T& value() const& {
    HUB_RELEASE_ASSERT(isOk(), "Result::value() on an error");
    return *value_;
  }
  T&& value() && {
    HUB_RELEASE_ASSERT(isOk(), "Result::value() on an error");
    return std::move(*value_);
  }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  std::optional<T> value_;
  Status status_;
};

}  // namespace edgehub::core

// Propagation helpers. HUB_RETURN_IF_ERROR(expr) returns the Status of expr if it is not OK.
#define HUB_RETURN_IF_ERROR(expr)                     \
  do {                                                \
    ::edgehub::core::Status hub_status_ = (expr);     \
    if (!hub_status_.isOk()) return hub_status_;      \
  } while (0)

#define HUB_CONCAT_INNER_(a, b) a##b
#define HUB_CONCAT_(a, b) HUB_CONCAT_INNER_(a, b)
// HUB_ASSIGN_OR_RETURN(auto x, expr): x = expr.value(), or return expr's status.
#define HUB_ASSIGN_OR_RETURN(lhs, expr) \
  HUB_ASSIGN_OR_RETURN_IMPL_(HUB_CONCAT_(hub_result_, __LINE__), lhs, expr)
#define HUB_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                               \
  if (!tmp.isOk()) return tmp.status();            \
  lhs = std::move(tmp).value()
