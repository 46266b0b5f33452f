// Python binding of RPC contracts: the canonical text is checked, hashed and compared by the
// same C++ code that serves and calls.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstring>
#include <string>

#include "blocking.h"
#include "buffer.h"
#include "args.h"
#include "errors.h"
#include "weft/rpc/scheduler.h"
#include "weft/rpc/contract.h"
#include "weft/rpc/rpc.h"
#include "weft/rpc/codec.h"

namespace py = pybind11;

namespace weft::py_bind {
namespace {

// A Python exception raised by a resource's method, as a Status for the caller: weft errors keep
// their code, others become kInternal naming the exception.
Status FromPython(py::error_already_set& e) {
  py::object errors = py::module_::import("weft._errors");
  const py::object value = e.value();
  Code code = Code::kInternal;
  const bool ours = py::isinstance(value, errors.attr("Error"));
  if (ours) code = static_cast<Code>(py::cast<int>(value.attr("code")));
  std::string type = py::str(e.type().attr("__name__"));
  std::string msg = py::str(value);
  // Another exception's type says what went wrong; a weft error's code says it already.
  return Status(code, ours ? msg : type + ": " + msg);
}

// A hold on a block of a server's pool, as a Python buffer. The block stays valid while this
// object lives, which is while anything viewing it (a memoryview, a NumPy array) lives: there
// is no way to read it after it is gone. Loans are writable, received values read-only.
struct PyBlock {
  std::shared_ptr<weft::rpc::Held> held;
  size_t size = 0;  // the value's bytes at the start of the block
  bool writable = false;
};

py::object WrapBlock(std::shared_ptr<weft::rpc::Held> held, size_t size, bool writable) {
  return py::cast(PyBlock{std::move(held), size, writable});
}

// A large value received by value (tcp://), as a read-only Python buffer over the memory it was
// received into: NumPy views it without a copy.
struct PyReceived {
  std::shared_ptr<weft::rpc::Buffer> buffer;
};

// The GIL for a server thread, with one Python thread state kept for the thread's life: making
// one per call (as PyGILState_Ensure does on a thread Python did not start) costs an mmap and
// munmap of its frame stack each time. The thread state goes when the thread ends.
class ServerThreadGil {
 public:
  ServerThreadGil() {
    Kept& k = kept();
    if (k.ts == nullptr) {
      k.st = PyGILState_Ensure();  // creates the thread state, and takes the GIL
      k.ts = PyThreadState_Get();
    } else {
      PyEval_RestoreThread(k.ts);
    }
  }
  ~ServerThreadGil() { PyEval_SaveThread(); }
  ServerThreadGil(const ServerThreadGil&) = delete;
  ServerThreadGil& operator=(const ServerThreadGil&) = delete;

 private:
  struct Kept {
    PyThreadState* ts = nullptr;
    PyGILState_STATE st{};
    ~Kept() {
      if (ts == nullptr || !Py_IsInitialized() || _Py_IsFinalizing()) return;
      PyEval_RestoreThread(ts);
      PyGILState_Release(st);  // deletes the thread state and releases the GIL
    }
  };
  static Kept& kept() {
    thread_local Kept k;
    return k;
  }
};

// The call being served on this thread, for weft.cancelled().
thread_local weft::rpc::CallContext* t_call = nullptr;

// TcpSecurity from {"key_file", "trusted_keys", "ca_file", "cert_file", "plaintext"}.
weft::rpc::TcpSecurity TcpSecurityOf(const py::dict& d) {
  weft::rpc::TcpSecurity t;
  if (d.contains("key_file") && !d["key_file"].is_none()) t.key_file = py::str(d["key_file"]);
  if (d.contains("trusted_keys") && !d["trusted_keys"].is_none()) {
    for (py::handle k : d["trusted_keys"]) t.trusted_keys.push_back(py::str(k));
  }
  if (d.contains("ca_file") && !d["ca_file"].is_none()) t.ca_file = py::str(d["ca_file"]);
  if (d.contains("cert_file") && !d["cert_file"].is_none()) t.cert_file = py::str(d["cert_file"]);
  if (d.contains("plaintext")) t.plaintext = py::bool_(d["plaintext"]);
  return t;
}

constexpr size_t kInlineMax = 64 << 10;

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
using StreamSlot = std::shared_ptr<std::unique_ptr<weft::rpc::Stream>>;
struct PyClient {
  std::unique_ptr<weft::rpc::Client> client;
  std::vector<std::weak_ptr<std::unique_ptr<weft::rpc::Stream>>> streams;
  // Streams end before their client (a Stream must not outlive the Client it reads from).
  void Close() {
    for (auto& w : streams) {
      if (StreamSlot s = w.lock()) s->reset();
    }
    streams.clear();
    client.reset();
  }
  ~PyClient() { Close(); }
  PyClient() = default;
  PyClient(PyClient&&) = default;
};
struct PyStream {
  StreamSlot stream;  // emptied if the proxy is closed first
  bool hold = false;
};
struct PyCancel {
  std::shared_ptr<weft::rpc::CancelToken> token = std::make_shared<weft::rpc::CancelToken>();
};

// A value as Python sees it: bytes of its own, or a PyBlock over shared memory.
py::object ReplyObject(weft::rpc::Reply& r, bool hold) {
  if (r.held != nullptr) {
    if (hold) return WrapBlock(std::move(r.held), r.held_length, false);
    const ByteView b = r.bytes();
    return py::bytes(reinterpret_cast<const char*>(b.data()), b.size());  // the one copy
  }
  if (r.buffer != nullptr) return py::cast(PyReceived{std::move(r.buffer)});
  return py::bytes(r.inline_bytes);
}

// The result (or a chunk) a Python handler produced, for the reply: a buffer that starts a block
// this server holds is sent as that block; other large values are copied once into a new block;
// small ones inline. *out gets the bytes when they travel inline.
Status SendBack(weft::rpc::CallContext& ctx, py::handle value, std::string* out) {
  BufferView view(value, "results");
  const ByteView b = view.bytes();
  if (b.size() <= kInlineMax) {
    out->assign(reinterpret_cast<const char*>(b.data()), b.size());
    return Status::Ok();
  }
  if (ctx.ReturnHeld(b).ok()) return Status::Ok();
  auto loan = ctx.Loan(b.size());
  if (!loan.ok()) return loan.status();
  std::memcpy((*loan)->mutable_bytes().data(), b.data(), b.size());
  return ctx.ReturnHeld((*loan)->bytes());
}

py::dict HoldDict(const weft::rpc::HoldStats& s) {
  py::dict d;
  d["active_holds"] = s.active_holds;
  d["total_held_bytes"] = s.held_bytes;
  d["oldest_hold_seconds"] = s.oldest_hold_seconds;
  return d;
}

weft::rpc::CallOptions Options(Seconds timeout, bool hold, const PyCancel* cancel) {
  weft::rpc::CallOptions o;
  o.deadline = ToDeadline(timeout);
  o.hold = hold;
  o.cancel = cancel != nullptr ? cancel->token.get() : nullptr;
  return o;
}

}  // namespace

void BindRpc(py::module_& m) {
  using weft::rpc::Access;
  using weft::rpc::Scheduler;
  // The read/write scheduler of one resource, for resources served from Python.
  py::class_<Scheduler>(m, "_Scheduler")
      .def(py::init<>())
      .def(
          "enter",
          [](Scheduler& s, bool write, Seconds timeout) {
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
      .def(py::init([](const std::string& id, std::vector<uint32_t> allow_uids, size_t max_clients,
                       size_t max_clients_per_uid, uint64_t max_held_bytes_per_client, std::vector<std::string> listen,
                       const py::dict& tcp, py::object authorize, const py::dict& discovery) {
             weft::rpc::ServerOptions o;
             o.allow_uids = std::move(allow_uids);
             o.max_clients = max_clients;
             o.max_clients_per_uid = max_clients_per_uid;
             o.max_held_bytes_per_client = max_held_bytes_per_client;
             o.listen = std::move(listen);
             o.tcp = TcpSecurityOf(tcp);
             // {"registry", "ttl_ms", "advertise", "relay"}
             if (discovery.contains("registry") && !discovery["registry"].is_none()) {
               o.registry = discovery["registry"].cast<std::string>();
             }
             if (discovery.contains("ttl_ms")) o.registry_ttl_ms = discovery["ttl_ms"].cast<int64_t>();
             if (discovery.contains("advertise")) o.advertise = discovery["advertise"].cast<std::vector<std::string>>();
             if (discovery.contains("relay")) o.relay = discovery["relay"].cast<bool>();
             if (!authorize.is_none()) {
               // Called on a connection's thread: True lets the call run; False or an exception
               // refuses it (PermissionDenied, or the exception's own error).
               auto fn = std::make_shared<py::object>(std::move(authorize));
               o.authorize = [fn](const weft::rpc::Caller& c, const std::string& resource,
                                  const std::string& method) -> Status {
                 ServerThreadGil gil;
                 try {
                   py::object verdict = (*fn)(py::make_tuple(c.transport, c.identity, c.address), resource, method);
                   if (verdict.is_none() || py::bool_(verdict)) return Status::Ok();
                   return Status(Code::kPermissionDenied, "the server's authorize hook refused " + method + "() on '" +
                                                              resource + "' for " +
                                                              (c.identity.empty() ? c.address : c.identity));
                 } catch (py::error_already_set& e) {
                   return FromPython(e);
                 }
               };
             }
             Result<std::unique_ptr<weft::rpc::Server>> s = Status(Code::kInternal, "");
             {
               py::gil_scoped_release nogil;
               s = weft::rpc::Server::Create(id, o);
             }
             if (!s.ok()) pyerr::Raise(s.status());
             return PyServer{std::move(s).value()};
           }),
           py::arg("id"), py::arg("allow_uids"), py::arg("max_clients"), py::arg("max_clients_per_uid"),
           py::arg("max_held_bytes_per_client"), py::arg("listen") = std::vector<std::string>(),
           py::arg("tcp") = py::dict(), py::arg("authorize") = py::none(), py::arg("discovery") = py::dict())
      .def("register",
           [](PyServer& self, const std::string& name, const std::string& canonical, py::object dispatch) {
             auto c = weft::rpc::Contract::Parse(canonical);
             if (!c.ok()) pyerr::Raise(c.status());
             weft::rpc::Resource r;
             r.contract = *c;
             auto fn = std::make_shared<py::object>(std::move(dispatch));
             for (size_t i = 0; i < c->methods.size(); ++i) {
               const bool stream = c->methods[i].stream;
               r.handlers[c->methods[i].name] = [fn, stream](const weft::rpc::CallArgs& a) -> Result<std::string> {
                 ServerThreadGil gil;
                 weft::rpc::CallContext& ctx = *a.context;
                 struct Current {
                   explicit Current(weft::rpc::CallContext* c) { t_call = c; }
                   ~Current() { t_call = nullptr; }
                 } current(&ctx);
                 try {
                   // Arguments that came in blocks are read in place (borrowed input): the
                   // handler sees a buffer over shared memory that lives as long as it is used.
                   py::list args;
                   for (size_t k = 0; k < a.args.size(); ++k) {
                     if (auto h = ctx.ArgumentHold(k)) {
                       args.append(WrapBlock(std::move(h), a.args[k].size(), false));
                     } else {
                       args.append(py::bytes(reinterpret_cast<const char*>(a.args[k].data()), a.args[k].size()));
                     }
                   }
                   py::object out = (*fn)(a.method, args);
                   std::string bytes;
                   if (!stream) {
                     Status s = SendBack(ctx, out, &bytes);
                     if (!s.ok()) return s;
                     return bytes;
                   }
                   py::iterator it = py::iter(out);
                   auto close = [&] {
                     if (py::hasattr(out, "close")) out.attr("close")();
                   };
                   for (; it != py::iterator::sentinel(); ++it) {
                     py::object chunk = py::reinterpret_borrow<py::object>(*it);
                     BufferView view(chunk, "stream chunks");
                     Status s;
                     {
                       py::gil_scoped_release nogil;  // waiting for credit must not stop other calls
                       s = ctx.Yield(view.bytes());
                     }
                     if (!s.ok()) {
                       close();
                       return s;
                     }
                   }
                   return std::string();
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
           [](PyServer& self, Seconds timeout) {
             Status s;
             {
               py::gil_scoped_release nogil;  // handlers in flight need the GIL to finish
               s = self.server->Shutdown(ToDeadline(timeout));
             }
             pyerr::Check(s);
           },
           py::arg("timeout") = py::none())
      .def_property_readonly("address", [](PyServer& self) { return self.server->address(); })
      .def_property_readonly("addresses", [](PyServer& self) { return self.server->addresses(); })
      .def(
          "loan",
          [](PyServer& self, Count n_arg) {
             const size_t n = n_arg.Get("n");
            auto h = self.server->Loan(n);
            if (!h.ok()) pyerr::Raise(h.status());
            return WrapBlock(*std::move(h), n, true);
          },
          py::arg("nbytes"))
      .def("hold_stats", [](PyServer& self) { return HoldDict(self.server->hold_stats()); });

  py::class_<PyClient>(m, "_RpcClient")
      .def(py::init([](const std::string& canonical, const std::string& name, const std::string& address,
                       Seconds timeout, const py::dict& tcp, const py::dict& policy) {
             weft::rpc::ConnectOptions options;
             options.tcp = TcpSecurityOf(tcp);
             // {"attempts", "backoff_ms", "max_backoff_ms", "hedge_after_ms", "failures", "open_ms"}
             auto get = [&](const char* k, auto* v) {
               if (policy.contains(k)) *v = policy[k].cast<std::remove_pointer_t<decltype(v)>>();
             };
             get("attempts", &options.retry.attempts);
             get("backoff_ms", &options.retry.backoff_ms);
             get("max_backoff_ms", &options.retry.max_backoff_ms);
             get("hedge_after_ms", &options.hedge_after_ms);
             get("failures", &options.breaker.failures);
             get("open_ms", &options.breaker.open_ms);
             auto c = weft::rpc::Contract::Parse(canonical);
             if (!c.ok()) pyerr::Raise(c.status());
             Result<std::unique_ptr<weft::rpc::Client>> client = Status(Code::kInternal, "");
             {
               py::gil_scoped_release nogil;
               client = weft::rpc::Client::Connect(*c, name, address, ToDeadline(timeout), options);
             }
             if (!client.ok()) pyerr::Raise(client.status());
             PyClient out;
             out.client = std::move(client).value();
             return out;
           }),
           py::arg("canonical"), py::arg("name"), py::arg("address"), py::arg("timeout"), py::arg("tcp") = py::dict(),
           py::arg("policy") = py::dict())
      .def(
          "call",
          [](PyClient& self, const std::string& method, const py::list& args, Seconds timeout, bool hold,
             const PyCancel* cancel) {
            if (!self.client) pyerr::Raise(Status(Code::kClosed, "proxy is closed"));
            std::vector<std::unique_ptr<BufferView>> held;  // the encoded arguments, no copy
            std::vector<ByteView> views;
            for (py::handle a : args) {
              held.push_back(std::make_unique<BufferView>(a, "arguments"));
              views.push_back(held.back()->bytes());
            }
            // Large results always arrive held; without hold mode they are copied once, straight
            // into the bytes object returned.
            weft::rpc::CallOptions o = Options(timeout, true, cancel);
            Result<weft::rpc::Reply> r = Status(Code::kInternal, "");
            {
              py::gil_scoped_release nogil;
              r = self.client->Invoke(method, views, o);
            }
            if (!r.ok()) pyerr::Raise(r.status());
            return ReplyObject(*r, hold);
          },
          py::arg("method"), py::arg("args"), py::arg("timeout"), py::arg("hold") = false, py::arg("cancel") = nullptr)
      .def(
          "open_stream",
          [](PyClient& self, const std::string& method, const py::list& args, Seconds timeout, bool hold,
             const PyCancel* cancel) {
            if (!self.client) pyerr::Raise(Status(Code::kClosed, "proxy is closed"));
            std::vector<std::unique_ptr<BufferView>> held;
            std::vector<ByteView> views;
            for (py::handle a : args) {
              held.push_back(std::make_unique<BufferView>(a, "arguments"));
              views.push_back(held.back()->bytes());
            }
            Result<std::unique_ptr<weft::rpc::Stream>> s = Status(Code::kInternal, "");
            {
              py::gil_scoped_release nogil;
              s = self.client->OpenStream(method, views, Options(timeout, true, cancel));
            }
            if (!s.ok()) pyerr::Raise(s.status());
            StreamSlot slot = std::make_shared<std::unique_ptr<weft::rpc::Stream>>(std::move(s).value());
            self.streams.push_back(slot);
            return PyStream{std::move(slot), hold};
          },
          py::arg("method"), py::arg("args"), py::arg("timeout"), py::arg("hold") = false, py::arg("cancel") = nullptr,
          py::keep_alive<0, 1>())
      .def(
          "loan",
          [](PyClient& self, Count n_arg) {
             const size_t n = n_arg.Get("n");
            if (!self.client) pyerr::Raise(Status(Code::kClosed, "proxy is closed"));
            auto h = self.client->Loan(n);
            if (!h.ok()) pyerr::Raise(h.status());
            return WrapBlock(*std::move(h), n, true);
          },
          py::arg("nbytes"))
      .def("hold_stats", [](PyClient& self) { return HoldDict(self.client ? self.client->hold_stats() : weft::rpc::HoldStats{}); })
      .def_property_readonly("shares_pool", [](PyClient& self) { return self.client && self.client->shares_pool(); })
      .def("close", [](PyClient& self) {
        py::gil_scoped_release nogil;
        self.Close();
      });

  py::class_<PyStream>(m, "_RpcStream")
      .def(
          "next",
          [](PyStream& self, Seconds timeout) -> py::object {
            if (!*self.stream) pyerr::Raise(Status(Code::kClosed, "the proxy of this stream is closed"));
            Result<std::optional<weft::rpc::Reply>> r = Status(Code::kInternal, "");
            {
              py::gil_scoped_release nogil;
              r = (*self.stream)->Next(ToDeadline(timeout));
            }
            if (!r.ok()) pyerr::Raise(r.status());
            if (!r->has_value()) return py::none();
            return ReplyObject(**r, self.hold);
          },
          py::arg("timeout"))
      .def("cancel", [](PyStream& self) {
        if (!*self.stream) return;
        py::gil_scoped_release nogil;
        (*self.stream)->Cancel();
      });

  py::class_<PyCancel>(m, "CancelToken", "Cancels the calls it is given to (weft.call(..., cancel=token)); thread-safe.")
      .def(py::init<>())
      .def("cancel", [](PyCancel& self) { self.token->Cancel(); })
      .def_property_readonly("cancelled", [](PyCancel& self) { return self.token->cancelled(); });

  py::class_<PyReceived>(m, "_Received", py::buffer_protocol())
      .def_buffer([](PyReceived& r) {
        return py::buffer_info(r.buffer->data(), 1, py::format_descriptor<uint8_t>::format(), 1,
                               {static_cast<py::ssize_t>(r.buffer->size())}, {1}, /*readonly=*/true);
      })
      .def_property_readonly("nbytes", [](PyReceived& r) { return r.buffer->size(); });
  // A block of a server's pool as a buffer (see PyBlock).
  py::class_<PyBlock>(m, "_Block", py::buffer_protocol(), py::dynamic_attr())
      .def_buffer([](PyBlock& b) {
        return py::buffer_info(const_cast<uint8_t*>(b.held->bytes().data()), 1, "B", 1, {static_cast<py::ssize_t>(b.size)}, {1},
                               !b.writable);
      })
      .def_property_readonly("nbytes", [](PyBlock& b) { return b.size; })
      .def_property_readonly("address", [](PyBlock& b) { return reinterpret_cast<uintptr_t>(b.held->bytes().data()); })
      .def_property_readonly("block", [](PyBlock& b) { return b.held->block(); });

  m.def("_hold_stats", [] { return HoldDict(weft::rpc::ProcessHoldStats()); });
  m.def("_cancelled", [] { return t_call != nullptr && t_call->Cancelled(); });
  m.def("_caller", []() -> py::object {
    if (t_call == nullptr) return py::none();
    const weft::rpc::Caller& c = t_call->caller();
    return py::make_tuple(c.transport, c.identity, c.address);
  });

  // ndarray values: the header of docs/formats/rpc-wire.md, built and checked in one place.
  m.def("_ndarray_header", [](const std::string& dtype, const std::vector<uint64_t>& shape) {
    uint64_t off = 0;
    return py::bytes(weft::rpc::EncodeArrayHeader(dtype, shape, &off));
  });
  // The builtin scalar codecs (docs/formats/rpc-wire.md), for Python's values: what both the
  // remote and the in-process proxies accept, and the bytes, through codec.h (one
  // implementation for C++, C and Python). A value of the wrong type raises TypeError, one out
  // of range ValueError (the caller names the argument); bytes that are not a value of the
  // codec raise weft.Corrupt.
  m.def(
      "_encode_value",
      [](const std::string& codec, py::handle v) -> py::bytes {
        PyObject* o = v.ptr();
        auto type_error = [&](const char* want) {
          throw py::type_error(std::string("expected ") + want + ", got " + Py_TYPE(o)->tp_name);
        };
        if (codec == "i64") {
          // int and what stands for one (numpy's integers: __index__), not float or bool's kin str
          if (PyFloat_Check(o) || !PyIndex_Check(o)) type_error("an integer");
          py::object i = py::reinterpret_steal<py::object>(PyNumber_Index(o));
          if (!i) throw py::error_already_set();
          int overflow = 0;
          const long long x = PyLong_AsLongLongAndOverflow(i.ptr(), &overflow);
          if (overflow != 0) throw py::value_error("out of the range of a 64-bit integer");
          return py::bytes(weft::rpc::EncodeI64(x));
        }
        if (codec == "f64") {
          if (PyUnicode_Check(o) || PyBytes_Check(o) || (!PyFloat_Check(o) && !PyIndex_Check(o) &&
                                                          Py_TYPE(o)->tp_as_number == nullptr)) {
            type_error("a number");
          }
          const double x = PyFloat_AsDouble(o);
          if (x == -1.0 && PyErr_Occurred()) throw py::error_already_set();
          return py::bytes(weft::rpc::EncodeF64(x));
        }
        if (codec == "bool") {
          // True and False, and numpy's bool_; not 0, 1 or other truthy things
          const bool numpy_bool = std::string_view(Py_TYPE(o)->tp_name) == "numpy.bool_" ||
                                  std::string_view(Py_TYPE(o)->tp_name) == "numpy.bool";
          if (!PyBool_Check(o) && !numpy_bool) type_error("a bool");
          return py::bytes(weft::rpc::EncodeBool(PyObject_IsTrue(o) == 1));
        }
        if (codec == "str") {
          if (!PyUnicode_Check(o)) type_error("a str");
          Py_ssize_t n = 0;
          const char* p = PyUnicode_AsUTF8AndSize(o, &n);  // lone surrogates cannot be encoded: ValueError
          if (p == nullptr) throw py::value_error("a str that is not valid UTF-8 (a lone surrogate)");
          return py::bytes(p, static_cast<size_t>(n));
        }
        if (codec == "bytes") {
          if (!PyObject_CheckBuffer(o)) type_error("bytes or a buffer");
          py::buffer_info info = py::reinterpret_borrow<py::buffer>(v).request();
          return py::bytes(static_cast<const char*>(info.ptr), static_cast<size_t>(info.size * info.itemsize));
        }
        if (codec == "none") {
          if (o != Py_None) type_error("None");
          return py::bytes();
        }
        throw py::value_error("not a scalar codec: " + codec);
      },
      py::arg("codec"), py::arg("value"));
  m.def(
      "_decode_value",
      [](const std::string& codec, const py::buffer& data) -> py::object {
        py::buffer_info info = data.request();
        const ByteView b(static_cast<const uint8_t*>(info.ptr), static_cast<size_t>(info.size * info.itemsize));
        if (codec == "i64") return py::int_(pyerr::Get(weft::rpc::DecodeI64(b)));
        if (codec == "f64") return py::float_(pyerr::Get(weft::rpc::DecodeF64(b)));
        if (codec == "bool") return py::bool_(pyerr::Get(weft::rpc::DecodeBool(b)));
        if (codec == "str") {
          pyerr::Check(weft::rpc::CheckUtf8(b));
          return py::str(reinterpret_cast<const char*>(b.data()), b.size());
        }
        if (codec == "bytes") return py::bytes(reinterpret_cast<const char*>(b.data()), b.size());
        if (codec == "none") {
          if (!b.empty()) pyerr::Raise(Status(Code::kCorrupt, "a none value of " + std::to_string(b.size()) + " bytes"));
          return py::none();
        }
        throw py::value_error("not a scalar codec: " + codec);
      },
      py::arg("codec"), py::arg("data"));
  m.def("_ndarray_parse", [](const py::buffer& value) {
    py::buffer_info info = value.request();
    auto a = weft::rpc::DecodeArrayHeader(
        ByteView(static_cast<const uint8_t*>(info.ptr), static_cast<size_t>(info.size * info.itemsize)));
    if (!a.ok()) pyerr::Raise(a.status());
    return py::make_tuple(a->dtype, a->shape, a->data_offset);
  });
}

}  // namespace weft::py_bind
