// Waiting from Python: a timeout in seconds (or None) to a Deadline, and blocking calls made
// with the GIL released, in slices so that Ctrl-C is honoured.
#pragma once

#include <Python.h>
#include <pybind11/pybind11.h>

#include <optional>

#include "weft/core/clock.h"
#include "weft/core/status.h"

namespace weft::py_bind {

// Seconds (float) or None (no limit) to a deadline; 0 or less: do not wait.
inline Deadline ToDeadline(const std::optional<double>& timeout) {
  if (!timeout.has_value()) return Deadline::Never();
  if (*timeout <= 0) return Deadline::Now();
  return Deadline::AfterNs(static_cast<int64_t>(*timeout * 1e9));
}

// Adapts a Status to the Result-like interface Blocking expects.
struct StatusResult {
  Status s;
  bool ok() const { return s.ok(); }
  const Status& status() const { return s; }
};

// Runs `op(deadline)` first without releasing the GIL and without waiting; if it would
// block, waits with the GIL released, in slices so that Ctrl-C is honoured.
template <typename Op>
auto Blocking(const std::optional<double>& timeout, Op&& op) -> decltype(op(Deadline::Now())) {
  auto r = op(Deadline::Now());
  if (r.ok() || r.status().code() != Code::kWouldBlock) return r;
  const Deadline deadline = ToDeadline(timeout);
  if (deadline.is_now()) return r;
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
