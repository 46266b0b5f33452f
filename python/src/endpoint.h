// A native endpoint (channel, publisher, subscriber) as the Python object and the calls in
// progress on it share it. A blocking call holds its own reference for as long as it runs, so
// close() from another thread never frees what a waiting call uses; close() interrupts the
// waiters (they raise weft.Closed) and the endpoint is closed by the last of them to return.
// Everything here runs with the GIL held (the calls release it only inside their waits).
#pragma once

#include <memory>
#include <string>

#include "errors.h"
#include "weft/core/status.h"

namespace weft::py_bind {

template <typename T>
struct Endpoint {
  std::shared_ptr<T> obj;  // null once closed
  int calls = 0;           // blocking calls in progress
  bool close_pending = false;

  // Closes now, or, while calls are in progress, interrupts them and leaves the close to the
  // last one. New calls see the endpoint closed at once.
  void Close() {
    if (!obj) return;
    std::shared_ptr<T> o = std::move(obj);
    if (calls == 0) {
      pyerr::Check(o->Close());
      return;
    }
    close_pending = true;
    o->Interrupt();
  }
};

// One blocking call on an endpoint: REQUIRES the GIL at construction and destruction.
template <typename T>
class EndpointCall {
 public:
  EndpointCall(Endpoint<T>& e, const char* what) : e_(e), obj_(e.obj) {
    if (!obj_) pyerr::Raise(Status(Code::kClosed, std::string(what) + " is closed"));
    ++e_.calls;
  }
  ~EndpointCall() {
    if (--e_.calls == 0 && e_.close_pending) {
      e_.close_pending = false;
      obj_->Close().IgnoreError();
    }
  }
  EndpointCall(const EndpointCall&) = delete;
  EndpointCall& operator=(const EndpointCall&) = delete;

  T& operator*() const { return *obj_; }
  T* operator->() const { return obj_.get(); }
  const std::shared_ptr<T>& shared() const { return obj_; }

 private:
  Endpoint<T>& e_;
  std::shared_ptr<T> obj_;
};

}  // namespace weft::py_bind
