// Maps weft::Status to the exception classes of weft._errors (pure Python).
#pragma once

#include <pybind11/pybind11.h>

#include "weft/core/status.h"

namespace weft::pyerr {

// The status code table (weft/core/status_codes.h) as Python tuples.
pybind11::list CodeTable();
// Takes the exception classes of weft._errors (called by it at import, once checked).
void LoadErrors(pybind11::module_ errors);
// Sets the Python exception for `status` without throwing (for functions of the C API).
void SetError(const Status& status);
// Raises the Python exception for `status` (throws pybind11::error_already_set).
[[noreturn]] void Raise(const Status& status);
inline void Check(const Status& status) {
  if (!status.ok()) Raise(status);
}
// The value of a Result, or its error raised.
template <typename T>
T Get(Result<T> r) {
  if (!r.ok()) Raise(r.status());
  return std::move(r).value();
}

}  // namespace weft::pyerr
