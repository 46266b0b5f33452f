// weft._native: the compiled half of the Python package.
#include <pybind11/pybind11.h>

#include "errors.h"

namespace py = pybind11;

namespace weft::py_bind {
void RegisterSpan(py::module_& m);
void BindChannel(py::module_& m);
void BindPool(py::module_& m);
void BindTopic(py::module_& m);
void BindLog(py::module_& m);
void BindRpc(py::module_& m);
}

namespace weft::pyerr {

namespace {
PyObject* g_errors[19] = {};
PyObject* g_base = nullptr;
}  // namespace

void LoadErrors() {
  pybind11::module_ errors = pybind11::module_::import("weft._errors");
  static const char* kNames[19] = {
      nullptr,         "InvalidArgument", "NotFound",   "AlreadyExists",   "WouldBlock",
      "Timeout",       "PeerDead",        "Closed",     "TooLarge",        "Corrupt",
      "VersionMismatch", "WrongKind",     "Busy",       "IoError",         "ContractMismatch",
      "InternalError", "PermissionDenied", "OutOfRange",      "Cancelled"};
  g_base = pybind11::object(errors.attr("Error")).release().ptr();
  for (int i = 1; i < 19; ++i) g_errors[i] = pybind11::object(errors.attr(kNames[i])).release().ptr();
}

void Raise(const Status& status) {
  int code = static_cast<int>(status.code());
  PyObject* cls = (code > 0 && code < 19) ? g_errors[code] : g_base;
  PyErr_SetString(cls, status.message().c_str());
  throw pybind11::error_already_set();
}

}  // namespace weft::pyerr

PYBIND11_MODULE(_native, m) {
  m.doc() = "Weft native core";
  weft::pyerr::LoadErrors();
  weft::py_bind::RegisterSpan(m);
  weft::py_bind::BindChannel(m);
  weft::py_bind::BindPool(m);
  weft::py_bind::BindTopic(m);
  weft::py_bind::BindLog(m);
  weft::py_bind::BindRpc(m);
}
