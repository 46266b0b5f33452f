// Python binding of durable logs: appends, reads and tails; payloads are read-only views into
// the mapped segment files.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "blocking.h"
#include "buffer.h"
#include "errors.h"
#include "span.h"
#include "weft/log/log.h"

namespace py = pybind11;
using weft::log::Fsync;
using weft::log::Log;
using weft::log::Record;
using weft::log::Tail;

namespace weft::py_bind {
namespace {

struct PyLog {
  std::shared_ptr<Log> log;
};
struct PyTail {
  std::shared_ptr<Tail> tail;
};

Log& Get(PyLog& self) {
  if (!self.log) pyerr::Raise(Status(Code::kClosed, "log is closed"));
  return *self.log;
}

// (seq, timestamp_ns, flags, payload view)
py::tuple ToTuple(Record r) {
  auto owner = std::make_shared<Record>(std::move(r));
  void* data = const_cast<uint8_t*>(owner->payload.data());
  const size_t size = owner->payload.size();
  return py::make_tuple(owner->seq, owner->timestamp_ns, owner->flags, MakeSpan(data, size, true, owner));
}

}  // namespace

void BindLog(py::module_& m) {
  py::class_<PyLog>(m, "_Log")
      .def(py::init([](const std::string& path, const std::string& fsync, uint64_t fsync_every_n,
                       int64_t fsync_interval_ms, uint64_t segment_bytes, uint64_t retention_events,
                       uint64_t retention_bytes, int64_t retention_age_ms, bool read_only, bool create) {
             weft::log::LogOptions o;
             o.fsync = ParseFsync(fsync);
             o.fsync_every_n = fsync_every_n;
             o.fsync_interval_ms = fsync_interval_ms;
             o.segment_bytes = segment_bytes;
             o.retention_events = retention_events;
             o.retention_bytes = retention_bytes;
             o.retention_age_ms = retention_age_ms;
             o.read_only = read_only;
             o.create = create;
             auto r = Log::Open(path, o);
             if (!r.ok()) pyerr::Raise(r.status());
             return PyLog{std::shared_ptr<Log>(std::move(r).value())};
           }),
           py::arg("path"), py::arg("fsync"), py::arg("fsync_every_n"), py::arg("fsync_interval_ms"),
           py::arg("segment_bytes"), py::arg("retention_events"), py::arg("retention_bytes"),
           py::arg("retention_age_ms"), py::arg("read_only"), py::arg("create"))
      .def("append",
           [](PyLog& self, const py::object& data, uint32_t flags) {
             Log& log = Get(self);
             BufferView b(data, "records");
             Result<uint64_t> r = Status(Code::kInternal, "");
             {
               py::gil_scoped_release nogil;  // an fsync may take a while
               r = log.Append(b.bytes(), flags);
             }
             if (!r.ok()) pyerr::Raise(r.status());
             return *r;
           },
           py::arg("data"), py::arg("flags") = 0)
      .def("append_batch",
           [](PyLog& self, const py::iterable& items, uint32_t flags) -> std::optional<uint64_t> {
             Log& log = Get(self);
             std::vector<std::unique_ptr<BufferView>> held;
             std::vector<ByteView> views;
             for (py::handle h : items) {
               held.push_back(std::make_unique<BufferView>(h, "records"));
               views.push_back(held.back()->bytes());
             }
             Result<std::optional<uint64_t>> r = Status(Code::kInternal, "");
             {
               py::gil_scoped_release nogil;
               r = log.AppendBatch(views, flags);
             }
             if (!r.ok()) pyerr::Raise(r.status());
             return *r;
           },
           py::arg("records"), py::arg("flags") = 0)
      .def("sync",
           [](PyLog& self) {
             Log& log = Get(self);
             Status s;
             {
               py::gil_scoped_release nogil;
               s = log.Sync();
             }
             pyerr::Check(s);
           })
      .def("_read",
           [](PyLog& self, uint64_t seq) {
             auto r = Get(self).Read(seq);
             if (!r.ok()) pyerr::Raise(r.status());
             return ToTuple(std::move(r).value());
           })
      .def("_tail",
           [](PyLog& self, uint64_t from_seq, int64_t spin_ns) {
             auto r = Get(self).TailFrom(from_seq, {.spin_ns = spin_ns});
             if (!r.ok()) pyerr::Raise(r.status());
             return PyTail{std::shared_ptr<Tail>(std::move(r).value())};
           })
      .def("seq_at_time",
           [](PyLog& self, int64_t time_ns) {
             auto r = Get(self).SeqAtTime(time_ns);
             if (!r.ok()) pyerr::Raise(r.status());
             return *r;
           })
      .def("apply_retention", [](PyLog& self) { pyerr::Check(Get(self).ApplyRetention()); })
      .def("verify",
           [](PyLog& self) {
             Log& log = Get(self);
             Status s;
             {
               py::gil_scoped_release nogil;
               s = log.Verify();
             }
             pyerr::Check(s);
           })
      .def("stats",
           [](PyLog& self) {
             const weft::log::LogStats s = Get(self).Stats();
             py::dict d;
             d["first_seq"] = s.first_seq;
             d["next_seq"] = s.next_seq;
             d["durable_seq"] = s.durable_seq;
             d["segments"] = s.segments;
             d["bytes"] = s.bytes;
             d["fsyncs"] = s.fsyncs;
             d["cut_at_offset"] = s.cut_at_offset;
             d["writer_pid"] = s.writer_pid;
             return d;
           })
      .def_property_readonly("first_seq", [](PyLog& self) { return Get(self).first_seq(); })
      .def_property_readonly("next_seq", [](PyLog& self) { return Get(self).next_seq(); })
      .def_property_readonly("path", [](PyLog& self) { return Get(self).path(); })
      .def_property_readonly("closed", [](PyLog& self) { return !self.log; })
      .def("close", [](PyLog& self) {
        if (!self.log) return;
        Status s;
        {
          py::gil_scoped_release nogil;
          s = self.log->Close();
        }
        self.log.reset();
        pyerr::Check(s);
      });

  py::class_<PyTail>(m, "_Tail")
      .def("_next",
           [](PyTail& self, Seconds timeout) -> py::object {
             if (!self.tail) pyerr::Raise(Status(Code::kClosed, "tail closed"));
             Tail& tail = *self.tail;
             auto r = Blocking(timeout, [&](Deadline d) { return tail.Next(d); });
             if (!r.ok()) pyerr::Raise(r.status());
             return ToTuple(std::move(r).value());
           })
      .def_property_readonly("position", [](PyTail& self) { return self.tail ? self.tail->position() : 0; })
      .def("close", [](PyTail& self) {
        if (self.tail) self.tail->Close();
      });
}

}  // namespace weft::py_bind
