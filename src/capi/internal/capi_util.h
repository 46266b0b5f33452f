// Shared helpers of the C ABI: the thread-local last error and Status-to-code conversion.
#pragma once

#include <string>

#include "weft/core/clock.h"
#include "weft/core/status.h"

namespace weft::capi {

// The calling thread's last error message.
std::string& LastError();

// Every int-returning ABI function starts here: the last error describes only the calling
// thread's latest call, so a success leaves it empty (weft.h's convention).
inline void Enter() { LastError().clear(); }

// Records `s` as the last error and returns its code.
inline int Fail(const Status& s) {
  LastError() = s.ToString();
  return static_cast<int>(s.code());
}
inline int FailInvalid(const char* what) {
  LastError() = std::string("invalid_argument: ") + what;
  return static_cast<int>(Code::kInvalidArgument);
}
inline int Done(const Status& s) { return s.ok() ? 0 : Fail(s); }

// 0: do not wait; negative: no limit; else nanoseconds from now.
inline Deadline ToDeadline(int64_t timeout_ns) {
  if (timeout_ns < 0) return Deadline::Never();
  if (timeout_ns == 0) return Deadline::Now();
  return Deadline::AfterNs(timeout_ns);
}

}  // namespace weft::capi
