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

// One blocking call on an endpoint: REQUIRES the GIL at construction and destruction. While
// the call holds the GIL nothing can close the endpoint under it, so the reference it keeps is
// taken only when it is about to wait without the GIL (Pin, from Blocking): the common call
// that needs no wait costs no atomic operation.
template <typename T>
class EndpointCall {
 public:
  EndpointCall(Endpoint<T>& e, const char* what) : e_(e), raw_(e.obj.get()) {
    if (raw_ == nullptr) pyerr::Raise(Status(Code::kClosed, std::string(what) + " is closed"));
    ++e_.calls;
  }
  ~EndpointCall() {
    if (--e_.calls == 0 && e_.close_pending) {  // close() came while we waited: we hold keep_
      e_.close_pending = false;
      raw_->Close().IgnoreError();
    }
  }
  EndpointCall(const EndpointCall&) = delete;
  EndpointCall& operator=(const EndpointCall&) = delete;

  // Keeps the endpoint alive from now on; call before releasing the GIL.
  void Pin() {
    if (!keep_) keep_ = e_.obj;
  }
  T& operator*() const { return *raw_; }
  T* operator->() const { return raw_; }
  // A reference for what outlives the call (views): ours if pinned, else the endpoint's.
  std::shared_ptr<T> shared() const { return keep_ ? keep_ : e_.obj; }

 private:
  Endpoint<T>& e_;
  T* raw_;
  std::shared_ptr<T> keep_;
};

}  // namespace weft::py_bind
