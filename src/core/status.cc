#include "weft/core/status.h"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace weft {

const char* CodeName(Code code) {
  switch (code) {
    case Code::kOk: return "ok";
    case Code::kInvalidArgument: return "invalid_argument";
    case Code::kNotFound: return "not_found";
    case Code::kAlreadyExists: return "already_exists";
    case Code::kWouldBlock: return "would_block";
    case Code::kTimeout: return "timeout";
    case Code::kPeerDead: return "peer_dead";
    case Code::kClosed: return "closed";
    case Code::kTooLarge: return "too_large";
    case Code::kCorrupt: return "corrupt";
    case Code::kVersionMismatch: return "version_mismatch";
    case Code::kWrongKind: return "wrong_kind";
    case Code::kBusy: return "busy";
    case Code::kIoError: return "io_error";
    case Code::kContractMismatch: return "contract_mismatch";
    case Code::kInternal: return "internal";
    case Code::kPermissionDenied: return "permission_denied";
    case Code::kOutOfRange: return "out_of_range";
    case Code::kCancelled: return "cancelled";
  }
  return "unknown";
}

Status::Status(Code code, std::string message) {
  if (code != Code::kOk) state_ = std::make_unique<State>(State{code, std::move(message)});
}

Status::Status(const Status& other)
    : state_(other.state_ ? std::make_unique<State>(*other.state_) : nullptr) {}

Status& Status::operator=(const Status& other) {
  if (this != &other) state_ = other.state_ ? std::make_unique<State>(*other.state_) : nullptr;
  return *this;
}

const std::string& Status::message() const {
  static const std::string kEmpty;
  return state_ ? state_->message : kEmpty;
}

std::string Status::ToString() const {
  if (ok()) return "ok";
  std::string s = CodeName(state_->code);
  if (!state_->message.empty()) {
    s += ": ";
    s += state_->message;
  }
  return s;
}

Status& Status::Annotate(std::string_view context) {
  if (state_) {
    std::string m(context);
    m += ": ";
    m += state_->message;
    state_->message = std::move(m);
  }
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
