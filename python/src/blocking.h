// Waiting from Python: a timeout in seconds (or None) to a Deadline, and blocking calls made
// with the GIL released, in slices so that Ctrl-C is honoured.
#pragma once

#include <Python.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <optional>
#include <type_traits>
#include <string>

#include "args.h"
#include "weft/core/clock.h"
#include "weft/core/status.h"

namespace weft::py_bind {

// Seconds (float) or None (no limit) to a deadline; 0 or less: do not wait.
inline Deadline ToDeadline(const std::optional<double>& timeout) {
  if (!timeout.has_value()) return Deadline::Never();
  if (*timeout <= 0) return Deadline::Now();
  return Deadline::AfterNs(static_cast<int64_t>(*timeout * 1e9));
}

// The same from a Seconds argument; weft.InvalidArgument if it was not a number or None.
inline Deadline ToDeadline(const Seconds& timeout) {
  if (timeout.bad) {
    pyerr::Raise(weft::InvalidArgument(std::string("timeout must be a number of seconds or None, not ") + timeout.type));
  }
  if (timeout.none) return Deadline::Never();
  if (!(timeout.value > 0)) return Deadline::Now();
  return Deadline::AfterNs(static_cast<int64_t>(std::min(timeout.value, 1e9) * 1e9));
}

// Adapts a Status to the Result-like interface Blocking expects.
struct StatusResult {
  Status s;
  bool ok() const { return s.ok(); }
  const Status& status() const { return s; }
};

// Runs `op(deadline)` first without releasing the GIL and without waiting; if it would
// block, waits with the GIL released, in slices so that Ctrl-C is honoured.
struct NoPin {
  void operator()() const {}
};

// `pin()` runs once, before the first wait without the GIL (EndpointCall::Pin).
template <typename Timeout, typename Op, typename Pin = NoPin>
auto Blocking(const Timeout& timeout, Op&& op, Pin&& pin = Pin{}) -> decltype(op(Deadline::Now())) {
  if constexpr (std::is_same_v<Timeout, Seconds>) {  // a bad timeout is an error even if no wait is needed
    if (timeout.bad) ToDeadline(timeout);
  }
  auto r = op(Deadline::Now());
  if (r.ok() || r.status().code() != Code::kWouldBlock) return r;
  const Deadline deadline = ToDeadline(timeout);
  if (deadline.is_now()) return r;
  pin();
  constexpr int64_t kSliceNs = 100'000'000;
  for (;;) {
    const int64_t left = deadline.RemainingNs();
    const Deadline slice = left > kSliceNs ? Deadline::AfterNs(kSliceNs) : deadline;
    {
      pybind11::gil_scoped_release nogil;
      r = op(slice);
    }
    if (r.ok() || r.status().code() != Code::kTimeout || deadline.Expired()) return r;
    if (PyErr_CheckSignals() != 0) throw pybind11::error_already_set();
  }
}

}  // namespace weft::py_bind
