// Arguments that always load: a timeout in seconds and a non-negative count. Their casters
// accept any object and remember whether it was acceptable, so a bad one is reported by the
// method itself as weft.InvalidArgument, and a method taking them has one overload (pybind11's
// two-pass overload resolution would cost every call on the hot path).
#pragma once

#include <Python.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>

#include "errors.h"
#include "weft/core/overflow.h"
#include "weft/core/status.h"
#include "weft/log/log.h"

namespace weft::py_bind {

// A channel's or subscriber's on_full: the names of weft::Overflow, anything else refused.
inline weft::Overflow ParseOnFull(const std::string& s) {
  weft::Overflow o;
  if (!weft::ParseOverflow(s, &o)) {
    pyerr::Raise(weft::InvalidArgument("on_full must be 'block', 'drop_newest', 'drop_oldest' or 'fail', not '" + s + "'"));
  }
  return o;
}

// A log's fsync policy by name ("never", "every_n", "interval", "always").
inline weft::log::Fsync ParseFsync(const std::string& s) {
  if (s == "never") return weft::log::Fsync::kNever;
  if (s == "every_n") return weft::log::Fsync::kEveryN;
  if (s == "interval") return weft::log::Fsync::kInterval;
  if (s == "always") return weft::log::Fsync::kAlways;
  pyerr::Raise(weft::InvalidArgument("fsync must be 'never', 'every_n', 'interval' or 'always', not '" + s + "'"));
}

// Seconds to wait: None (no limit), or a real number (0 or less: do not wait).
struct Seconds {
  bool none = true;
  bool bad = false;
  double value = 0;
  const char* type = "";
};

// A non-negative integer (a size, a count, a block id).
struct Count {
  uint64_t value = 0;
  bool bad = false;
  const char* type = "";
  // The value, or weft.InvalidArgument naming `what`.
  uint64_t Get(const char* what) const {
    if (bad) pyerr::Raise(weft::InvalidArgument(std::string(what) + " must be a non-negative integer, not " + type));
    return value;
  }
};

}  // namespace weft::py_bind

namespace pybind11::detail {

template <>
struct type_caster<weft::py_bind::Seconds> {
  PYBIND11_TYPE_CASTER(weft::py_bind::Seconds, const_name("Optional[float]"));
  bool load(handle src, bool) {
    value = {};
    if (src.is_none()) return true;
    value.none = false;
    value.type = Py_TYPE(src.ptr())->tp_name;
    if (PyFloat_CheckExact(src.ptr())) {
      value.value = PyFloat_AS_DOUBLE(src.ptr());
      return true;
    }
    if (PyBool_Check(src.ptr()) || !(PyLong_Check(src.ptr()) || PyFloat_Check(src.ptr()) || PyIndex_Check(src.ptr()))) {
      value.bad = true;
      return true;
    }
    value.value = PyFloat_AsDouble(src.ptr());
    if (value.value == -1.0 && PyErr_Occurred()) {
      PyErr_Clear();
      value.bad = true;
    }
    return true;
  }
  static handle cast(const weft::py_bind::Seconds&, return_value_policy, handle) { return none().release(); }
};

template <>
struct type_caster<weft::py_bind::Count> {
  PYBIND11_TYPE_CASTER(weft::py_bind::Count, const_name("int"));
  bool load(handle src, bool) {
    value = {};
    value.type = Py_TYPE(src.ptr())->tp_name;
    if (PyBool_Check(src.ptr()) || !PyIndex_Check(src.ptr())) {
      value.bad = true;
      return true;
    }
    const unsigned long long v = PyLong_AsUnsignedLongLong(src.ptr());
    if (v == static_cast<unsigned long long>(-1) && PyErr_Occurred()) {  // negative, too large, not an int
      PyErr_Clear();
      value.bad = true;
      return true;
    }
    value.value = v;
    return true;
  }
  static handle cast(const weft::py_bind::Count&, return_value_policy, handle) { return none().release(); }
};

}  // namespace pybind11::detail
