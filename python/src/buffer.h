// A read-only byte view of any buffer-protocol object (bytes, bytearray, memoryview, NumPy
// arrays), held for the scope, without a copy.
#pragma once

#include <Python.h>
#include <pybind11/pybind11.h>

#include "errors.h"
#include "weft/core/bytes.h"

namespace weft::py_bind {

class BufferView {
 public:
  // `what`: if set, an object that is not a contiguous buffer raises weft.InvalidArgument saying
  // "<what> must be contiguous buffers"; else Python's BufferError propagates.
  explicit BufferView(pybind11::handle obj, const char* what = nullptr) {
    if (PyBytes_CheckExact(obj.ptr())) {
      data_ = reinterpret_cast<const uint8_t*>(PyBytes_AS_STRING(obj.ptr()));
      size_ = static_cast<size_t>(PyBytes_GET_SIZE(obj.ptr()));
      return;
    }
    if (PyObject_GetBuffer(obj.ptr(), &view_, PyBUF_SIMPLE) != 0) {
      if (what != nullptr && PyErr_ExceptionMatches(PyExc_BufferError)) {
        PyErr_Clear();
        pyerr::Raise(weft::InvalidArgument(std::string(what) + " must be contiguous buffers"));
      }
      if (PyErr_ExceptionMatches(PyExc_TypeError) || PyErr_ExceptionMatches(PyExc_BufferError)) {
        PyErr_Clear();
        pyerr::Raise(weft::InvalidArgument(std::string("expected a contiguous bytes-like object, got ") +
                                           Py_TYPE(obj.ptr())->tp_name));
      }
      throw pybind11::error_already_set();
    }
    held_ = true;
    data_ = static_cast<const uint8_t*>(view_.buf);
    size_ = static_cast<size_t>(view_.len);
  }
  ~BufferView() {
    if (held_) PyBuffer_Release(&view_);
  }
  BufferView(const BufferView&) = delete;
  BufferView& operator=(const BufferView&) = delete;
  ByteView bytes() const { return ByteView(data_, size_); }

 private:
  Py_buffer view_{};
  bool held_ = false;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace weft::py_bind
