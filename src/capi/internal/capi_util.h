// Shared helpers of the C ABI: the thread-local last error and Status-to-code conversion.
#pragma once

#include <string>
#include <vector>

#include "weft/core/bytes.h"

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

// Views of `count` caller buffers (data[i], sizes[i]) in *out. Returns 0, or the code of an
// invalid argument (a NULL array, a NULL buffer with a size) with the last error naming `what`.
inline int ToViews(const void* const* data, const size_t* sizes, size_t count, const char* what,
                   std::vector<ByteView>* out) {
  if (count != 0 && (data == nullptr || sizes == nullptr)) return FailInvalid("data and sizes must not be NULL");
  out->clear();
  out->reserve(count);
  for (size_t i = 0; i < count; ++i) {
    if (data[i] == nullptr && sizes[i] != 0) return FailInvalid(what);
    out->emplace_back(static_cast<const uint8_t*>(data[i]), sizes[i]);
  }
  return 0;
}

// 0: do not wait; negative: no limit; else nanoseconds from now.
inline Deadline ToDeadline(int64_t timeout_ns) {
  if (timeout_ns < 0) return Deadline::Never();
  if (timeout_ns == 0) return Deadline::Now();
  return Deadline::AfterNs(timeout_ns);
}

}  // namespace weft::capi
