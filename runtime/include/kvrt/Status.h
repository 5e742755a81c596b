//===- Status.h - Errors as one clear sentence ------------------*- C++ -*-===//
//
// The runtime reports every failure as a Status carrying one sentence that
// names the file and the field at fault. No exceptions cross the public API.
//
//===----------------------------------------------------------------------===//
#ifndef KVRT_STATUS_H
#define KVRT_STATUS_H

#include <cassert>
#include <optional>
#include <string>
#include <utility>

namespace kvrt {

/// Success, or a failure with a message meant for the user.
class [[nodiscard]] Status {
public:
  static Status ok() { return Status(); }
  static Status error(std::string message) {
    Status s;
    s.message_ = std::move(message);
    return s;
  }
  /// A batch the KV cache (or an offload budget) has no room for right now:
  /// nothing was stored, and the same batch may fit once sequences end or
  /// are preempted (kvrt::Scheduler does).
  static Status cacheFull(std::string message) {
    Status s = error(std::move(message));
    s.cacheFull_ = true;
    return s;
  }

  bool isOk() const { return !message_.has_value(); }
  bool isCacheFull() const { return cacheFull_; }
  explicit operator bool() const { return isOk(); }
  const std::string &message() const {
    assert(message_ && "message() of an ok Status");
    return *message_;
  }

private:
  std::optional<std::string> message_;
  bool cacheFull_ = false;
};

/// A value or the Status explaining why there is none.
template <typename T> class [[nodiscard]] StatusOr {
public:
  StatusOr(T value) : value_(std::move(value)) {}
  StatusOr(Status status) : status_(std::move(status)) {
    assert(!status_.isOk() && "StatusOr built from an ok Status");
  }

  bool isOk() const { return value_.has_value(); }
  explicit operator bool() const { return isOk(); }
  const Status &status() const { return status_; }
  T &value() { return *value_; }
  const T &value() const { return *value_; }
  T *operator->() { return &*value_; }
  const T *operator->() const { return &*value_; }
  T &operator*() { return *value_; }
  const T &operator*() const { return *value_; }

private:
  std::optional<T> value_;
  Status status_;
};

} // namespace kvrt

/// Returns early from the enclosing function when `expr` failed.
#define KVRT_RETURN_IF_ERROR(expr)                                             \
  do {                                                                         \
    ::kvrt::Status kvrtStatus_ = (expr);                                       \
    if (!kvrtStatus_.isOk())                                                   \
      return kvrtStatus_;                                                      \
  } while (false)

/// Assigns the value of the StatusOr `expr` to `lhs`, or returns its error
/// from the enclosing function.
#define KVRT_ASSIGN_OR_RETURN(lhs, expr)                                       \
  do {                                                                         \
    auto kvrtValueOrError_ = (expr);                                           \
    if (!kvrtValueOrError_)                                                    \
      return kvrtValueOrError_.status();                                       \
    lhs = *kvrtValueOrError_;                                                  \
  } while (false)

#endif // KVRT_STATUS_H
