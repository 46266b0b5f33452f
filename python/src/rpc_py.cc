// Python binding of RPC contracts: the canonical text is checked, hashed and compared by the
// same C++ code that serves and calls.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <string>

#include "blocking.h"
#include "errors.h"
#include "scheduler.h"
#include "weft/rpc/contract.h"

namespace py = pybind11;

namespace weft::py_bind {

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
}

}  // namespace weft::py_bind
