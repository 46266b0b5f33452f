// _Span: borrowed shared memory exported through the buffer protocol (memoryview, NumPy).
#pragma once

#include <Python.h>
#include <pybind11/pybind11.h>

#include <memory>

namespace weft::py_bind {

// Registers the type; called once at import.
void RegisterSpan(pybind11::module_& m);
// A span over [data, data + size); `owner` stays alive as long as the span does. The span
// refuses new views after its _invalidate() method is called.
pybind11::object MakeSpan(void* data, size_t size, bool readonly, std::shared_ptr<void> owner);

}  // namespace weft::py_bind
