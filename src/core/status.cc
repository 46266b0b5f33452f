#include "weft/core/status.h"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace weft {

const char* CodeName(Code code) {
  switch (code) {
    case Code::kOk: return "ok";
#define WEFT_CODE_NAME(E, n, name, ...) \
  case Code::k##E:                     \
    return name;
    WEFT_STATUS_CODES(WEFT_CODE_NAME)
#undef WEFT_CODE_NAME
  }
  return "unknown";
}

Retry CodeRetry(Code code) {
  switch (code) {
    case Code::kOk: return Retry::kNo;
#define WEFT_CODE_RETRY(E, n, name, c, py, retry, ...) \
  case Code::k##E:                                    \
    return Retry::retry;
    WEFT_STATUS_CODES(WEFT_CODE_RETRY)
#undef WEFT_CODE_RETRY
  }
  return Retry::kNo;
}

const char* CodeDescription(Code code) {
  switch (code) {
    case Code::kOk: return "success";
#define WEFT_CODE_DESCRIPTION(E, n, name, c, py, retry, description) \
  case Code::k##E:                                                  \
    return description;
    WEFT_STATUS_CODES(WEFT_CODE_DESCRIPTION)
#undef WEFT_CODE_DESCRIPTION
  }
  return "unknown code";
}

Status::Status(Code code, std::string message) {
  if (code != Code::kOk) rep_ = reinterpret_cast<uintptr_t>(new State{code, std::move(message)});
}

Status::Status(const Status& other) : rep_(other.rep_) {
  if (rep_ != 0 && (rep_ & kBorrowed) == 0) rep_ = reinterpret_cast<uintptr_t>(new State(*other.state()));
}

Status& Status::operator=(const Status& other) {
  if (this != &other) {
    Status copy(other);
    *this = std::move(copy);
  }
  return *this;
}

Status& Status::operator=(Status&& other) noexcept {
  if (this != &other) {
    Drop();
    rep_ = other.rep_;
    other.rep_ = 0;
  }
  return *this;
}

const std::string& Status::message() const {
  static const std::string kEmpty;
  return rep_ ? state()->message : kEmpty;
}

std::string Status::ToString() const {
  if (ok()) return "ok";
  std::string s = CodeName(state()->code);
  if (!state()->message.empty()) {
    s += ": ";
    s += state()->message;
  }
  return s;
}

Status& Status::Annotate(std::string_view context) {
  if (rep_ == 0) return *this;
  std::string m(context);
  m += ": ";
  m += state()->message;
  *this = Status(state()->code, std::move(m));  // a Fixed is never written: the copy is ours
  return *this;
}

Status ErrnoStatus(int err, std::string_view what) {
  Code code = Code::kIoError;
  if (err == ENOENT) code = Code::kNotFound;
  if (err == EEXIST) code = Code::kAlreadyExists;
  if (err == EACCES || err == EPERM) code = Code::kPermissionDenied;
  if (err == EINVAL || err == ENAMETOOLONG) code = Code::kInvalidArgument;
  std::string m(what);
  m += ": ";
  m += std::strerror(err);
  return Status(code, std::move(m));
}

namespace internal {
void AssertFail(const char* cond, const char* msg, const char* file, int line) {
  std::fprintf(stderr, "weft: assertion failed at %s:%d: %s (%s)\n", file, line, cond, msg);
  std::abort();
}
}  // namespace internal

}  // namespace weft
