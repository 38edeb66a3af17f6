// Status and Result<T>: the error currency of every Fairy Farm library.
//
// A Status is cheap when OK (no allocation). A failed Status carries a code and a message that
// already names what failed (file, line, field, key), so a caller can print it as it is.
// Result<T> holds either a value or a failed Status.
#pragma once

#include <cassert>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace fairy {

class Status {
 public:
  enum class Code {
    kOk = 0,
    kInvalidArgument,     // the caller's input is wrong (a job field, a flag, a file's content)
    kNotFound,            // a file, key, job or tensor does not exist
    kIOError,             // the OS or a library failed to read or write
    kCorruption,          // data exists but is damaged (truncated file, bad checksum)
    kUnsupported,         // valid input this version cannot handle
    kFailedPrecondition,  // the system is not in a state that allows the call
    kUnavailable,         // a service (Redis, coordinator) cannot be reached now; retrying may help
    kCancelled,
    kDeadlineExceeded,
    kPermissionDenied,    // outside the storage roots, bad token
    kInternal,            // a bug of ours
  };

  Status() = default;  // OK

  static Status OK() { return Status(); }
  static Status InvalidArgument(std::string msg) { return Status(Code::kInvalidArgument, std::move(msg)); }
  static Status NotFound(std::string msg) { return Status(Code::kNotFound, std::move(msg)); }
  static Status IOError(std::string msg) { return Status(Code::kIOError, std::move(msg)); }
  static Status Corruption(std::string msg) { return Status(Code::kCorruption, std::move(msg)); }
  static Status Unsupported(std::string msg) { return Status(Code::kUnsupported, std::move(msg)); }
  static Status FailedPrecondition(std::string msg) { return Status(Code::kFailedPrecondition, std::move(msg)); }
  static Status Unavailable(std::string msg) { return Status(Code::kUnavailable, std::move(msg)); }
  static Status Cancelled(std::string msg) { return Status(Code::kCancelled, std::move(msg)); }
  static Status DeadlineExceeded(std::string msg) { return Status(Code::kDeadlineExceeded, std::move(msg)); }
  static Status PermissionDenied(std::string msg) { return Status(Code::kPermissionDenied, std::move(msg)); }
  static Status Internal(std::string msg) { return Status(Code::kInternal, std::move(msg)); }

  bool ok() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }

  // "InvalidArgument: demo.yaml:7:12: edit.steps: ..." ("OK" when ok()).
  std::string ToString() const;
  static const char* CodeName(Code code);

  // Returns a copy whose message is "context: message" (OK stays OK).
  Status WithContext(std::string_view context) const;

 private:
  Status(Code code, std::string msg) : code_(code), message_(std::move(msg)) {}

  Code code_ = Code::kOk;
  std::string message_;
};

// Either a T or a failed Status. REQUIRES: a Result is never built from an OK Status.
template <typename T>
class Result {
 public:
  Result(T value) : value_(std::move(value)) {}  // NOLINT: implicit on purpose
  Result(Status status) : status_(std::move(status)) { assert(!status_.ok()); }  // NOLINT

  bool ok() const { return value_.has_value(); }
  const Status& status() const { return status_; }

  T& value() & { assert(ok()); return *value_; }
  const T& value() const& { assert(ok()); return *value_; }
  T&& value() && { assert(ok()); return std::move(*value_); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

 private:
  Status status_;
  std::optional<T> value_;
};

}  // namespace fairy

#define FAIRY_STATUS_CONCAT_INNER(a, b) a##b
#define FAIRY_STATUS_CONCAT(a, b) FAIRY_STATUS_CONCAT_INNER(a, b)

// Returns from the calling function when `expr` (a Status) is not OK.
#define FAIRY_RETURN_IF_ERROR(expr)              \
  do {                                           \
    ::fairy::Status fairy_status_ = (expr);      \
    if (!fairy_status_.ok()) return fairy_status_; \
  } while (0)

// `lhs = value of expr` (a Result<T>), or returns its Status from the calling function.
#define FAIRY_ASSIGN_OR_RETURN(lhs, expr) \
  FAIRY_ASSIGN_OR_RETURN_IMPL(FAIRY_STATUS_CONCAT(fairy_result_, __LINE__), lhs, expr)
#define FAIRY_ASSIGN_OR_RETURN_IMPL(result, lhs, expr) \
  auto result = (expr);                                \
  if (!result.ok()) return result.status();            \
  lhs = std::move(result).value()
