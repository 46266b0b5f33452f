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
void BindBus(py::module_& m);
void BindGraph(py::module_& m);
}

namespace weft::pyerr {

namespace {
PyObject* g_errors[WEFT_STATUS_CODE_MAX + 1] = {};
PyObject* g_base = nullptr;

struct CodeRow {
  int number;
  const char* name;
  const char* py_class;
  int retry;
  const char* description;
};
// The one table of codes (weft/core/status_codes.h), as weft._errors checks it at import.
constexpr CodeRow kCodes[] = {
#define WEFT_PY_CODE(E, n, name, c, py, retry, description) {n, name, #py, static_cast<int>(Retry::retry), description},
    WEFT_STATUS_CODES(WEFT_PY_CODE)
#undef WEFT_PY_CODE
};
}  // namespace

pybind11::list CodeTable() {
  pybind11::list rows;
  for (const CodeRow& r : kCodes) rows.append(pybind11::make_tuple(r.number, r.name, r.py_class, r.retry, r.description));
  return rows;
}

// Called by weft._errors once its classes exist (it has checked them against CodeTable).
void LoadErrors(pybind11::module_ errors) {
  g_base = pybind11::object(errors.attr("Error")).release().ptr();
  for (const CodeRow& r : kCodes) g_errors[r.number] = pybind11::object(errors.attr(r.py_class)).release().ptr();
}

void SetError(const Status& status) {
  const int code = static_cast<int>(status.code());
  PyObject* cls = (code > 0 && code <= WEFT_STATUS_CODE_MAX && g_errors[code] != nullptr) ? g_errors[code] : g_base;
  if (cls == nullptr) cls = PyExc_RuntimeError;  // weft._errors not loaded yet
  PyErr_SetString(cls, status.message().c_str());
}

void Raise(const Status& status) {
  SetError(status);
  throw pybind11::error_already_set();
}

}  // namespace weft::pyerr

namespace weft::py_bind {
namespace {

// An argument that loads only in pybind11's second overload pass (the one that allows
// conversions), so that an overload taking it is tried after every other overload has failed
// both with and without conversions.
struct SecondPass {
  py::object value;
};

}  // namespace
}  // namespace weft::py_bind

namespace pybind11::detail {
template <>
struct type_caster<weft::py_bind::SecondPass> {
  PYBIND11_TYPE_CASTER(weft::py_bind::SecondPass, const_name("object"));
  bool load(handle src, bool convert) {
    if (!convert) return false;
    value.value = reinterpret_borrow<object>(src);
    return true;
  }
  static handle cast(const weft::py_bind::SecondPass&, return_value_policy, handle) { return none().release(); }
};
}  // namespace pybind11::detail

namespace weft::py_bind {
namespace {

std::string TypeName(py::handle h) { return py::str(py::type::of(h).attr("__name__")); }

// Arguments the binding cannot convert (a string for a size, a negative capacity, ...) are a
// misuse like any other. Hot methods take their timeouts and counts as Seconds and Count
// (args.h), which always load and are checked by the method. Constructors, whose options are
// many, get a last overload instead: tried after every other has failed with and without
// conversions, it raises weft.InvalidArgument (also a TypeError and a ValueError) naming the
// call. (An overloaded method pays pybind11's two-pass resolution on every call, so this is
// for constructors only.)
void AddMisuseFallbacks(py::handle cls) {
  const std::string cls_name = py::str(cls.attr("__name__"));
  py::dict members = cls.attr("__dict__");
  for (auto item : members) {
    const std::string name = py::str(item.first);
    if (name != "__init__") continue;
    if (!PyInstanceMethod_Check(item.second.ptr())) continue;
    py::object existing = py::getattr(cls, name.c_str());
    const std::string doc = py::str(existing.attr("__doc__"));
    py::cpp_function fallback(
        [cls_name, name, doc](py::handle, SecondPass first, py::args rest, py::kwargs kwargs) {
          std::string got = first.value.is_none() ? "" : TypeName(first.value);
          for (py::handle a : rest) got += (got.empty() ? "" : ", ") + TypeName(a);
          for (auto kv : kwargs) {
            got += (got.empty() ? "" : ", ") + std::string(py::str(kv.first)) + "=" + TypeName(kv.second);
          }
          const size_t nl = doc.find('\n');
          pyerr::Raise(weft::InvalidArgument(cls_name + "." + name + "(" + got + "): arguments of these types or " +
                                             "values are not accepted; expected " + doc.substr(0, nl)));
        },
        py::name(name.c_str()), py::is_method(cls), py::sibling(existing), py::arg("_weft_misuse") = py::none());
    py::setattr(cls, name.c_str(), fallback);
  }
}

}  // namespace
}  // namespace weft::py_bind

PYBIND11_MODULE(_native, m) {
  m.doc() = "Weft native core";
  m.def("codes", &weft::pyerr::CodeTable,
        "The status code table: (number, name, Python class, retry, description) for each code.");
  m.def(
      "_load_errors", [](py::module_ errors) { weft::pyerr::LoadErrors(errors); },
      "Called by weft._errors after it checked its classes against codes().");
  weft::py_bind::RegisterSpan(m);
  weft::py_bind::BindChannel(m);
  weft::py_bind::BindPool(m);
  weft::py_bind::BindTopic(m);
  weft::py_bind::BindLog(m);
  weft::py_bind::BindRpc(m);
  weft::py_bind::BindBus(m);
  weft::py_bind::BindGraph(m);
  for (auto item : m.attr("__dict__").cast<py::dict>()) {
    if (py::isinstance<py::type>(item.second)) weft::py_bind::AddMisuseFallbacks(item.second);
  }
}
