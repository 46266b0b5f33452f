// Python binding of RPC contracts: the canonical text is checked, hashed and compared by the
// same C++ code that serves and calls.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <string>

#include "blocking.h"
#include "buffer.h"
#include "errors.h"
#include "scheduler.h"
#include "weft/rpc/contract.h"
#include "weft/rpc/rpc.h"
#include "wire.h"

namespace py = pybind11;

namespace weft::py_bind {
namespace {

// A Python exception raised by a resource's method, as a Status for the caller: weft errors keep
// their code, others become kInternal naming the exception.
Status FromPython(py::error_already_set& e) {
  py::object errors = py::module_::import("weft._errors");
  const py::object value = e.value();
  Code code = Code::kInternal;
  if (py::isinstance(value, errors.attr("Error"))) {
    code = static_cast<Code>(py::cast<int>(value.attr("code")));
  }
  std::string type = py::str(e.type().attr("__name__"));
  std::string msg = py::str(value);
  return Status(code, code == Code::kInternal ? type + ": " + msg : msg);
}

struct PyServer {
  std::unique_ptr<weft::rpc::Server> server;
  PyServer(std::unique_ptr<weft::rpc::Server> s) : server(std::move(s)) {}
  PyServer(PyServer&&) = default;
  ~PyServer() {
    if (!server) return;
    // Shutting down joins threads that may be waiting for the GIL inside a handler.
    py::gil_scoped_release nogil;
    server.reset();
  }
};
struct PyClient {
  std::unique_ptr<weft::rpc::Client> client;
};

}  // namespace

void BindRpc(py::module_& m) {
  using weft::rpc::Access;
  using weft::rpc::internal::Scheduler;
  // The read/write scheduler of one resource, for resources served from Python.
  py::class_<Scheduler>(m, "_Scheduler")
      .def(py::init<>())
      .def(
          "enter",
          [](Scheduler& s, bool write, std::optional<double> timeout) {
            const Access a = write ? Access::kWrite : Access::kRead;
            const Deadline d = ToDeadline(timeout);
            bool ok;
            {
              py::gil_scoped_release nogil;  // other calls must be able to leave meanwhile
              ok = s.Enter(a, d);
            }
            if (!ok) pyerr::Raise(Status(Code::kTimeout, "the resource stayed busy past the deadline"));
          },
          py::arg("write"), py::arg("timeout"))
      .def("leave", [](Scheduler& s, bool write) { s.Leave(write ? Access::kWrite : Access::kRead); }, py::arg("write"))
      .def("stats", [](Scheduler& s) {
        const Scheduler::Stats st = s.stats();
        py::dict d;
        d["reads"] = st.reads;
        d["writes"] = st.writes;
        d["timeouts"] = st.timeouts;
        d["max_readers"] = st.max_readers;
        return d;
      });

  m.def(
      "_contract_hash",
      [](const std::string& canonical) {
        auto c = weft::rpc::Contract::Parse(canonical);
        if (!c.ok()) pyerr::Raise(c.status());
        return c->Hash();
      },
      py::arg("canonical"), "Validates a canonical contract text and returns its hash.");
  m.def(
      "_contract_compare",
      [](const std::string& server, const std::string& client) {
        auto s = weft::rpc::Contract::Parse(server);
        if (!s.ok()) pyerr::Raise(s.status());
        auto c = weft::rpc::Contract::Parse(client);
        if (!c.ok()) pyerr::Raise(c.status());
        pyerr::Check(weft::rpc::Compare(*s, *c));
      },
      py::arg("server"), py::arg("client"), "Raises ContractMismatch saying what differs.");

  // Serving at ipc://<id>: each method is dispatched to `dispatch(method_index, [bytes...])`,
  // which returns the result's bytes; called with the GIL held, from the server's threads.
  py::class_<PyServer>(m, "_RpcServer")
      .def(py::init([](const std::string& id) {
             auto s = weft::rpc::Server::Create(id);
             if (!s.ok()) pyerr::Raise(s.status());
             return PyServer{std::move(s).value()};
           }),
           py::arg("id"))
      .def("register",
           [](PyServer& self, const std::string& name, const std::string& canonical, py::object dispatch) {
             auto c = weft::rpc::Contract::Parse(canonical);
             if (!c.ok()) pyerr::Raise(c.status());
             weft::rpc::Resource r;
             r.contract = *c;
             auto fn = std::make_shared<py::object>(std::move(dispatch));
             for (size_t i = 0; i < c->methods.size(); ++i) {
               r.handlers[c->methods[i].name] = [fn](const weft::rpc::CallArgs& a) -> Result<std::string> {
                 py::gil_scoped_acquire gil;
                 try {
                   py::list args;
                   for (ByteView b : a.args) args.append(py::bytes(reinterpret_cast<const char*>(b.data()), b.size()));
                   py::object out = (*fn)(a.method, args);
                   return std::string(py::cast<std::string_view>(py::bytes(out)));
                 } catch (py::error_already_set& e) {
                   return FromPython(e);
                 }
               };
             }
             pyerr::Check(self.server->Register(name, std::move(r)));
           },
           py::arg("name"), py::arg("canonical"), py::arg("dispatch"))
      .def("start", [](PyServer& self) { pyerr::Check(self.server->Start()); })
      .def("shutdown",
           [](PyServer& self, std::optional<double> timeout) {
             Status s;
             {
               py::gil_scoped_release nogil;  // handlers in flight need the GIL to finish
               s = self.server->Shutdown(ToDeadline(timeout));
             }
             pyerr::Check(s);
           },
           py::arg("timeout") = py::none())
      .def_property_readonly("address", [](PyServer& self) { return self.server->address(); });

  py::class_<PyClient>(m, "_RpcClient")
      .def(py::init([](const std::string& canonical, const std::string& name, const std::string& address,
                       std::optional<double> timeout) {
             auto c = weft::rpc::Contract::Parse(canonical);
             if (!c.ok()) pyerr::Raise(c.status());
             Result<std::unique_ptr<weft::rpc::Client>> client = Status(Code::kInternal, "");
             {
               py::gil_scoped_release nogil;
               client = weft::rpc::Client::Connect(*c, name, address, ToDeadline(timeout));
             }
             if (!client.ok()) pyerr::Raise(client.status());
             return PyClient{std::move(client).value()};
           }),
           py::arg("canonical"), py::arg("name"), py::arg("address"), py::arg("timeout"))
      .def("call",
           [](PyClient& self, const std::string& method, const py::list& args, std::optional<double> timeout) {
             if (!self.client) pyerr::Raise(Status(Code::kClosed, "proxy is closed"));
             std::vector<std::unique_ptr<BufferView>> held;  // the encoded arguments, no copy
             std::vector<ByteView> views;
             for (py::handle a : args) {
               held.push_back(std::make_unique<BufferView>(a));
               views.push_back(held.back()->bytes());
             }
             Result<std::string> r = Status(Code::kInternal, "");
             {
               py::gil_scoped_release nogil;
               r = self.client->Call(method, views, ToDeadline(timeout));
             }
             if (!r.ok()) pyerr::Raise(r.status());
             return py::bytes(*r);
           },
           py::arg("method"), py::arg("args"), py::arg("timeout"))
      .def("close", [](PyClient& self) { self.client.reset(); });

  // ndarray values: the header of docs/formats/rpc-wire.md, built and checked in one place.
  m.def("_ndarray_header", [](const std::string& dtype, const std::vector<uint64_t>& shape) {
    uint64_t off = 0;
    return py::bytes(weft::rpc::internal::EncodeArrayHeader(dtype, shape, &off));
  });
  m.def("_ndarray_parse", [](const py::buffer& value) {
    py::buffer_info info = value.request();
    auto a = weft::rpc::internal::DecodeArrayHeader(
        ByteView(static_cast<const uint8_t*>(info.ptr), static_cast<size_t>(info.size * info.itemsize)));
    if (!a.ok()) pyerr::Raise(a.status());
    return py::make_tuple(a->dtype, a->shape, a->data_offset);
  });
}

}  // namespace weft::py_bind
