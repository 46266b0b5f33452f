// Python binding of RPC contracts: the canonical text is checked, hashed and compared by the
// same C++ code that serves and calls.
#include <pybind11/pybind11.h>

#include <string>

#include "errors.h"
#include "weft/rpc/contract.h"

namespace py = pybind11;

namespace weft::py_bind {

void BindRpc(py::module_& m) {
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
