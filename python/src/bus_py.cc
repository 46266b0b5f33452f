// Python binding of the event bus: ingest (one, keyed, batches), consumers whose polls return
// one batch object each (its events view the shard rings until the next poll), and stats.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstring>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "args.h"
#include "blocking.h"
#include "buffer.h"
#include "errors.h"
#include "span.h"
#include "weft/bus/bus.h"
#include "weft/bus/dedup.h"

namespace py = pybind11;
using weft::bus::Bus;
using weft::bus::BusOptions;
using weft::bus::Consumer;
using weft::bus::Event;

namespace weft::py_bind {
namespace {

struct PyBus {
  std::shared_ptr<Bus> bus;
  bool durable = false;  // a log: bus whose ingest waits for the disk: the GIL is released for it
};

// Runs `op` (an ingest) with the GIL released when the bus makes ingest wait for fsync.
template <typename Op>
auto MaybeWithoutGil(const PyBus& self, Op&& op) {
  if (!self.durable) return op();
  py::gil_scoped_release nogil;
  return op();
}

// One poll's events. They view the rings until the consumer's next poll, commit or close,
// which invalidate the batch first (Release).
struct PyBatch {
  std::shared_ptr<Consumer> consumer;  // keeps the mappings alive while spans exist
  std::span<const Event> events;        // the consumer's last batch (valid until its next call)
  std::vector<py::object> spans;  // handed out, to invalidate
  bool valid = true;

  const Event& At(py::ssize_t i) const {
    if (!valid) pyerr::Raise(Status(Code::kClosed, "this batch was released by a later poll; copy what you keep"));
    const auto n = static_cast<py::ssize_t>(events.size());
    if (i < 0) i += n;
    if (i < 0 || i >= n) throw py::index_error("event index out of range");
    return events[static_cast<size_t>(i)];
  }
  // Ends the batch; true if a view made from one of its events is still alive somewhere.
  bool Release() {
    if (!valid) return false;
    valid = false;
    bool escaped = false;
    for (py::object& s : spans) {
      if (s.attr("exports").cast<py::ssize_t>() > 0) escaped = true;
      s.attr("_invalidate")();
    }
    spans.clear();
    events = {};
    return escaped;
  }
};

struct PyConsumer {
  std::shared_ptr<Consumer> consumer;
  std::shared_ptr<PyBatch> live;  // the last batch, released by the next call

  Consumer& Get() {
    if (!consumer) pyerr::Raise(Status(Code::kClosed, "consumer is closed"));
    return *consumer;
  }
  // Releases the last batch; raises weft.InvalidArgument (after releasing it) if a view of one
  // of its events outlived it: the ring reuses that memory.
  void EndBatch() {
    if (!live) return;
    const bool escaped = live->Release();
    live.reset();
    if (escaped) {
      pyerr::Raise(weft::InvalidArgument(
          "a memoryview or NumPy array made from an event of the last poll is still alive; the ring reuses "
          "that memory: copy what you keep (bytes(event.raw)) before the next poll"));
    }
  }
};

Bus& Get(PyBus& self) {
  if (!self.bus) pyerr::Raise(Status(Code::kClosed, "bus is shut down"));
  return *self.bus;
}

// Runs an ingest with the GIL released while it waits for space (block), in slices so that
// Ctrl-C is honoured: a full shard answers a try without waiting with kTimeout, which Blocking
// reads as "would block".
template <typename Op>
auto Ingesting(const Seconds& timeout, Op&& op) {
  return Blocking(timeout, [&](Deadline d) {
    auto r = op(d);
    if (!r.ok() && d.is_now() && r.status().code() == Code::kTimeout) {
      static const Status::Fixed kFull{Code::kWouldBlock, "the bus shard is full"};
      return decltype(r)(Status(kFull));
    }
    return r;
  });
}

// (shard, offset): offset None if the bus dropped the event, -1 while linger holds it.
py::tuple PositionTuple(const weft::bus::Position& p) {
  if (p.dropped()) return py::make_tuple(p.shard, py::none());
  if (p.pending()) return py::make_tuple(p.shard, -1);
  return py::make_tuple(p.shard, p.offset);
}

// Keeps str events as their UTF-8 bytes (a str is borrowed as is; its UTF-8 form is cached by
// Python on the object).
ByteView Utf8(py::handle h) {
  Py_ssize_t n = 0;
  const char* s = PyUnicode_AsUTF8AndSize(h.ptr(), &n);
  if (s == nullptr) throw py::error_already_set();
  return ByteView(reinterpret_cast<const uint8_t*>(s), static_cast<size_t>(n));
}

// The bytes of a str or of any contiguous buffer, held for the call.
class EventBytes {
 public:
  explicit EventBytes(py::handle h) {
    if (PyUnicode_Check(h.ptr())) {
      bytes_ = Utf8(h);
    } else {
      buffer_.emplace(h, "events");
      bytes_ = buffer_->bytes();
    }
  }
  ByteView bytes() const { return bytes_; }

 private:
  std::optional<BufferView> buffer_;
  ByteView bytes_;
};

py::dict StatsDict(const weft::bus::BusStats& s) {
  py::dict d;
  d["shards"] = s.shards;
  d["ingested"] = s.ingested;
  d["dropped_newest"] = s.dropped_newest;
  d["dropped_oldest"] = s.dropped_oldest;
  d["lost_events"] = s.lost_events;
  py::list shards;
  for (const auto& x : s.per_shard) {
    py::dict e;
    e["ingested"] = x.ingested;
    e["dropped_newest"] = x.dropped_newest;
    e["dropped_oldest"] = x.dropped_oldest;
    e["lost_events"] = x.lost_events;
    e["tail"] = x.tail;
    e["oldest"] = x.oldest;
    e["depth_bytes"] = x.depth_bytes;
    shards.append(e);
  }
  d["per_shard"] = shards;
  py::list groups;
  for (const auto& g : s.groups) {
    py::dict e;
    e["name"] = g.name;
    e["members"] = g.members;
    e["delivered"] = g.delivered;
    e["dropped"] = g.dropped;
    e["lag_bytes"] = g.lag_bytes;
    py::list holders;
    for (const auto& h : g.holders) holders.append(py::make_tuple(h.slot, h.pid, h.alive));
    e["holders"] = holders;
    py::list per;
    for (const auto& x : g.shards) {
      py::dict c;
      c["committed"] = x.committed;
      c["next"] = x.next;
      c["lag_bytes"] = x.lag_bytes;
      c["delivered"] = x.delivered;
      c["dropped"] = x.dropped;
      c["owner"] = x.owner;
      per.append(c);
    }
    e["shards"] = per;
    groups.append(e);
  }
  d["groups"] = groups;
  py::list producers;
  for (const auto& p : s.producers) producers.append(py::make_tuple(p.slot, p.pid, p.alive));
  d["producers"] = producers;
  return d;
}

// ingest_raw without pybind11's dispatch (a third of the call's cost): a METH_FASTCALL method
// on the _Bus type that finds its PyBus in the instance's simple layout (one C++ type, no
// multiple inheritance), falling back to pybind11's cast otherwise.
PyObject* IngestRawFast(PyObject* self, PyObject* const* args, Py_ssize_t nargs) {
  try {
    if (nargs != 1) {
      PyErr_SetString(PyExc_TypeError, "ingest_raw(data) takes one argument");
      return nullptr;
    }
    auto* inst = reinterpret_cast<py::detail::instance*>(self);
    PyBus* bus = inst->simple_layout ? static_cast<PyBus*>(inst->simple_value_holder[0])
                                     : py::cast<PyBus*>(py::handle(self));
    if (bus == nullptr) {
      PyErr_SetString(PyExc_TypeError, "ingest_raw on an uninitialized bus");
      return nullptr;
    }
    Bus& b = Get(*bus);
    const EventBytes event(args[0]);
    const ByteView data = event.bytes();
    Result<weft::bus::Position> r = MaybeWithoutGil(*bus, [&] { return b.Ingest(data, Deadline::Now()); });
    if (!r.ok() && r.status().code() == Code::kTimeout) {  // block: wait without the GIL
      r = Ingesting(Seconds{}, [&](Deadline d) { return b.Ingest(data, d); });
    }
    if (!r.ok()) pyerr::Raise(r.status());
    return PyBool_FromLong(r->dropped() ? 0 : 1);  // pending (linger) counts as taken
  } catch (py::error_already_set& e) {
    e.restore();
    return nullptr;
  } catch (const std::exception& e) {
    PyErr_SetString(PyExc_RuntimeError, e.what());
    return nullptr;
  }
}

PyMethodDef g_ingest_raw = {
    "ingest_raw", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(IngestRawFast)), METH_FASTCALL,
    "ingest_raw(self: weft._native._Bus, data: object) -> bool\n\nA str or bytes-like event to this thread's shard; True if ingested, False if the bus "
    "dropped it (drop_newest). Waits for room under block; raises weft.ResourceExhausted under fail."};

}  // namespace

void BindBus(py::module_& m) {
  py::class_<weft::bus::RedisStreamDedup>(m, "RedisStreamDedup",
                                          "A bounded memory of event ids (the least recently seen forgotten first), "
                                          "for consumers of a Redis stream whose entries carry a dedup_id.")
      .def(py::init<size_t>(), py::arg("capacity") = 65536)
      .def(
          "seen",
          [](weft::bus::RedisStreamDedup& d, py::handle id) {
            EventBytes b(id);
            const ByteView v = b.bytes();
            return d.Seen(std::string_view(reinterpret_cast<const char*>(v.data()), v.size()));
          },
          py::arg("id"), "True if `id` (str or bytes) was seen (a duplicate, to drop); else remembers it.")
      .def("__len__", &weft::bus::RedisStreamDedup::size)
      .def_property_readonly("capacity", &weft::bus::RedisStreamDedup::capacity)
      .def_property_readonly("duplicates", &weft::bus::RedisStreamDedup::duplicates);
  py::class_<PyBus>(m, "_Bus")
      .def(py::init([](const std::string& url, uint32_t shards, uint64_t shard_bytes, uint32_t max_event,
                       const std::string& backpressure, bool timestamps, std::vector<std::string> groups,
                       bool must_match, bool create, const std::string& fsync, uint64_t fsync_every_n,
                       int64_t fsync_interval_ms, uint64_t segment_bytes, uint64_t retention_events,
                       uint64_t retention_bytes, int64_t retention_age_ms, int64_t linger_ns,
                       uint32_t linger_events, const std::string& nonce_path, uint64_t max_len,
                       int64_t claim_idle_ms, int64_t op_timeout_ms, int64_t dedup_window_ms,
                       uint32_t dedup_capacity, int replicas) {
             BusOptions o;
             o.remote.nonce_path = nonce_path;
             o.remote.max_len = max_len;
             o.remote.claim_idle_ms = claim_idle_ms;
             o.remote.op_timeout_ms = op_timeout_ms;
             o.remote.dedup_window_ms = dedup_window_ms;
             o.remote.dedup_capacity = dedup_capacity;
             o.remote.replicas = replicas;
             o.linger_ns = linger_ns;
             o.linger_events = linger_events;
             o.log.fsync = ParseFsync(fsync);
             o.log.fsync_every_n = fsync_every_n;
             o.log.fsync_interval_ms = fsync_interval_ms;
             o.log.segment_bytes = segment_bytes;
             o.log.retention_events = retention_events;
             o.log.retention_bytes = retention_bytes;
             o.log.retention_age_ms = retention_age_ms;
             o.url = url;
             o.shards = shards;
             o.shard_bytes = shard_bytes;
             o.max_event = max_event;
             o.backpressure = ParseOnFull(backpressure);
             o.timestamps = timestamps;
             o.groups = std::move(groups);
             o.must_match = must_match;
             o.create = create;
             Result<std::unique_ptr<Bus>> r = Status(Code::kInternal, "");
             {
               py::gil_scoped_release nogil;  // a remote bus connects to its server
               r = Bus::Open(o);
             }
             if (!r.ok()) pyerr::Raise(r.status());
             // The GIL is released around ingest where it waits: for fsync, or for a server.
             const bool durable = weft::bus::IsRemoteUrl(url) || (url.rfind("log:", 0) == 0 && o.log.fsync != weft::log::Fsync::kNever);
             return PyBus{std::shared_ptr<Bus>(std::move(r).value()), durable};
           }),
           py::arg("url"), py::arg("shards"), py::arg("shard_bytes"), py::arg("max_event"), py::arg("backpressure"),
           py::arg("timestamps"), py::arg("groups"), py::arg("must_match"), py::arg("create"), py::arg("fsync"),
           py::arg("fsync_every_n"), py::arg("fsync_interval_ms"), py::arg("segment_bytes"),
           py::arg("retention_events"), py::arg("retention_bytes"), py::arg("retention_age_ms"), py::arg("linger_ns"),
           py::arg("linger_events"), py::arg("nonce_path"), py::arg("max_len"), py::arg("claim_idle_ms"),
           py::arg("op_timeout_ms"), py::arg("dedup_window_ms"), py::arg("dedup_capacity"), py::arg("replicas"))
      .def("_ingest",
           [](PyBus& self, py::handle data, py::handle key, Seconds timeout) {
             Bus& bus = Get(self);
             EventBytes b(data);
             std::optional<EventBytes> k;
             if (!key.is_none()) k.emplace(key);
             auto op = [&](Deadline d) {
               return MaybeWithoutGil(self, [&] { return k ? bus.IngestKeyed(k->bytes(), b.bytes(), d) : bus.Ingest(b.bytes(), d); });
             };
             Result<weft::bus::Position> r = Ingesting(timeout, op);
             if (!r.ok()) pyerr::Raise(r.status());
             return PositionTuple(*r);
           },
           py::arg("data"), py::arg("key"), py::arg("timeout"))
      // Several events to this thread's shard in as few claims as the shard allows; returns how
      // many were ingested (a prefix), waiting up to `timeout` under block.
      .def("ingest_raw_batch",
           [](PyBus& self, py::handle events, Seconds timeout) -> size_t {
             Bus& bus = Get(self);
             if (!PyList_Check(events.ptr()) && !PyTuple_Check(events.ptr())) {
               pyerr::Raise(weft::InvalidArgument("events must be a list or tuple"));
             }
             // A list of its own holds every event while the GIL is released to wait.
             py::list items = py::reinterpret_steal<py::list>(PySequence_List(events.ptr()));
             if (!items) throw py::error_already_set();
             thread_local std::vector<ByteView> views;
             views.clear();
             views.reserve(items.size());
             std::deque<BufferView> held;  // buffers other than bytes and str, held for the call
             for (py::handle h : items) {
               if (PyBytes_CheckExact(h.ptr())) {
                 views.emplace_back(reinterpret_cast<const uint8_t*>(PyBytes_AS_STRING(h.ptr())),
                                    static_cast<size_t>(PyBytes_GET_SIZE(h.ptr())));
               } else if (PyUnicode_Check(h.ptr())) {
                 views.push_back(Utf8(h));
               } else {
                 views.push_back(held.emplace_back(h, "events").bytes());
               }
             }
             size_t done = 0;
             while (done < views.size()) {
               const auto rest = std::span<const ByteView>(views).subspan(done);
               Result<size_t> r =
                   Ingesting(timeout, [&](Deadline d) { return MaybeWithoutGil(self, [&] { return bus.IngestBatch(rest, d); }); });
               if (!r.ok()) {
                 if (done > 0) break;
                 pyerr::Raise(r.status());
               }
               done += *r;
               if (bus.options().backpressure != Overflow::kBlock) break;  // the rest was dropped or left
             }
             return done;
           },
           py::arg("events"), py::arg("timeout") = py::none())
      .def("_subscribe",
           [](PyBus& self, const std::string& group, bool auto_commit, const std::string& start, int64_t spin_ns) {
             weft::bus::ConsumerOptions o;
             o.auto_commit = auto_commit;
             if (start == "oldest") {
               o.start = weft::bus::Start::kOldest;
             } else if (start == "latest") {
               o.start = weft::bus::Start::kLatest;
             } else {
               pyerr::Raise(weft::InvalidArgument("start must be 'oldest' or 'latest', not '" + start + "'"));
             }
             if (spin_ns != INT64_MIN) o.wait.spin_ns = spin_ns;
             auto r = Get(self).Subscribe(group, o);
             if (!r.ok()) pyerr::Raise(r.status());
             PyConsumer c;
             c.consumer = std::shared_ptr<Consumer>(std::move(r).value());
             return c;
           },
           py::arg("group"), py::arg("auto_commit"), py::arg("start"), py::arg("spin_ns"))
      .def("flush",
           [](PyBus& self) {
             Bus& bus = Get(self);
             Status st;
             {
               py::gil_scoped_release nogil;  // a batch may wait for room or for the disk
               st = bus.Flush();
             }
             pyerr::Check(st);
           })
      .def("_stats", [](PyBus& self) { return StatsDict(Get(self).Stats()); })
      .def("shard_of",
           [](PyBus& self, py::handle key) {
             EventBytes k(key);
             return Get(self).ShardOf(k.bytes());
           })
      .def_property_readonly("num_shards", [](PyBus& self) { return Get(self).shards(); })
      .def_property_readonly("url", [](PyBus& self) { return Get(self).options().url; })
      .def_property_readonly("shard_bytes", [](PyBus& self) { return Get(self).options().shard_bytes; })
      .def_property_readonly("max_event", [](PyBus& self) { return Get(self).options().max_event; })
      .def_property_readonly("backpressure",
                             [](PyBus& self) { return std::string(OverflowName(Get(self).options().backpressure)); })
      .def_property_readonly("closed", [](PyBus& self) { return !self.bus; })
      .def("_close", [](PyBus& self) { self.bus.reset(); });

  {
    py::object cls = m.attr("_Bus");
    PyObject* descr = PyDescr_NewMethod(reinterpret_cast<PyTypeObject*>(cls.ptr()), &g_ingest_raw);
    if (descr == nullptr) throw py::error_already_set();
    py::setattr(cls, "ingest_raw", py::reinterpret_steal<py::object>(descr));
  }

  m.def("_bus_unlink", [](const std::string& url) { pyerr::Check(Bus::Unlink(url)); });

  py::class_<PyConsumer>(m, "_BusConsumer")
      .def("_poll",
           [](PyConsumer& self, size_t limit, Seconds timeout) {
             Consumer& c = self.Get();
             self.EndBatch();
             auto r = Blocking(timeout, [&](Deadline d) { return c.Poll(limit, d); });
             if (!r.ok()) pyerr::Raise(r.status());
             auto b = std::make_shared<PyBatch>();
             b->consumer = self.consumer;
             b->events = *r;
             self.live = b;
             return b;
           },
           py::arg("limit"), py::arg("timeout"))
      .def("commit",
           [](PyConsumer& self) {
             Consumer& c = self.Get();
             self.EndBatch();
             pyerr::Check(c.Commit());
           })
      .def_property_readonly("shards", [](PyConsumer& self) { return self.Get().shards(); })
      .def_property_readonly("group", [](PyConsumer& self) { return self.Get().group(); })
      .def_property_readonly("closed", [](PyConsumer& self) { return !self.consumer; })
      .def("fileno",
           [](PyConsumer& self) {
             auto r = self.Get().WaitFd();
             if (!r.ok()) pyerr::Raise(r.status());
             return *r;
           })
      .def("interrupt", [](PyConsumer& self) { self.Get().Interrupt(); })
      .def("close", [](PyConsumer& self) {
        if (!self.consumer) return;
        Status s;
        try {
          self.EndBatch();
        } catch (...) {
          s = self.consumer->Close();
          self.consumer.reset();
          throw;
        }
        s = self.consumer->Close();
        self.consumer.reset();
        pyerr::Check(s);
      });

  py::class_<PyBatch, std::shared_ptr<PyBatch>>(m, "_BusBatch")
      .def("__len__", [](PyBatch& b) { return b.valid ? b.events.size() : 0; })
      .def_property_readonly("valid", [](PyBatch& b) { return b.valid; })
      // (shard, offset, timestamp_ns, key bytes or None) of event i.
      .def("_meta",
           [](PyBatch& b, py::ssize_t i) {
             const Event& e = b.At(i);
             py::object key = e.key.empty() ? py::object(py::none())
                                            : py::object(py::bytes(reinterpret_cast<const char*>(e.key.data()), e.key.size()));
             return py::make_tuple(e.position.shard, e.position.offset, e.timestamp_ns, key);
           })
      // A read-only span over event i's data in the ring (invalidated with the batch).
      .def("_span",
           [](PyBatch& b, py::ssize_t i) {
             const Event& e = b.At(i);
             py::object s = MakeSpan(const_cast<uint8_t*>(e.data.data()), e.data.size(), true, b.consumer);
             b.spans.push_back(s);
             return s;
           })
      .def("_bytes",
           [](PyBatch& b, py::ssize_t i) {
             const Event& e = b.At(i);
             return py::bytes(reinterpret_cast<const char*>(e.data.data()), e.data.size());
           })
      // Every event's data as bytes, in order (one copy each).
      .def("copy",
           [](PyBatch& b) {
             py::list out(b.valid ? b.events.size() : 0);
             for (size_t i = 0; i < b.events.size() && b.valid; ++i) {
               const Event& e = b.events[i];
               out[i] = py::bytes(reinterpret_cast<const char*>(e.data.data()), e.data.size());
             }
             return out;
           })
      // The data of every event, one after another, in one bytes object.
      .def("join",
           [](PyBatch& b) {
             if (!b.valid) pyerr::Raise(Status(Code::kClosed, "this batch was released by a later poll"));
             size_t total = 0;
             for (const Event& e : b.events) total += e.data.size();
             py::bytes out(nullptr, total);
             char* p = PyBytes_AS_STRING(out.ptr());
             for (const Event& e : b.events) {
               std::memcpy(p, e.data.data(), e.data.size());
               p += e.data.size();
             }
             return out;
           })
      .def("sizes",
           [](PyBatch& b) {
             std::vector<size_t> out;
             if (b.valid) {
               out.reserve(b.events.size());
               for (const Event& e : b.events) out.push_back(e.data.size());
             }
             return out;
           })
      .def_property_readonly("nbytes", [](PyBatch& b) {
        size_t total = 0;
        if (b.valid) {
          for (const Event& e : b.events) total += e.data.size();
        }
        return total;
      });
}

}  // namespace weft::py_bind
