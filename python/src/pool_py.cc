// Python binding of weft::shm::Pool: blocks as integers, their bytes as writable spans.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <memory>

#include "args.h"
#include "errors.h"
#include "span.h"
#include "weft/shm/pool.h"

namespace py = pybind11;
using weft::shm::Pool;

namespace weft::py_bind {
namespace {

struct PyPool {
  std::shared_ptr<Pool> pool;
};

Pool& Get(PyPool& self) {
  if (!self.pool) pyerr::Raise(Status(Code::kClosed, "pool is closed"));
  return *self.pool;
}

py::dict StatsDict(const weft::shm::PoolStats& s) {
  py::dict d;
  d["page_size"] = s.page_size;
  d["arenas"] = s.arenas;
  d["pages"] = s.pages;
  d["pages_assigned"] = s.pages_assigned;
  d["blocks_in_use"] = s.blocks_in_use;
  d["bytes_in_use"] = s.bytes_in_use;
  d["large_in_use"] = s.large_in_use;
  d["large_bytes"] = s.large_bytes;
  py::list holders;
  for (const auto& h : s.holders) {
    py::dict hd;
    hd["slot"] = h.slot;
    hd["pid"] = h.pid;
    hd["alive"] = h.alive;
    hd["blocks"] = h.blocks;
    holders.append(hd);
  }
  d["holders"] = holders;
  return d;
}

}  // namespace

void BindPool(py::module_& m) {
  py::class_<PyPool>(m, "_Pool")
      .def(py::init([](const std::string& name, bool create, size_t bytes, size_t max_arenas,
                       size_t max_large_blocks, size_t max_block) {
             weft::Result<std::unique_ptr<Pool>> r = Status(Code::kInternal, "unset");
             if (create) {
               r = Pool::OpenOrCreate(name, {.bytes = bytes, .max_arenas = max_arenas,
                                             .max_large_blocks = max_large_blocks, .max_block = max_block});
             } else {
               r = Pool::Open(name);
             }
             if (!r.ok()) pyerr::Raise(r.status());
             return PyPool{std::shared_ptr<Pool>(std::move(r).value())};
           }),
           py::arg("name"), py::arg("create"), py::arg("bytes"), py::arg("max_arenas"),
           py::arg("max_large_blocks"), py::arg("max_block"))
      .def_static("unlink", [](const std::string& name) { pyerr::Check(Pool::Unlink(name)); })
      .def_static("snapshot",
                  [](const std::string& name) {
                    auto r = Pool::Snapshot(name);
                    if (!r.ok()) pyerr::Raise(r.status());
                    return StatsDict(*r);
                  })
      .def("allocate",
           [](PyPool& self, Count n_arg) {
             const size_t n = n_arg.Get("n");
             auto r = Get(self).Allocate(n);
             if (!r.ok()) pyerr::Raise(r.status());
             return *r;
           },
           py::arg("n"))
      .def("_span",
           [](PyPool& self, Count block_arg) {
             const uint64_t block = block_arg.Get("block");
             auto r = Get(self).Data(block);
             if (!r.ok()) pyerr::Raise(r.status());
             return MakeSpan(r->data(), r->size(), false, self.pool);
           })
      .def("hold", [](PyPool& self, Count block_arg) {
             const uint64_t block = block_arg.Get("block"); pyerr::Check(Get(self).Hold(block)); })
      .def("release", [](PyPool& self, Count block_arg) {
             const uint64_t block = block_arg.Get("block"); pyerr::Check(Get(self).Release(block)); })
      .def("recover_dead", [](PyPool& self) { return Get(self).RecoverDead(); })
      .def("stats", [](PyPool& self) { return StatsDict(Get(self).Stats()); })
      .def_static("block_size_for", &Pool::BlockSizeFor)
      .def("close",
           [](PyPool& self) {
             if (self.pool) {
               Status s = self.pool->Close();
               self.pool.reset();
               pyerr::Check(s);
             }
           })
      .def_property_readonly("closed", [](PyPool& self) { return !self.pool; })
      .def_property_readonly("name", [](PyPool& self) { return Get(self).name(); })
      .def_property_readonly("holder_slot", [](PyPool& self) { return Get(self).holder_slot(); });
}

}  // namespace weft::py_bind
