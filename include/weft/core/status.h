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
#include "weft/core/status_codes.h"

namespace weft {

// Fixed numbers: they are part of the C ABI and never change meaning. The table, with each
// code's meaning and whether retrying helps, is weft/core/status_codes.h.
enum class Code : int {
  kOk = 0,
#define WEFT_CODE_ENUM(E, n, ...) k##E = n,
  WEFT_STATUS_CODES(WEFT_CODE_ENUM)
#undef WEFT_CODE_ENUM
};

// Whether and how retrying can help (see status_codes.h).
enum class Retry : int { kNo = 0, kWhenReady = 1, kBackoff = 2, kReconnect = 3 };

// Returns a stable lower-case name for `code` ("peer_dead"); "unknown" outside the table.
const char* CodeName(Code code);
// True for the failure codes of the table (not kOk): what a parser of peers' bytes accepts.
inline bool IsFailureCode(uint64_t n) { return n >= 1 && n <= WEFT_STATUS_CODE_MAX; }
// What a caller may do about `code`.
Retry CodeRetry(Code code);
// One line on what `code` means.
const char* CodeDescription(Code code);

class [[nodiscard]] Status {
  struct State {
    Code code;
    std::string message;
  };

 public:
  // A failure known in advance, for hot paths that report a miss often (a non-blocking call
  // that would block): a Status made from one allocates nothing. Give it static storage:
  //   static const Status::Fixed kEmpty{Code::kWouldBlock, "channel is empty"};
  //   return kEmpty;
  using Fixed = State;

  Status() = default;  // OK
  Status(Code code, std::string message);
  Status(const Fixed& fixed) : rep_(reinterpret_cast<uintptr_t>(&fixed) | kBorrowed) {}  // NOLINT: implicit by design
  Status(const Status& other);
  Status& operator=(const Status& other);
  Status(Status&& other) noexcept : rep_(other.rep_) { other.rep_ = 0; }
  Status& operator=(Status&& other) noexcept;
  ~Status() { Drop(); }

  static Status Ok() { return Status(); }

  bool ok() const { return rep_ == 0; }
  Code code() const { return rep_ ? state()->code : Code::kOk; }
  // Empty for OK.
  const std::string& message() const;
  // "peer_dead: producer 1234 exited"
  std::string ToString() const;

  // Prepends context: "opening input: not_found: ...". No-op on OK.
  Status& Annotate(std::string_view context);
  // Marks a Status as deliberately unused.
  void IgnoreError() const {}

 private:
  static constexpr uintptr_t kBorrowed = 1;  // the low bit: a Fixed, not ours to free
  const State* state() const { return reinterpret_cast<const State*>(rep_ & ~kBorrowed); }
  void Drop() {
    if (rep_ != 0 && (rep_ & kBorrowed) == 0) delete reinterpret_cast<State*>(rep_);
    rep_ = 0;
  }
  uintptr_t rep_ = 0;  // 0: OK; else a State, owned unless kBorrowed is set
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
