// Python binding of weft::shm::Channel. Zero-copy views go through _Span, a small buffer
// exporter that can be invalidated; the GIL is released around every wait.
#include <Python.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "args.h"
#include "errors.h"
#include "span.h"
#include "blocking.h"
#include "buffer.h"
#include "endpoint.h"
#include "weft/shm/channel.h"

namespace py = pybind11;
using weft::ByteView;
using weft::Code;
using weft::Deadline;
using weft::Result;
using weft::Status;
using weft::shm::Channel;

namespace weft::py_bind {
namespace {


// ---- the Channel class ---------------------------------------------------------------------

struct PyChannel : Endpoint<Channel> {};

weft::shm::Role ParseRole(const std::string& role) {
  if (role == "producer") return weft::shm::Role::kProducer;
  if (role == "consumer") return weft::shm::Role::kConsumer;
  pyerr::Raise(weft::InvalidArgument("role must be 'producer' or 'consumer', not '" + role + "'"));
}


weft::shm::WaitPolicy ParseWait(const std::optional<double>& spin_us) {
  weft::shm::WaitPolicy w;
  if (spin_us.has_value()) {
    w.spin_ns = *spin_us < 0 ? weft::shm::WaitPolicy::kSpinForever : static_cast<int64_t>(*spin_us * 1000);
    w.adaptive = false;
  }
  return w;
}

Channel& Get(PyChannel& self) {
  if (!self.obj) pyerr::Raise(Status(Code::kClosed, "channel is closed"));
  return *self.obj;
}

using ChannelCall = EndpointCall<Channel>;

py::dict StatsDict(const weft::shm::ChannelSnapshot& s) {
  py::dict d;
  d["records_in"] = s.records_in;
  d["bytes_in"] = s.bytes_in;
  d["records_out"] = s.records_out;
  d["bytes_out"] = s.bytes_out;
  d["producer_spins"] = s.producer_spins;
  d["producer_sleeps"] = s.producer_sleeps;
  d["producer_wakes"] = s.producer_wakes;
  d["consumer_spins"] = s.consumer_spins;
  d["consumer_sleeps"] = s.consumer_sleeps;
  d["consumer_wakes"] = s.consumer_wakes;
  d["drops_newest"] = s.drops_newest;
  d["drops_oldest"] = s.drops_oldest;
  d["capacity"] = s.capacity;
  d["max_record"] = s.max_record;
  d["write_pos"] = s.write_pos;
  d["read_pos"] = s.read_pos;
  d["producer_pid"] = s.producer.pid;
  d["producer_state"] = s.producer.state;
  d["consumer_pid"] = s.consumer.pid;
  d["consumer_state"] = s.consumer.state;
  return d;
}

}  // namespace

void BindChannel(py::module_& m) {
  // Subclassed in Python by weft.Channel, which adds the context managers; the hot methods
  // are these native ones, called with no Python frame in between.
  py::class_<PyChannel>(m, "_Channel")
      .def(py::init([](const std::string& name, bool create, size_t capacity, size_t max_record,
                       const std::string& role, const std::string& on_full,
                       std::optional<double> spin_us) {
             if (create) {
               weft::shm::ChannelOptions o;
               o.capacity = capacity;
               o.max_record = max_record;
               o.role = ParseRole(role);
               o.overflow = ParseOnFull(on_full);
               o.wait = ParseWait(spin_us);
               auto r = Channel::Create(name, o);
               if (!r.ok()) pyerr::Raise(r.status());
               PyChannel pc;
               pc.obj = std::shared_ptr<Channel>(std::move(r).value());
               return pc;
             }
             auto r = Channel::Open(name, ParseRole(role), ParseWait(spin_us));
             if (!r.ok()) pyerr::Raise(r.status());
             PyChannel pc;
               pc.obj = std::shared_ptr<Channel>(std::move(r).value());
               return pc;
           }),
           py::arg("name"), py::arg("create"), py::arg("capacity"), py::arg("max_record"),
           py::arg("role"), py::arg("on_full"), py::arg("spin_us"))
      .def_static("unlink", [](const std::string& name) { pyerr::Check(Channel::Unlink(name)); })
      .def_static("snapshot",
                  [](const std::string& name) {
                    auto r = Channel::Snapshot(name);
                    if (!r.ok()) pyerr::Raise(r.status());
                    return StatsDict(*r);
                  })
      .def("_reserve_span",
           [](PyChannel& self, Count n_arg, Seconds timeout) {
             const size_t n = n_arg.Get("n");
             ChannelCall call(self, "channel");
             Channel& ch = *call;
             auto r = Blocking(timeout, [&](Deadline d) { return ch.Reserve(n, d); }, [&] { call.Pin(); });
             if (!r.ok()) pyerr::Raise(r.status());
             return MakeSpan(r->data(), r->size(), false, call.shared());
           },
           py::arg("n"), py::arg("timeout") = py::none())
      .def("commit", [](PyChannel& self, Count n_arg) {
             const size_t n = n_arg.Get("n"); pyerr::Check(Get(self).Commit(n)); })
      .def("commit_batched", [](PyChannel& self, Count n_arg) {
             const size_t n = n_arg.Get("n"); pyerr::Check(Get(self).CommitBatched(n)); })
      .def("_unreserve", [](PyChannel& self) { Get(self).Unreserve(); })
      .def("flush", [](PyChannel& self) { Get(self).Flush(); })
      .def("write",
           [](PyChannel& self, py::handle data, Seconds timeout) {
             ChannelCall call(self, "channel");
             Channel& ch = *call;
             BufferView buf(data);
             auto r = Blocking(timeout, [&](Deadline d) { return StatusResult{ch.Write(buf.bytes(), d)}; }, [&] { call.Pin(); });
             pyerr::Check(r.s);
           },
           py::arg("data"), py::arg("timeout") = py::none())
      .def("write_batch",
           [](PyChannel& self, py::sequence records, Seconds timeout) {
             ChannelCall call(self, "channel");
             Channel& ch = *call;
             size_t done = 0;
             const size_t n = py::len(records);
             for (size_t i = 0; i < n; ++i) {
               BufferView buf(records[i]);
               const ByteView bytes = buf.bytes();
               auto r = ch.Reserve(bytes.size(), Deadline::Now());
               if (!r.ok() && r.status().code() == Code::kWouldBlock) {
                 ch.Flush();  // the consumer must see the batch before we wait on it
                 r = Blocking(timeout, [&](Deadline d) { return ch.Reserve(bytes.size(), d); }, [&] { call.Pin(); });
               }
               if (!r.ok()) {
                 ch.Flush();
                 if (done == 0) pyerr::Raise(r.status());
                 break;
               }
               if (!bytes.empty()) std::memcpy(r->data(), bytes.data(), bytes.size());
               pyerr::Check(ch.CommitBatched(bytes.size()));
               ++done;
             }
             ch.Flush();
             return done;
           },
           py::arg("records"), py::arg("timeout") = py::none())
      .def("_read_span",
           [](PyChannel& self, Seconds timeout) {
             ChannelCall call(self, "channel");
             Channel& ch = *call;
             auto r = Blocking(timeout, [&](Deadline d) { return ch.Read(d); }, [&] { call.Pin(); });
             if (!r.ok()) pyerr::Raise(r.status());
             return MakeSpan(const_cast<uint8_t*>(r->data()), r->size(), true, call.shared());
           },
           py::arg("timeout") = py::none())
      .def("release", [](PyChannel& self, Count count_arg) {
             const size_t count = count_arg.Get("count"); pyerr::Check(Get(self).Release(count)); },
           py::arg("count") = 1)
      .def("read_bytes",
           [](PyChannel& self, Seconds timeout) {
             ChannelCall call(self, "channel");
             Channel& ch = *call;
             auto r = Blocking(timeout, [&](Deadline d) { return ch.Read(d); }, [&] { call.Pin(); });
             if (!r.ok()) pyerr::Raise(r.status());
             PyObject* b = PyBytes_FromStringAndSize(reinterpret_cast<const char*>(r->data()),
                                                     static_cast<Py_ssize_t>(r->size()));
             Status s = ch.Release(1);
             if (b == nullptr) throw py::error_already_set();
             py::object out = py::reinterpret_steal<py::object>(b);
             pyerr::Check(s);
             return out;
           },
           py::arg("timeout") = py::none())
      .def("read_batch",
           [](PyChannel& self, Count max_records_arg, Seconds timeout) {
             const size_t max_records = max_records_arg.Get("max_records");
             ChannelCall call(self, "channel");
             Channel& ch = *call;
             py::list out;
             auto first = Blocking(timeout, [&](Deadline d) { return ch.Read(d); }, [&] { call.Pin(); });
             if (!first.ok()) pyerr::Raise(first.status());
             ByteView rec = *first;
             size_t held = 1;
             for (;;) {
               PyObject* b = PyBytes_FromStringAndSize(reinterpret_cast<const char*>(rec.data()),
                                                       static_cast<Py_ssize_t>(rec.size()));
               if (b == nullptr) {
                 ch.Release(held).IgnoreError();
                 throw py::error_already_set();
               }
               PyList_Append(out.ptr(), b);
               Py_DECREF(b);
               if (held >= max_records) break;
               auto next = ch.Read(Deadline::Now());
               if (!next.ok()) break;
               rec = *next;
               ++held;
             }
             pyerr::Check(ch.Release(held));
             return out;
           },
           py::arg("max_records") = 1024, py::arg("timeout") = py::none())
      .def("fileno",
           [](PyChannel& self) {
             auto r = Get(self).WaitFd();
             if (!r.ok()) pyerr::Raise(r.status());
             return *r;
           })
      .def("stats", [](PyChannel& self) { return StatsDict(Get(self).Stats()); })
      .def("close", [](PyChannel& self) { self.Close(); })
      .def_property_readonly("closed", [](PyChannel& self) { return !self.obj; })
      .def_property_readonly("name", [](PyChannel& self) { return Get(self).name(); })
      .def_property_readonly("capacity", [](PyChannel& self) { return Get(self).capacity(); })
      .def_property_readonly("max_record", [](PyChannel& self) { return Get(self).max_record(); })
      .def_property_readonly("held", [](PyChannel& self) { return Get(self).held(); })
      .def_property_readonly("role", [](PyChannel& self) {
        return Get(self).role() == weft::shm::Role::kProducer ? "producer" : "consumer";
      });
}

}  // namespace weft::py_bind
