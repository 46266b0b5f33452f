// _Span: a buffer exporter over borrowed shared memory (a channel record, a pool block) that
// can be invalidated, and keeps the memory's owner (and so its mapping) alive.
#include "span.h"

namespace py = pybind11;

namespace weft::py_bind {
namespace {

// ---- _Span: a buffer exporter over borrowed ring memory -----------------------------------

struct SpanObject {
  PyObject_HEAD
  void* data;
  Py_ssize_t size;
  int readonly;
  int valid;
  Py_ssize_t exports;            // buffers handed out and not yet released
  std::shared_ptr<void>* owner;  // keeps the mapping alive while views exist
};

int SpanGetBuffer(PyObject* self, Py_buffer* view, int flags) {
  auto* s = reinterpret_cast<SpanObject*>(self);
  if (!s->valid) {
    PyErr_SetString(PyExc_BufferError, "this borrowed view was released");
    view->obj = nullptr;
    return -1;
  }
  const int rc = PyBuffer_FillInfo(view, self, s->data, s->size, s->readonly, flags);
  if (rc == 0) ++s->exports;
  return rc;
}

// Every memoryview over the span, and every NumPy array made from one of them, holds one export
// until the last of them goes: a span still exported after its owner released its own view is
// aliased by something the caller kept.
void SpanReleaseBuffer(PyObject* self, Py_buffer*) { --reinterpret_cast<SpanObject*>(self)->exports; }

void SpanDealloc(PyObject* self) {
  auto* s = reinterpret_cast<SpanObject*>(self);
  delete s->owner;
  PyTypeObject* type = Py_TYPE(self);
  PyObject_Free(self);
  Py_DECREF(type);  // heap types are referenced by their instances
}

PyObject* SpanInvalidate(PyObject* self, PyObject*) {
  reinterpret_cast<SpanObject*>(self)->valid = 0;
  Py_RETURN_NONE;
}

PyObject* SpanValid(PyObject* self, void*) {
  return PyBool_FromLong(reinterpret_cast<SpanObject*>(self)->valid);
}

PyObject* SpanExports(PyObject* self, void*) {
  return PyLong_FromSsize_t(reinterpret_cast<SpanObject*>(self)->exports);
}

PyMethodDef g_span_methods[] = {
    {"_invalidate", SpanInvalidate, METH_NOARGS, "Makes the span refuse new views."},
    {nullptr, nullptr, 0, nullptr}};
PyGetSetDef g_span_getset[] = {
    {"valid", SpanValid, nullptr, "True until the record is committed or released.", nullptr},
    {"exports", SpanExports, nullptr, "Buffers (memoryviews, arrays) over the span still alive.", nullptr},
    {nullptr, nullptr, nullptr, nullptr, nullptr}};
PyType_Slot g_span_slots[] = {
    {Py_tp_dealloc, reinterpret_cast<void*>(SpanDealloc)},
    {Py_tp_methods, g_span_methods},
    {Py_tp_getset, g_span_getset},
    {Py_tp_doc, const_cast<char*>("Borrowed shared memory; use memoryview(span).")},
    {Py_bf_getbuffer, reinterpret_cast<void*>(SpanGetBuffer)},
    {Py_bf_releasebuffer, reinterpret_cast<void*>(SpanReleaseBuffer)},
    {0, nullptr}};
PyType_Spec g_span_spec = {"weft._native._Span", sizeof(SpanObject), 0, Py_TPFLAGS_DEFAULT, g_span_slots};
PyTypeObject* g_span_type = nullptr;

}  // namespace

py::object MakeSpan(void* data, size_t size, bool readonly, std::shared_ptr<void> owner) {
  SpanObject* s = PyObject_New(SpanObject, g_span_type);
  if (s == nullptr) throw py::error_already_set();
  s->data = data;
  s->size = static_cast<Py_ssize_t>(size);
  s->readonly = readonly ? 1 : 0;
  s->valid = 1;
  s->exports = 0;
  s->owner = new std::shared_ptr<void>(std::move(owner));
  return py::reinterpret_steal<py::object>(reinterpret_cast<PyObject*>(s));
}


void RegisterSpan(py::module_& m) {
  g_span_type = reinterpret_cast<PyTypeObject*>(PyType_FromSpec(&g_span_spec));
  if (g_span_type == nullptr) throw py::error_already_set();
  m.add_object("_Span", reinterpret_cast<PyObject*>(g_span_type));
}

}  // namespace weft::py_bind
