// Python binding of topics: publishers loan blocks and publish them, subscribers take them.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <memory>

#include "blocking.h"
#include "endpoint.h"
#include "args.h"
#include "errors.h"
#include "span.h"
#include "weft/shm/topic.h"

namespace py = pybind11;
using weft::shm::Publisher;
using weft::shm::Sample;
using weft::shm::Subscriber;

namespace weft::py_bind {
namespace {

struct PyPublisher : Endpoint<Publisher> {};
struct PySubscriber : Endpoint<Subscriber> {};

weft::shm::TopicOptions CreateOptions(uint32_t queue_depth, uint32_t keep_history, size_t pool_bytes, bool must_match) {
  weft::shm::TopicOptions o;
  o.queue_depth = queue_depth;
  o.history = keep_history;
  o.pool.bytes = pool_bytes;
  o.must_match = must_match;
  return o;
}


Publisher& Get(PyPublisher& self) {
  if (!self.obj) pyerr::Raise(Status(Code::kClosed, "publisher is closed"));
  return *self.obj;
}
Subscriber& Get(PySubscriber& self) {
  if (!self.obj) pyerr::Raise(Status(Code::kClosed, "subscriber is closed"));
  return *self.obj;
}


}  // namespace

void BindTopic(py::module_& m) {
  m.def("_unlink_topic", [](const std::string& name) { pyerr::Check(weft::shm::UnlinkTopic(name)); }, py::arg("name"));
  py::class_<PyPublisher>(m, "_Publisher")
      .def(py::init([](const std::string& name, uint32_t queue_depth, uint32_t keep_history, size_t pool_bytes,
                       bool must_match) {
             auto r = Publisher::Open(name, CreateOptions(queue_depth, keep_history, pool_bytes, must_match));
             if (!r.ok()) pyerr::Raise(r.status());
             PyPublisher p;
             p.obj = std::shared_ptr<Publisher>(std::move(r).value());
             return p;
           }),
           py::arg("name"), py::arg("queue_depth"), py::arg("keep_history"), py::arg("pool_bytes"),
           py::arg("must_match") = false)
      .def("_loan",
           [](PyPublisher& self, Count n_arg) {
             const size_t n = n_arg.Get("n");
             auto r = Get(self).Loan(n);
             if (!r.ok()) pyerr::Raise(r.status());
             return py::make_tuple(r->block, MakeSpan(r->data.data(), n, false, self.obj));
           })
      .def("_publish",
           [](PyPublisher& self, Count block_arg, Count size_arg, Seconds timeout) {
             const uint64_t block = block_arg.Get("block");
             const size_t size = size_arg.Get("size");
             // A publish that times out has delivered to nobody (room is made for every
             // subscriber before any entry is written), so publish_async may call this in
             // slices; each wait checks a full subscriber's liveness every 20 ms and skips it if
             // it died. close() from another thread ends the wait.
             EndpointCall<Publisher> call(self, "publisher");
             const Deadline deadline = ToDeadline(timeout);
             Status s;
             call.Pin();
             {
               py::gil_scoped_release nogil;
               s = call->Publish(block, size, deadline);
             }
             pyerr::Check(s);
           })
      .def("_discard",
           [](PyPublisher& self, Count block_arg) {
             const uint64_t block = block_arg.Get("block");
             Sample s;
             s.block = block;
             pyerr::Check(Get(self).Discard(s));
           })
      .def_property_readonly("subscribers", [](PyPublisher& self) { return Get(self).subscribers_approx(); })
      .def("close", [](PyPublisher& self) { self.Close(); });

  py::class_<PySubscriber>(m, "_Subscriber")
      .def(py::init([](const std::string& name, uint32_t history, const std::string& on_full,
                       std::optional<double> spin_us, uint32_t queue_depth, uint32_t keep_history,
                       size_t pool_bytes, bool must_match) {
             weft::shm::SubscriberOptions o;
             o.history = history;
             o.on_full = ParseOnFull(on_full);
             if (spin_us.has_value()) o.spin_ns = *spin_us < 0 ? -1 : static_cast<int64_t>(*spin_us * 1000);
             auto r = Subscriber::Open(name, o, CreateOptions(queue_depth, keep_history, pool_bytes, must_match));
             if (!r.ok()) pyerr::Raise(r.status());
             PySubscriber p;
             p.obj = std::shared_ptr<Subscriber>(std::move(r).value());
             return p;
           }),
           py::arg("name"), py::arg("history"), py::arg("on_full"), py::arg("spin_us"),
           py::arg("queue_depth"), py::arg("keep_history"), py::arg("pool_bytes"), py::arg("must_match") = false)
      .def("_take",
           [](PySubscriber& self, Seconds timeout) {
             EndpointCall<Subscriber> call(self, "subscriber");
             Subscriber& sub = *call;
             auto r = Blocking(timeout, [&](Deadline d) { return sub.Take(d); }, [&] { call.Pin(); });
             if (!r.ok()) pyerr::Raise(r.status());
             return py::make_tuple(r->block, MakeSpan(r->data.data(), r->data.size(), true, call.shared()), r->seq,
                                   r->publisher);
           },
           py::arg("timeout") = py::none())
      .def("_release",
           [](PySubscriber& self, Count block_arg) {
             const uint64_t block = block_arg.Get("block");
             Sample s;
             s.block = block;
             pyerr::Check(Get(self).Release(s));
           })
      .def("fileno",
           [](PySubscriber& self) {
             auto r = Get(self).WaitFd();
             if (!r.ok()) pyerr::Raise(r.status());
             return *r;
           })
      .def("counters",
           [](PySubscriber& self) {
             auto c = Get(self).counters();
             py::dict d;
             d["taken"] = c.taken;
             d["drops_newest"] = c.drops_newest;
             d["drops_oldest"] = c.drops_oldest;
             return d;
           })
      .def("close", [](PySubscriber& self) { self.Close(); });
}

}  // namespace weft::py_bind
