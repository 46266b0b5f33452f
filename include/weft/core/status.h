// Status and Result<T>: how every Weft call reports success or a failure.
//
// A Status is OK or carries a Code with a fixed number (the same numbers as the C ABI's
// WEFT_E* values) and a message. Result<T> holds either a T or a non-OK Status.
// Thread rule: values; no sharing. Nothing here throws.
//
//   Result<Segment> seg = Segment::Open("frames", SegmentKind::kChannel);
//   if (!seg.ok()) return seg.status().Annotate("opening input");
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "weft/core/assert.h"

namespace weft {

// Fixed numbers: they are part of the C ABI and never change meaning.
enum class Code : int {
  kOk = 0,
  kInvalidArgument = 1,   // a name, size or option is not acceptable
  kNotFound = 2,          // no such segment, file or object
  kAlreadyExists = 3,     // creating something that exists
  kWouldBlock = 4,        // a non-blocking call could not proceed now
  kTimeout = 5,           // the deadline passed first
  kPeerDead = 6,          // the other side died; committed data stays readable
  kClosed = 7,            // the other side or this handle closed cleanly
  kTooLarge = 8,          // a record or request above a fixed limit
  kCorrupt = 9,           // bytes that fail validation
  kVersionMismatch = 10,  // a format version this build does not read
  kWrongKind = 11,        // a segment of another kind
  kBusy = 12,             // a role is held by a live process
  kIoError = 13,          // an operating-system call failed
  kContractMismatch = 14, // RPC contract differs between the two sides
  kInternal = 15,         // a bug; please report
  kPermissionDenied = 16, // not allowed by the operating system
  kOutOfRange = 17,       // a position outside what exists (for example removed by retention)
  kCancelled = 18,        // the caller cancelled the operation
};

// Returns a stable lower-case name for `code` ("peer_dead").
const char* CodeName(Code code);

class [[nodiscard]] Status {
 public:
  Status() = default;  // OK
  Status(Code code, std::string message);
  Status(const Status& other);
  Status& operator=(const Status& other);
  Status(Status&&) noexcept = default;
  Status& operator=(Status&&) noexcept = default;

  static Status Ok() { return Status(); }

  bool ok() const { return state_ == nullptr; }
  Code code() const { return state_ ? state_->code : Code::kOk; }
  // Empty for OK.
  const std::string& message() const;
  // "peer_dead: producer 1234 exited"
  std::string ToString() const;

  // Prepends context: "opening input: not_found: ...". No-op on OK.
  Status& Annotate(std::string_view context);
  // Marks a Status as deliberately unused.
  void IgnoreError() const {}

 private:
  struct State {
    Code code;
    std::string message;
  };
  std::unique_ptr<State> state_;
};

// Builds a Status from errno after a failed system call: "shm_open(/weft.x): No such file".
Status ErrnoStatus(int err, std::string_view what);

inline Status InvalidArgument(std::string m) { return Status(Code::kInvalidArgument, std::move(m)); }
inline Status NotFound(std::string m) { return Status(Code::kNotFound, std::move(m)); }
inline Status Corrupt(std::string m) { return Status(Code::kCorrupt, std::move(m)); }
inline Status TooLarge(std::string m) { return Status(Code::kTooLarge, std::move(m)); }

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : value_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Status status) : status_(std::move(status)) {  // NOLINT: implicit by design
    WEFT_ASSERT(!status_.ok(), "Result built from an OK Status without a value");
  }

  bool ok() const { return value_.has_value(); }
  const Status& status() const { return status_; }
  // REQUIRES: ok().
  T& value() & { WEFT_ASSERT(ok(), "value() on an error Result"); return *value_; }
  const T& value() const& { WEFT_ASSERT(ok(), "value() on an error Result"); return *value_; }
  T&& value() && { WEFT_ASSERT(ok(), "value() on an error Result"); return std::move(*value_); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }

 private:
  Status status_;
  std::optional<T> value_;
};

}  // namespace weft

// Returns early from the enclosing function when `expr` is not OK.
#define WEFT_RETURN_IF_ERROR(expr)            \
  do {                                        \
    ::weft::Status weft_status_ = (expr);     \
    if (!weft_status_.ok()) return weft_status_; \
  } while (0)
