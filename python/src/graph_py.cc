// weft._native's graph: GraphCore (declares routes) and Port, one declared route seen from
// Python. Port's publish, latest and observe are written against CPython's own API, not
// pybind11's: a value published and observed in Python crosses no conversion layer (the
// object itself is the sample's local value, handed to Python observers as it is), which is
// what lets one publish-to-observe cost a fraction of a microsecond. Bytes are made only when
// something needs them (another language, another process), by the route's encode function;
// a sample that arrives as bytes is decoded by its decode function.
#include <Python.h>
#include <structmember.h>

#include <map>

#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include "errors.h"
#include "weft/graph/consensus.h"
#include "weft/graph/embedded.h"
#include "weft/graph/flow.h"
#include "weft/graph/graph.h"
#include "weft/graph/inspect.h"
#include "weft/graph/join.h"
#include "weft/graph/lazy.h"
#include "weft/graph/placement.h"
#include "weft/graph/query.h"
#include "weft/graph/store.h"
#include "weft/graph/window.h"
#include "weft/graph/write.h"

namespace py = pybind11;

namespace weft::py_bind {
namespace {

const int kPython = 0;  // the language tag of Python objects in samples: &kPython

// Holds the GIL for its scope, taking it only if this thread lacks it (calls that come from
// Python already hold it; the placements' and the clock's threads do not).
class GilIfNeeded {
 public:
  GilIfNeeded() : held_(PyGILState_Check() != 0) {
    if (!held_) state_ = PyGILState_Ensure();
  }
  ~GilIfNeeded() {
    if (!held_) PyGILState_Release(state_);
  }
  GilIfNeeded(const GilIfNeeded&) = delete;
  GilIfNeeded& operator=(const GilIfNeeded&) = delete;

 private:
  bool held_;
  PyGILState_STATE state_{};
};

// Drops a reference, taking the GIL if this thread lacks it.
void DecRef(PyObject* o) {
  if (o == nullptr) return;
  GilIfNeeded gil;
  Py_DECREF(o);
}

// A strong reference that may be dropped on any thread.
struct Ref {
  PyObject* p = nullptr;
  explicit Ref(PyObject* o) : p(o) { Py_XINCREF(o); }
  Ref(const Ref&) = delete;
  ~Ref() { DecRef(p); }
};

// The text of the Python exception being raised, cleared.
std::string FetchErrorText() {
  PyObject *type, *value, *tb;
  PyErr_Fetch(&type, &value, &tb);
  std::string text = "unknown error";
  if (value != nullptr) {
    PyObject* s = PyObject_Str(value);
    if (s != nullptr) {
      const char* c = PyUnicode_AsUTF8(s);
      if (c != nullptr) text = std::string(type != nullptr ? reinterpret_cast<PyTypeObject*>(type)->tp_name : "error") + ": " + c;
      Py_DECREF(s);
    }
  }
  PyErr_Clear();
  Py_XDECREF(type);
  Py_XDECREF(value);
  Py_XDECREF(tb);
  return text;
}

// A route's encode function, for observers that need bytes.
class PyEncoder final : public graph::Encoder {
 public:
  PyEncoder(PyObject* encode, std::string route) : encode_(encode), route_(std::move(route)) {}
  Result<std::string> Encode(const graph::LocalValue& v) const override {
    PyGILState_STATE g = PyGILState_Ensure();
    Result<std::string> out = Status(Code::kInternal, "unset");
    PyObject* b = PyObject_CallOneArg(encode_.p, static_cast<PyObject*>(v.object()));
    if (b == nullptr) {
      out = Status(Code::kInvalidArgument, "encoding a value of route " + route_ + ": " + FetchErrorText());
    } else if (!PyBytes_Check(b)) {
      out = Status(Code::kInternal, "the encoder of route " + route_ + " returned " + Py_TYPE(b)->tp_name + ", not bytes");
    } else {
      out = std::string(PyBytes_AS_STRING(b), static_cast<size_t>(PyBytes_GET_SIZE(b)));
    }
    Py_XDECREF(b);
    PyGILState_Release(g);
    return out;
  }

 private:
  Ref encode_;
  std::string route_;
};

// ---- Envelope: a struct sequence (a named tuple) ----
PyTypeObject* g_envelope_type = nullptr;
PyStructSequence_Field kEnvelopeFields[] = {
    {"seq", "the route's count of values, from 1"},
    {"id", "this value's id"},
    {"producer", "who published it (0: not said)"},
    {"event_ns", "when it happened, UNIX ns"},
    {"ingest_ns", "when the graph took it, UNIX ns"},
    {"trace", "the flow it belongs to"},
    {"causality", "the id of the value that caused it (0: none)"},
    {"correlation", "the user's own id (0: none)"},
    {"taints", "its Taint bits: 1 nondeterministic, 2 sensitive, 4 repaired"},
    {nullptr, nullptr}};
// Eight fields as a tuple (as before taints), taints by name.
PyStructSequence_Desc kEnvelopeDesc = {"weft.graph.Envelope", "What the graph knows of a value besides the value.",
                                       kEnvelopeFields, 8};

PyObject* EnvelopeOf(const graph::Envelope& e) {
  PyObject* t = PyStructSequence_New(g_envelope_type);
  if (t == nullptr) return nullptr;
  const uint64_t u[] = {e.seq, e.id, e.producer};
  for (int i = 0; i < 3; ++i) PyStructSequence_SET_ITEM(t, i, PyLong_FromUnsignedLongLong(u[i]));
  PyStructSequence_SET_ITEM(t, 3, PyLong_FromLongLong(e.event_ns));
  PyStructSequence_SET_ITEM(t, 4, PyLong_FromLongLong(e.ingest_ns));
  PyStructSequence_SET_ITEM(t, 5, PyLong_FromUnsignedLongLong(e.trace));
  PyStructSequence_SET_ITEM(t, 6, PyLong_FromUnsignedLongLong(e.causality));
  PyStructSequence_SET_ITEM(t, 7, PyLong_FromUnsignedLongLong(e.correlation));
  PyStructSequence_SET_ITEM(t, 8, PyLong_FromUnsignedLong(e.taints));
  return t;
}

bool EnvelopeFrom(PyObject* o, graph::Envelope* e) {
  if (!PyObject_TypeCheck(o, g_envelope_type)) {
    PyErr_SetString(PyExc_TypeError, "cause= takes an Envelope (from latest(..., envelope=True) or an observer)");
    return false;
  }
  e->id = PyLong_AsUnsignedLongLong(PyStructSequence_GET_ITEM(o, 1));
  e->trace = PyLong_AsUnsignedLongLong(PyStructSequence_GET_ITEM(o, 5));
  e->causality = PyLong_AsUnsignedLongLong(PyStructSequence_GET_ITEM(o, 6));
  e->correlation = PyLong_AsUnsignedLongLong(PyStructSequence_GET_ITEM(o, 7));
  e->taints = static_cast<uint8_t>(PyLong_AsUnsignedLong(PyStructSequence_GET_ITEM(o, 8)) & graph::kAllTaints);
  return !PyErr_Occurred();
}

// ---- errors raised by observers ----
// The first exception an observer raised while this thread published from Python: raised from
// publish once every observer ran. Outside a Python publish it is reported as unraisable.
thread_local int t_publishing = 0;
thread_local PyObject *t_err_type = nullptr, *t_err_value = nullptr, *t_err_tb = nullptr;

void KeepObserverError() {
  if (t_publishing == 0) {
    PyErr_WriteUnraisable(nullptr);
    return;
  }
  if (t_err_type != nullptr) {
    PyErr_Clear();  // only the first is raised
    return;
  }
  PyErr_Fetch(&t_err_type, &t_err_value, &t_err_tb);
}

bool RestoreObserverError() {
  if (t_err_type == nullptr) return false;
  PyErr_Restore(t_err_type, t_err_value, t_err_tb);
  t_err_type = t_err_value = t_err_tb = nullptr;
  return true;
}

// ---- Port ----
PyTypeObject* g_port_type = nullptr;
struct Port {
  PyObject_HEAD
  graph::Route route;
  PyObject* accept;    // a type or tuple of types every value must be (None: any)
  PyObject* validate;  // value -> None or raises, for what a type cannot say (None: nothing)
  PyObject* decode;    // bytes -> value (None: the bytes themselves)
  std::shared_ptr<PyEncoder> encoder;
  std::map<uint64_t, graph::Subscription>* subs;
  uint64_t next_token;
  bool views;  // its decoder takes a buffer (ndarray schemas): values read in place are not copied
};

// ---- SampleBuffer: a sample's bytes read in place, as a read-only buffer that holds it ----
PyTypeObject* g_sample_buffer_type = nullptr;
struct SampleBuffer {
  PyObject_HEAD
  graph::SampleRef* sample;
  ByteView bytes;
};

int SampleBufferGet(PyObject* self, Py_buffer* view, int flags) {
  auto* b = reinterpret_cast<SampleBuffer*>(self);
  return PyBuffer_FillInfo(view, self, const_cast<uint8_t*>(b->bytes.data()), static_cast<Py_ssize_t>(b->bytes.size()), 1, flags);
}

void SampleBufferDealloc(PyObject* self) {
  auto* b = reinterpret_cast<SampleBuffer*>(self);
  delete b->sample;  // may give a shared-memory block back
  PyTypeObject* tp = Py_TYPE(self);
  tp->tp_free(self);
  Py_DECREF(tp);
}

PyType_Slot kSampleBufferSlots[] = {{Py_tp_dealloc, reinterpret_cast<void*>(SampleBufferDealloc)},
                                    {Py_bf_getbuffer, reinterpret_cast<void*>(SampleBufferGet)},
                                    {Py_tp_doc, const_cast<char*>("A value read in place in shared memory.")},
                                    {0, nullptr}};
PyType_Spec kSampleBufferSpec = {"weft._native.SampleBuffer", sizeof(SampleBuffer), 0,
                                 Py_TPFLAGS_DEFAULT | Py_TPFLAGS_DISALLOW_INSTANTIATION, kSampleBufferSlots};

// A memoryview of the sample's bytes that keeps the sample (and its block) alive.
PyObject* ViewOf(const graph::SampleRef& s, ByteView bytes) {
  PyObject* o = PyType_GenericAlloc(g_sample_buffer_type, 0);
  if (o == nullptr) return nullptr;
  auto* b = reinterpret_cast<SampleBuffer*>(o);
  b->sample = new graph::SampleRef(s);
  b->bytes = bytes;
  PyObject* mv = PyMemoryView_FromObject(o);
  Py_DECREF(o);
  return mv;
}

// The Python value of a sample: the object itself if Python published it, else its bytes decoded
// (given as a memoryview of them in place, without a copy, to a decoder that takes buffers).
PyObject* ValueOf(const graph::SampleRef& s, PyObject* decode, bool views = false) {
  const graph::LocalValue& l = s->local();
  if (l.language() == &kPython) {
    PyObject* o = static_cast<PyObject*>(l.object());
    Py_INCREF(o);
    return o;
  }
  auto b = s->bytes();
  if (!b.ok()) {
    pyerr::SetError(b.status());
    return nullptr;
  }
  PyObject* raw = views && s->in_place() && decode != Py_None
                      ? ViewOf(s, *b)
                      : PyBytes_FromStringAndSize(reinterpret_cast<const char*>(b->data()), static_cast<Py_ssize_t>(b->size()));
  if (raw == nullptr || decode == Py_None) return raw;
  PyObject* v = PyObject_CallOneArg(decode, raw);
  Py_DECREF(raw);
  return v;
}

void PortDealloc(PyObject* self) {
  Port* p = reinterpret_cast<Port*>(self);
  if (p->subs != nullptr) {
    Py_BEGIN_ALLOW_THREADS  // a cancel may wait for an observer running on another thread
    delete p->subs;
    Py_END_ALLOW_THREADS
  }
  p->route.~Route();
  p->encoder.~shared_ptr();
  Py_XDECREF(p->decode);
  Py_XDECREF(p->accept);
  Py_XDECREF(p->validate);
  PyTypeObject* tp = Py_TYPE(self);
  tp->tp_free(self);
  Py_DECREF(tp);
}

// Whether `value` is one of the route's values (else the error is set).
bool Accepts(Port* p, PyObject* value) {
  if (p->accept != Py_None) {
    int ok = 0;
    if (PyType_Check(p->accept)) {
      ok = PyObject_TypeCheck(value, reinterpret_cast<PyTypeObject*>(p->accept));
    } else {
      // A tuple of types: the exact type first (the common case), then isinstance.
      const Py_ssize_t n = PyTuple_GET_SIZE(p->accept);
      for (Py_ssize_t i = 0; i < n && ok == 0; ++i) ok = PyTuple_GET_ITEM(p->accept, i) == reinterpret_cast<PyObject*>(Py_TYPE(value));
      if (ok == 0) ok = PyObject_IsInstance(value, p->accept);
    }
    if (ok < 0) return false;
    if (ok == 0) {
      pyerr::SetError(Status(Code::kInvalidArgument, "route " + p->route.name().ToString() + " carries '" +
                                                         p->route.schema().text() + "': a value of type " +
                                                         Py_TYPE(value)->tp_name + " is not one of its values"));
      return false;
    }
  }
  if (p->validate != Py_None) {
    PyObject* r = PyObject_CallOneArg(p->validate, value);
    if (r == nullptr) return false;
    Py_DECREF(r);
  }
  return true;
}

// Returns None, or with `want_id` the id the value was given (0 if refused before it had one).
PyObject* PublishWith(Port* p, PyObject* value, graph::Meta meta, bool want_id = false) {
  uint64_t id = 0;
  if (want_id) meta.published_id = &id;
  if (!Accepts(p, value)) return nullptr;
  Py_INCREF(value);
  graph::LocalValue local(value, &kPython, [](void* o) { DecRef(static_cast<PyObject*>(o)); });
  // An observer error of an enclosing publish (this one runs inside an observer) waits aside.
  PyObject *outer_type = t_err_type, *outer_value = t_err_value, *outer_tb = t_err_tb;
  t_err_type = t_err_value = t_err_tb = nullptr;
  ++t_publishing;
  Status st = p->route.PublishLocal(std::move(local), p->encoder, meta);
  --t_publishing;
  const bool failed = RestoreObserverError();
  t_err_type = outer_type;
  t_err_value = outer_value;
  t_err_tb = outer_tb;
  if (failed) return nullptr;
  if (!st.ok()) {
    pyerr::SetError(st);
    return nullptr;
  }
  if (want_id) return PyLong_FromUnsignedLongLong(id);
  Py_RETURN_NONE;
}

PyObject* PortPublish(PyObject* self, PyObject* value) { return PublishWith(reinterpret_cast<Port*>(self), value, {}); }

// publish_with(value, producer=0, event_ns=0, correlation=0, cause=None, taints=0) -> the id it was given
PyObject* PortPublishWith(PyObject* self, PyObject* args, PyObject* kwargs) {
  static const char* kw[] = {"value", "producer", "event_ns", "correlation", "cause", "taints", nullptr};
  PyObject* value = nullptr;
  PyObject* cause = Py_None;
  unsigned long long producer = 0, correlation = 0;
  long long event_ns = 0;
  unsigned int taints = 0;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|KLKOI", const_cast<char**>(kw), &value, &producer, &event_ns,
                                   &correlation, &cause, &taints)) {
    return nullptr;
  }
  if ((taints & ~graph::kAllTaints) != 0) {
    PyErr_SetString(PyExc_ValueError, "taints are Taint bits: 1 nondeterministic, 2 sensitive, 4 repaired");
    return nullptr;
  }
  graph::Meta meta{.producer = producer, .event_ns = event_ns, .correlation = correlation,
                   .taints = static_cast<uint8_t>(taints)};
  graph::Envelope c;
  if (cause != Py_None) {
    if (!EnvelopeFrom(cause, &c)) return nullptr;
    meta.cause = &c;
  }
  return PublishWith(reinterpret_cast<Port*>(self), value, meta, /*want_id=*/true);
}

PyObject* PortLatest(PyObject* self, PyObject*) {
  Port* p = reinterpret_cast<Port*>(self);
  graph::SampleRef s = p->route.Latest();
  if (s == nullptr) Py_RETURN_NONE;
  return ValueOf(s, p->decode, p->views);
}

// (value, Envelope) of the latest, or None.
PyObject* PortLatestEnvelope(PyObject* self, PyObject*) {
  Port* p = reinterpret_cast<Port*>(self);
  graph::SampleRef s = p->route.Latest();
  if (s == nullptr) Py_RETURN_NONE;
  PyObject* v = ValueOf(s, p->decode, p->views);
  if (v == nullptr) return nullptr;
  PyObject* e = EnvelopeOf(s->envelope());
  if (e == nullptr) {
    Py_DECREF(v);
    return nullptr;
  }
  PyObject* t = PyTuple_Pack(2, v, e);
  Py_DECREF(v);
  Py_DECREF(e);
  return t;
}

// observe(fn, envelope=False) -> token: fn(value) or fn(value, envelope) for each value.
PyObject* PortObserve(PyObject* self, PyObject* args, PyObject* kwargs) {
  static const char* kw[] = {"fn", "envelope", "replay", nullptr};
  PyObject* fn = nullptr;
  int with_envelope = 0, replay = 0;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|pp", const_cast<char**>(kw), &fn, &with_envelope, &replay)) return nullptr;
  if (!PyCallable_Check(fn)) {
    PyErr_SetString(PyExc_TypeError, "observe takes a callable");
    return nullptr;
  }
  Port* p = reinterpret_cast<Port*>(self);
  auto callable = std::make_shared<Ref>(fn);
  auto decode = std::make_shared<Ref>(p->decode);
  const bool env = with_envelope != 0;
  const bool views = p->views;
  ++t_publishing;  // errors of the replayed calls are raised from observe
  graph::Subscription sub = p->route.Observe([callable, decode, env, views](const graph::SampleRef& s) {
    GilIfNeeded gil;
    PyObject* v = ValueOf(s, decode->p, views);
    if (v == nullptr) {
      KeepObserverError();
    } else {
      PyObject* argv[2] = {v, nullptr};
      size_t n = 1;
      if (env) argv[n++] = EnvelopeOf(s->envelope());
      PyObject* r = (env && argv[1] == nullptr) ? nullptr : PyObject_Vectorcall(callable->p, argv, n, nullptr);
      if (r == nullptr) {
        KeepObserverError();
      } else {
        Py_DECREF(r);
      }
      Py_DECREF(v);
      Py_XDECREF(argv[1]);
    }
  }, replay != 0);
  --t_publishing;
  if (RestoreObserverError()) return nullptr;  // a replayed call failed: not observing (sub ends here)
  const uint64_t token = p->next_token++;
  p->subs->emplace(token, std::move(sub));
  return PyLong_FromUnsignedLongLong(token);
}

PyObject* PortUnobserve(PyObject* self, PyObject* arg) {
  Port* p = reinterpret_cast<Port*>(self);
  const unsigned long long token = PyLong_AsUnsignedLongLong(arg);
  if (PyErr_Occurred()) return nullptr;
  auto it = p->subs->find(token);
  if (it == p->subs->end()) Py_RETURN_FALSE;
  graph::Subscription sub = std::move(it->second);
  p->subs->erase(it);
  Py_BEGIN_ALLOW_THREADS  // waits for a call running on another thread, which needs the GIL
  sub.Cancel();
  Py_END_ALLOW_THREADS
  Py_RETURN_TRUE;
}

// set_retention(keep_last, max_age_ms, durable_path)
PyObject* PortSetRetention(PyObject* self, PyObject* args) {
  unsigned long long keep_last = 0;
  long long max_age_ms = 0;
  const char* path = "";
  if (!PyArg_ParseTuple(args, "KLs", &keep_last, &max_age_ms, &path)) return nullptr;
  Port* p = reinterpret_cast<Port*>(self);
  Status st;
  graph::Retention r{.keep_last = static_cast<size_t>(keep_last), .max_age_ms = max_age_ms, .durable_path = path};
  Py_BEGIN_ALLOW_THREADS  // reading a log back
  st = p->route.SetRetention(r);
  Py_END_ALLOW_THREADS
  if (!st.ok()) {
    pyerr::SetError(st);
    return nullptr;
  }
  Py_RETURN_NONE;
}

PyObject* PortMarkEphemeral(PyObject* self, PyObject*) {
  Status st = reinterpret_cast<Port*>(self)->route.MarkEphemeral();
  if (!st.ok()) {
    pyerr::SetError(st);
    return nullptr;
  }
  Py_RETURN_NONE;
}

// history(envelope=False) -> [value] or [(value, Envelope)], oldest first.
PyObject* PortHistory(PyObject* self, PyObject* args) {
  int with_envelope = 0;
  if (!PyArg_ParseTuple(args, "|p", &with_envelope)) return nullptr;
  Port* p = reinterpret_cast<Port*>(self);
  std::vector<graph::SampleRef> h = p->route.History();
  PyObject* out = PyList_New(static_cast<Py_ssize_t>(h.size()));
  if (out == nullptr) return nullptr;
  for (size_t i = 0; i < h.size(); ++i) {
    PyObject* v = ValueOf(h[i], p->decode, p->views);
    if (v != nullptr && with_envelope) {
      PyObject* e = EnvelopeOf(h[i]->envelope());
      PyObject* t = e != nullptr ? PyTuple_Pack(2, v, e) : nullptr;
      Py_DECREF(v);
      Py_XDECREF(e);
      v = t;
    }
    if (v == nullptr) {
      Py_DECREF(out);
      return nullptr;
    }
    PyList_SET_ITEM(out, static_cast<Py_ssize_t>(i), v);
  }
  return out;
}

// add_edge(to_port, kind, name) -> id
PyObject* PortAddEdge(PyObject* self, PyObject* args) {
  PyObject* to = nullptr;
  const char* kind = "";
  const char* name = "";
  if (!PyArg_ParseTuple(args, "O!ss", g_port_type, &to, &kind, &name)) return nullptr;
  const uint64_t id = reinterpret_cast<Port*>(self)->route.AddEdge(reinterpret_cast<Port*>(to)->route, kind, name);
  return PyLong_FromUnsignedLongLong(id);
}

PyObject* PortRemoveEdge(PyObject* self, PyObject* arg) {
  const unsigned long long id = PyLong_AsUnsignedLongLong(arg);
  if (PyErr_Occurred()) return nullptr;
  reinterpret_cast<Port*>(self)->route.RemoveEdge(id);
  Py_RETURN_NONE;
}

PyObject* PortPublished(PyObject* self, void*) {
  return PyLong_FromUnsignedLongLong(reinterpret_cast<Port*>(self)->route.published());
}
PyObject* PortObservers(PyObject* self, void*) {
  return PyLong_FromSize_t(reinterpret_cast<Port*>(self)->route.observers());
}
PyObject* PortName(PyObject* self, void*) {
  return PyUnicode_FromString(reinterpret_cast<Port*>(self)->route.name().ToString().c_str());
}
PyObject* PortSchema(PyObject* self, void*) {
  return PyUnicode_FromString(reinterpret_cast<Port*>(self)->route.schema().text().c_str());
}

PyMethodDef kPortMethods[] = {
    {"publish", PortPublish, METH_O, "publish(value): the value to every observer, and the latest."},
    {"publish_with", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(PortPublishWith)), METH_VARARGS | METH_KEYWORDS,
     "publish_with(value, producer=0, event_ns=0, correlation=0, cause=None, taints=0) -> the id it was given"},
    {"latest", PortLatest, METH_NOARGS, "latest() -> the newest value, or None."},
    {"latest_envelope", PortLatestEnvelope, METH_NOARGS, "latest_envelope() -> (value, Envelope), or None."},
    {"observe", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(PortObserve)), METH_VARARGS | METH_KEYWORDS,
     "observe(fn, envelope=False, replay=False) -> token"},
    {"unobserve", PortUnobserve, METH_O, "unobserve(token) -> whether it was observing"},
    {"set_retention", PortSetRetention, METH_VARARGS, "set_retention(keep_last, max_age_ms, durable_path)"},
    {"mark_ephemeral", PortMarkEphemeral, METH_NOARGS, "mark_ephemeral(): never retained"},
    {"history", PortHistory, METH_VARARGS, "history(envelope=False) -> retained values, oldest first"},
    {"add_edge", PortAddEdge, METH_VARARGS, "add_edge(to, kind, name) -> id: an edge for inspection"},
    {"remove_edge", PortRemoveEdge, METH_O, "remove_edge(id)"},
    {nullptr, nullptr, 0, nullptr}};

PyGetSetDef kPortGetSet[] = {
    {"published", PortPublished, nullptr, "values published so far", nullptr},
    {"observers", PortObservers, nullptr, "observers now", nullptr},
    {"name", PortName, nullptr, "the route's name", nullptr},
    {"schema", PortSchema, nullptr, "the route's schema text", nullptr},
    {nullptr, nullptr, nullptr, nullptr, nullptr}};

PyType_Slot kPortSlots[] = {{Py_tp_dealloc, reinterpret_cast<void*>(PortDealloc)},
                            {Py_tp_methods, kPortMethods},
                            {Py_tp_getset, kPortGetSet},
                            {Py_tp_doc, const_cast<char*>("A declared route of a graph (weft.graph uses it).")},
                            {0, nullptr}};
PyType_Spec kPortSpec = {"weft._native.Port", sizeof(Port), 0, Py_TPFLAGS_DEFAULT | Py_TPFLAGS_DISALLOW_INSTANTIATION, kPortSlots};

py::object MakePort(graph::Route route, py::object encode, py::object decode, py::object accept, py::object validate) {
  if (!accept.is_none() && !PyType_Check(accept.ptr()) && !PyTuple_Check(accept.ptr())) {
    throw py::type_error("accept is None, a type or a tuple of types");
  }
  PyObject* o = PyType_GenericAlloc(g_port_type, 0);
  if (o == nullptr) throw py::error_already_set();
  Port* p = reinterpret_cast<Port*>(o);
  new (&p->route) graph::Route(std::move(route));
  new (&p->encoder) std::shared_ptr<PyEncoder>(std::make_shared<PyEncoder>(encode.ptr(), p->route.name().ToString()));
  p->decode = decode.release().ptr();
  p->accept = accept.release().ptr();
  p->validate = validate.release().ptr();
  p->subs = new std::map<uint64_t, graph::Subscription>();
  p->next_token = 1;
  p->views = p->route.schema().text().rfind("ndarray ", 0) == 0;
  return py::reinterpret_steal<py::object>(o);
}

Port* PortOf(const py::handle& o, const char* what) {
  if (!PyObject_TypeCheck(o.ptr(), g_port_type)) throw py::type_error(std::string(what) + " is a route's port");
  return reinterpret_cast<Port*>(o.ptr());
}

std::string KeyOf(const py::handle& k) {
  if (py::isinstance<py::bytes>(k)) return k.cast<std::string>();
  if (py::isinstance<py::str>(k)) return k.cast<std::string>();  // UTF-8
  throw py::type_error("a key is bytes or str");
}

// The stores (weft/graph/store.h): bytes in and out; typing is weft.graph's.
void BindStores(py::module_& m) {
  py::class_<graph::Keyspace>(m, "Keyspace", "An ordered byte keyspace: a prefix of a FileStore.")
      .def("get",
           [](const graph::Keyspace& ks, py::handle key) -> py::object {
             auto v = pyerr::Get(ks.Get(KeyOf(key)));
             if (!v.has_value()) return py::none();
             return py::bytes(*v);
           })
      .def("set", [](const graph::Keyspace& ks, py::handle key, py::handle value) {
             const std::string k = KeyOf(key), v = KeyOf(value);
             Status st = [&] {
               py::gil_scoped_release unlocked;  // a synced write waits on the disk
               return ks.Set(k, v);
             }();
             pyerr::Check(st);
           })
      .def("clear", [](const graph::Keyspace& ks, py::handle key) { pyerr::Check(ks.Clear(KeyOf(key))); })
      .def("clear_range", [](const graph::Keyspace& ks, py::handle begin, py::handle end) {
             pyerr::Check(ks.ClearRange(KeyOf(begin), KeyOf(end)));
           })
      .def("range",
           [](const graph::Keyspace& ks, py::handle begin, py::handle end, size_t limit) {
             py::list out;
             for (const graph::KeyValue& kv : pyerr::Get(ks.Range(KeyOf(begin), KeyOf(end), limit))) {
               out.append(py::make_tuple(py::bytes(kv.key), py::bytes(kv.value)));
             }
             return out;
           },
           py::arg("begin") = py::bytes(""), py::arg("end") = py::bytes(""), py::arg("limit") = SIZE_MAX)
      .def("commit",
           [](const graph::Keyspace& ks, py::list ops) {
             graph::WriteBatch b;
             for (py::handle op : ops) {
               auto t = op.cast<py::tuple>();
               const std::string kind = t[0].cast<std::string>();
               if (kind == "set" && t.size() == 3) {
                 b.Set(KeyOf(t[1]), KeyOf(t[2]));
               } else if (kind == "clear" && t.size() == 2) {
                 b.Clear(KeyOf(t[1]));
               } else if (kind == "clear_range" && t.size() == 3) {
                 b.ClearRange(KeyOf(t[1]), KeyOf(t[2]));
               } else {
                 throw py::value_error("a write is ('set', key, value), ('clear', key) or ('clear_range', begin, end)");
               }
             }
             pyerr::Check(ks.Commit(b));
           })
      .def("prefix", [](const graph::Keyspace& ks, py::handle more) { return ks.Prefix(KeyOf(more)); })
      .def_property_readonly("key_prefix", [](const graph::Keyspace& ks) { return py::bytes(ks.prefix()); });

  py::class_<graph::FileStore, std::shared_ptr<graph::FileStore>>(m, "FileStore", "Ordered byte keyspaces on local files.")
      .def(py::init([](const std::string& root, bool fsync, uint64_t compact_above_bytes) {
             return pyerr::Get(graph::FileStore::Open(root, {.fsync = fsync, .compact_above_bytes = compact_above_bytes}));
           }),
           py::arg("root"), py::arg("fsync") = true, py::arg("compact_above_bytes") = uint64_t{4} << 20)
      .def("prefix", [](graph::FileStore& s, py::handle p) { return s.Prefix(KeyOf(p)); })
      .def("compact", [](graph::FileStore& s) { pyerr::Check(s.Compact()); })
      .def("stats",
           [](graph::FileStore& s) {
             graph::FileStoreStats st = s.stats();
             py::dict d;
             d["keys"] = st.keys;
             d["live_bytes"] = st.live_bytes;
             d["journal_bytes"] = st.journal_bytes;
             d["generation"] = st.generation;
             return d;
           })
      .def_property_readonly("root", &graph::FileStore::root);

  py::class_<graph::EventLog, std::shared_ptr<graph::EventLog>>(m, "EventLog", "Typed appends on a Weft log.")
      .def(py::init([](const std::string& name, const graph::Keyspace& ks, const std::string& schema) {
             return pyerr::Get(graph::EventLog::Open(name, ks, pyerr::Get(graph::Schema::FromText(schema))));
           }))
      .def("append",
           [](graph::EventLog& e, py::bytes value) {
             const std::string v = value;
             auto r = [&] {
               py::gil_scoped_release unlocked;
               return e.Append(AsBytes(v));
             }();
             return pyerr::Get(std::move(r));
           })
      .def("read",
           [](graph::EventLog& e, uint64_t from_seq, size_t limit) {
             py::list out;
             for (const graph::StoredEvent& ev : pyerr::Get(e.Read(from_seq, limit))) {
               out.append(py::make_tuple(ev.seq, ev.timestamp_ns, py::bytes(ev.value)));
             }
             return out;
           })
      .def("commit", [](graph::EventLog& e, const std::string& reader, uint64_t next) { pyerr::Check(e.Commit(reader, next)); })
      .def("committed", [](graph::EventLog& e, const std::string& reader) { return pyerr::Get(e.Committed(reader)); })
      .def_property_readonly("next_seq", &graph::EventLog::next_seq);

  py::class_<graph::SnapshotStore, std::shared_ptr<graph::SnapshotStore>>(m, "SnapshotStore", "A typed latest value.")
      .def(py::init([](const std::string& name, const graph::Keyspace& ks, const std::string& schema) {
             return pyerr::Get(graph::SnapshotStore::Open(name, ks, pyerr::Get(graph::Schema::FromText(schema))));
           }))
      .def("set", [](graph::SnapshotStore& s, py::bytes value) { pyerr::Check(s.Set(AsBytes(std::string(value)))); })
      .def("get",
           [](graph::SnapshotStore& s) -> py::object {
             auto v = pyerr::Get(s.Get());
             if (!v.has_value()) return py::none();
             return py::bytes(*v);
           })
      .def("clear", [](graph::SnapshotStore& s) { pyerr::Check(s.Clear()); });

  py::class_<graph::Subscription>(m, "StoreSubscription", "Remembering a route, until cancel().")
      .def("cancel", &graph::Subscription::Cancel)
      .def_property_readonly("active", &graph::Subscription::active);
  py::class_<graph::Memory, std::shared_ptr<graph::Memory>>(m, "Memory", "A route's latest value kept on disk.")
      .def(py::init([](const std::string& path, bool fsync) { return pyerr::Get(graph::Memory::Open(path, {.fsync = fsync})); }),
           py::arg("path"), py::arg("fsync") = true)
      .def("remember", [](graph::Memory& mem, py::handle port) { return mem.Remember(PortOf(port, "the route")->route); })
      .def("resume", [](graph::Memory& mem, py::handle port) { return pyerr::Get(mem.Resume(PortOf(port, "the route")->route)); })
      .def_property_readonly("write_errors", &graph::Memory::write_errors);
}

// A window as the tuple weft.graph makes its WindowResult from: (partition id, start_ns,
// end_ns, count, sum, min, max, percentiles, values or None, update, taints, input ids or None).
py::tuple WindowTuple(const graph::WindowResult& r) {
  py::object values = py::none(), inputs = py::none();
  if (r.values != nullptr) values = py::cast(*r.values);
  if (r.inputs != nullptr) inputs = py::tuple(py::cast(*r.inputs));
  return py::make_tuple(r.partition, r.start_ns, r.end_ns, r.count, r.sum, r.min, r.max, py::tuple(py::cast(r.percentiles)),
                        values, r.update, r.taints, inputs);
}

py::dict WindowSnapshotDict(const graph::WindowSnapshot& s) {
  py::dict d;
  d["watermark_ns"] = s.watermark_ns;
  d["partitions"] = s.partitions;
  d["open_windows"] = s.open_windows;
  d["added"] = s.added;
  d["emitted"] = s.emitted;
  d["updates"] = s.updates;
  d["late_dropped"] = s.late_dropped;
  d["late_sided"] = s.late_sided;
  d["idle"] = s.idle;
  return d;
}

// Runs a Python callback from inside a window (C++ that does not expect exceptions): an exception
// is kept as an observer's error, raised from the publish that led here.
template <typename F>
void Guarded(F&& f) {
  try {
    f();
  } catch (py::error_already_set& e) {
    e.restore();
    KeepObserverError();
  }
}

// Feeds a route's values to windows without a Python call of its own per value: partition_by
// and value (or None) are called here, keys become ids through `ids` (dict) and `keys` (list),
// the event time is the envelope's. Returns the observation's token (Port.unobserve).
template <typename W>
uint64_t FeedWindows(Port* p, W* windows, py::object keep_alive, py::object partition_by, py::object value, py::dict ids,
                     py::list keys) {
  auto hold = std::make_shared<Ref>(keep_alive.ptr());
  auto pb = std::make_shared<Ref>(partition_by.ptr());
  auto val = std::make_shared<Ref>(value.ptr());
  auto id_map = std::make_shared<Ref>(ids.ptr());
  auto key_list = std::make_shared<Ref>(keys.ptr());
  auto decode = std::make_shared<Ref>(p->decode);
  const bool views = p->views;
  graph::Subscription sub = p->route.Observe([=](const graph::SampleRef& s) {
    GilIfNeeded gil;
    (void)hold;
    PyObject* v = ValueOf(s, decode->p, views);
    uint64_t pid = 0;
    double x = 0;
    bool ok = v != nullptr;
    if (ok && pb->p != Py_None) {
      PyObject* key = PyObject_CallOneArg(pb->p, v);
      ok = key != nullptr;
      if (ok) {
        PyObject* id = PyDict_GetItemWithError(id_map->p, key);  // borrowed
        if (id != nullptr) {
          pid = PyLong_AsUnsignedLongLong(id);
        } else if (!PyErr_Occurred()) {
          pid = static_cast<uint64_t>(PyList_GET_SIZE(key_list->p));
          PyObject* n = PyLong_FromUnsignedLongLong(pid);
          ok = n != nullptr && PyDict_SetItem(id_map->p, key, n) == 0 && PyList_Append(key_list->p, key) == 0;
          Py_XDECREF(n);
        } else {
          ok = false;
        }
        Py_DECREF(key);
      }
    }
    if (ok) {
      PyObject* num = val->p != Py_None ? PyObject_CallOneArg(val->p, v) : (Py_INCREF(v), v);
      ok = num != nullptr;
      if (ok) {
        x = PyFloat_AsDouble(num);
        ok = !(x == -1.0 && PyErr_Occurred());
        Py_DECREF(num);
      }
    }
    Py_XDECREF(v);
    if (ok) {
      windows->Add(pid, s->envelope().event_ns, x, s->envelope().taints, s->envelope().id);
    } else {
      KeepObserverError();
    }
  });
  const uint64_t token = p->next_token++;
  p->subs->emplace(token, std::move(sub));
  return token;
}

py::dict PayloadDict(const graph::PayloadStats& st) {
  py::dict d;
  d["name"] = st.name;
  d["keep"] = st.keep;
  d["kept"] = st.kept;
  d["published"] = st.published;
  d["opened"] = st.opened;
  d["missed"] = st.missed;
  d["never_opened"] = st.never_opened;
  return d;
}

graph::WriteBindingOptions WriteOptions(uint32_t max_attempts, int64_t ack_timeout_ns, int64_t backoff_ns, double multiplier,
                                        int64_t max_backoff_ns, int64_t coherence_deadline_ns, int64_t min_interval_ns,
                                        py::object matches, py::object clock) {
  graph::WriteBindingOptions o;
  o.retry = {.max_attempts = max_attempts, .ack_timeout_ns = ack_timeout_ns, .backoff_ns = backoff_ns,
             .multiplier = multiplier, .max_backoff_ns = max_backoff_ns};
  o.coherence_deadline_ns = coherence_deadline_ns;
  o.min_interval_ns = min_interval_ns;
  if (!clock.is_none()) o.clock = clock.cast<graph::ManualClock*>();
  if (!matches.is_none()) {
    // Called with the two values' bytes, outside the binding's lock, on a thread that may lack
    // the GIL; an exception is reported as unraisable and counts as no match.
    auto fn = std::make_shared<Ref>(matches.ptr());
    o.matches = [fn](const graph::Sample& d, const graph::Sample& r) {
      auto a = d.bytes();
      auto b = r.bytes();
      if (!a.ok() || !b.ok()) return false;
      GilIfNeeded gil;
      bool yes = false;
      PyObject* x = PyBytes_FromStringAndSize(reinterpret_cast<const char*>(a->data()), static_cast<Py_ssize_t>(a->size()));
      PyObject* y = PyBytes_FromStringAndSize(reinterpret_cast<const char*>(b->data()), static_cast<Py_ssize_t>(b->size()));
      PyObject* res = (x != nullptr && y != nullptr) ? PyObject_CallFunctionObjArgs(fn->p, x, y, nullptr) : nullptr;
      if (res == nullptr) {
        PyErr_WriteUnraisable(fn->p);
      } else {
        const int t = PyObject_IsTrue(res);
        if (t < 0) PyErr_WriteUnraisable(fn->p);
        yes = t > 0;
        Py_DECREF(res);
      }
      Py_XDECREF(x);
      Py_XDECREF(y);
      return yes;
    };
  }
  return o;
}

// Write bindings, lifecycles and control loops (weft/graph/write.h); weft.graph wraps them.
void BindWrites(py::module_& m) {
  py::class_<graph::WriteBinding, std::shared_ptr<graph::WriteBinding>>(m, "WriteBinding",
                                                                        "Request, desired, reported, effective, reconciled.")
      .def(py::init([](std::shared_ptr<graph::Graph> g, const std::string& owner, const std::string& family,
                       const std::string& stream, const std::string& schema, uint32_t max_attempts, int64_t ack_timeout_ns,
                       int64_t backoff_ns, double multiplier, int64_t max_backoff_ns, int64_t coherence_deadline_ns,
                       py::object guard, int64_t min_interval_ns, py::object matches, py::object clock) {
             graph::WriteBindingOptions o = WriteOptions(max_attempts, ack_timeout_ns, backoff_ns, multiplier, max_backoff_ns,
                                                         coherence_deadline_ns, min_interval_ns, matches, clock);
             graph::Route gr;
             if (!guard.is_none()) {
               gr = PortOf(guard, "the guard")->route;
               o.guard = &gr;
             }
             const graph::Schema sc = pyerr::Get(graph::Schema::FromText(schema));
             return pyerr::Get(graph::WriteBinding::Create(*g, {.owner = owner, .family = family, .stream = stream}, sc, o));
           }),
           py::arg("graph"), py::arg("owner"), py::arg("family"), py::arg("stream"), py::arg("schema"),
           py::arg("max_attempts"), py::arg("ack_timeout_ns"), py::arg("backoff_ns"), py::arg("multiplier"),
           py::arg("max_backoff_ns"), py::arg("coherence_deadline_ns"), py::arg("guard"), py::arg("min_interval_ns"),
           py::arg("matches"), py::arg("clock"), py::keep_alive<1, 16>())
      .def("snapshot_json", [](graph::WriteBinding& w) { return w.snapshot().ToJson(); })
      .def("close", &graph::WriteBinding::Close, py::call_guard<py::gil_scoped_release>());
  py::class_<graph::Lifecycle, std::shared_ptr<graph::Lifecycle>>(m, "Lifecycle", "A device's intents, events and health.")
      .def(py::init([](std::shared_ptr<graph::Graph> g, const std::string& owner, const std::string& family,
                       const std::string& schema, bool gate_on_health, uint32_t max_attempts, int64_t ack_timeout_ns,
                       int64_t backoff_ns, double multiplier, int64_t max_backoff_ns, int64_t coherence_deadline_ns,
                       int64_t min_interval_ns, py::object matches, py::object clock) {
             graph::LifecycleOptions o{.write = WriteOptions(max_attempts, ack_timeout_ns, backoff_ns, multiplier, max_backoff_ns,
                                                             coherence_deadline_ns, min_interval_ns, matches, clock),
                                       .gate_on_health = gate_on_health};
             const graph::Schema sc = pyerr::Get(graph::Schema::FromText(schema));
             return pyerr::Get(graph::Lifecycle::Create(*g, owner, family, sc, o));
           }),
           py::arg("graph"), py::arg("owner"), py::arg("family"), py::arg("schema"), py::arg("gate_on_health"),
           py::arg("max_attempts"), py::arg("ack_timeout_ns"), py::arg("backoff_ns"), py::arg("multiplier"),
           py::arg("max_backoff_ns"), py::arg("coherence_deadline_ns"), py::arg("min_interval_ns"), py::arg("matches"),
           py::arg("clock"), py::keep_alive<1, 15>())
      .def_property_readonly("binding", [](graph::Lifecycle& l) { return l.binding(); });
  py::class_<graph::ControlLoop, std::shared_ptr<graph::ControlLoop>>(m, "ControlLoop", "Steps run one epoch at a time.")
      .def(py::init<std::string>())
      .def_property_readonly("name", &graph::ControlLoop::name)
      .def_property_readonly("epoch", &graph::ControlLoop::epoch)
      .def_property_readonly("steps", &graph::ControlLoop::steps)
      .def("install",
           [](graph::ControlLoop& l, const std::string& name, py::object read, py::object output, py::object next) {
             // next(bytes or None, epoch) -> bytes, or None to skip the epoch's write; run by
             // run_once on the caller's thread (which holds the GIL).
             auto fn = std::make_shared<Ref>(next.ptr());
             pyerr::Check(l.Install(
                 {.name = name,
                  .read = PortOf(read, "the read route")->route,
                  .output = PortOf(output, "the output route")->route,
                  .next = [fn](const graph::SampleRef& r, uint64_t epoch) -> Result<std::string> {
                    py::gil_scoped_acquire gil;
                    py::object arg = py::none();
                    if (r != nullptr) {
                      auto b = r->bytes();
                      if (!b.ok()) return b.status();
                      arg = py::bytes(reinterpret_cast<const char*>(b->data()), b->size());
                    }
                    try {
                      py::object v = py::reinterpret_borrow<py::object>(fn->p)(arg, epoch);
                      if (v.is_none()) return Status(Code::kNotFound, "the step wrote nothing this epoch");
                      return std::string(v.cast<py::bytes>());
                    } catch (py::error_already_set& e) {
                      return Status(Code::kAborted, std::string("a control step raised: ") + e.what());
                    }
                  }}));
           })
      .def("run_once", [](graph::ControlLoop& l) { return pyerr::Get(l.RunOnce()); });
}

// Scalar and bulk sensors and the embedded profile's check (weft/graph/embedded.h).
void BindEmbedded(py::module_& m) {
  py::class_<graph::ScalarSensor, std::shared_ptr<graph::ScalarSensor>>(m, "ScalarSensor", "Raw and logical readings.")
      .def(py::init([](std::shared_ptr<graph::Graph> g, const std::string& owner, const std::string& family,
                       const std::string& stream, double smoothing, double deadband) {
             return pyerr::Get(graph::ScalarSensor::Create(*g, {.owner = owner, .family = family, .stream = stream},
                                                           {.smoothing = smoothing, .deadband = deadband}));
           }))
      .def("read", [](graph::ScalarSensor& s, double v, int64_t event_ns) { pyerr::Check(s.Read(v, event_ns)); },
           py::arg("value"), py::arg("event_ns") = 0)
      .def_property_readonly("suppressed", &graph::ScalarSensor::suppressed)
      .def("close", &graph::ScalarSensor::Close, py::call_guard<py::gil_scoped_release>());
  py::class_<graph::BulkSensor, std::shared_ptr<graph::BulkSensor>>(m, "BulkSensor", "Cheap metadata, payloads on demand.")
      .def(py::init([](std::shared_ptr<graph::Graph> g, const std::string& owner, const std::string& family,
                       const std::string& stream, size_t keep, size_t max_payload_bytes) {
             return pyerr::Get(graph::BulkSensor::Create(*g, {.owner = owner, .family = family, .stream = stream},
                                                         {.keep = keep, .max_payload_bytes = max_payload_bytes}));
           }))
      .def("capture",
           [](graph::BulkSensor& s, py::bytes data, uint32_t kind, int64_t event_ns) {
             pyerr::Check(s.Capture(std::string(data), kind, event_ns));
           },
           py::arg("data"), py::arg("kind") = 0, py::arg("event_ns") = 0)
      .def("open",
           [](graph::BulkSensor& s, py::object envelope, uint64_t bytes, uint32_t crc32c, uint32_t kind, int64_t captured_ns) {
             graph::Envelope e;
             if (!EnvelopeFrom(envelope.ptr(), &e)) throw py::error_already_set();
             auto p = pyerr::Get(s.Open(e, {.bytes = bytes, .crc32c = crc32c, .kind = kind, .captured_ns = captured_ns}));
             auto b = pyerr::Get(p->bytes());
             return py::bytes(reinterpret_cast<const char*>(b.data()), b.size());
           })
      .def("snapshot", [](graph::BulkSensor& s) { return PayloadDict(s.stats()); });
  m.def("check_embedded_profile", [](std::shared_ptr<graph::Graph> g, size_t max_meta_bytes) {
    return graph::CheckEmbeddedProfile(*g, max_meta_bytes);
  });
}

// The windows' state machines (weft/graph/window.h); weft.graph wires them to routes. Callbacks
// run on the caller's thread, which holds the GIL.
void BindWindows(py::module_& m) {
  m.def("window_feed",
        [](py::object port, py::object windows, py::object partition_by, py::object value, py::dict ids, py::list keys) {
          Port* p = PortOf(port, "the source");
          if (py::isinstance<graph::TimeWindows>(windows)) {
            return FeedWindows(p, windows.cast<graph::TimeWindows*>(), windows, partition_by, value, ids, keys);
          }
          return FeedWindows(p, windows.cast<graph::CountWindows*>(), windows, partition_by, value, ids, keys);
        },
        "Feeds a route's values to windows (weft.graph uses it); returns the observation's token.");
  py::class_<graph::TimeWindows>(m, "TimeWindows", "Event-time tumbling windows released by watermarks.")
      .def(py::init([](int64_t width_ns, const std::string& late, int64_t lateness_ns, int64_t idle_after_ns,
                       std::vector<double> percentiles, bool keep_values, py::object on_window, py::object on_late,
                       bool keep_inputs) {
             graph::TimeWindowOptions o;
             o.keep_inputs = keep_inputs;
             o.width_ns = width_ns;
             if (late == "drop") {
               o.late = graph::LatePolicy::kDrop;
             } else if (late == "side") {
               o.late = graph::LatePolicy::kSide;
             } else if (late == "update") {
               o.late = graph::LatePolicy::kUpdate;
             } else {
               throw py::value_error("late is \"drop\", \"side\" or \"update\", not \"" + late + "\"");
             }
             o.allowed_lateness_ns = lateness_ns;
             o.idle_after_ns = idle_after_ns;
             o.percentiles = std::move(percentiles);
             o.keep_values = keep_values;
             graph::TimeWindows::OnLate late_fn;
             if (!on_late.is_none()) {
               late_fn = [on_late](const graph::LateValue& l) {
                 Guarded([&] { on_late(l.partition, l.event_ns, l.value, l.watermark_ns); });
               };
             }
             return pyerr::Get(graph::TimeWindows::Create(
                 o, [on_window](const graph::WindowResult& r) { Guarded([&] { on_window(WindowTuple(r)); }); }, late_fn));
           }))
      .def("add", &graph::TimeWindows::Add, py::arg("partition"), py::arg("event_ns"), py::arg("value"), py::arg("taints") = 0,
           py::arg("id") = 0)
      .def("add_batch",
           [](graph::TimeWindows& w, py::array_t<uint64_t, py::array::c_style | py::array::forcecast> parts,
              py::array_t<int64_t, py::array::c_style | py::array::forcecast> times,
              py::array_t<double, py::array::c_style | py::array::forcecast> values) {
             if (parts.size() != times.size() || times.size() != values.size()) throw py::value_error("the columns differ in length");
             const auto n = static_cast<size_t>(parts.size());
             w.AddBatch({parts.data(), n}, {times.data(), n}, {values.data(), n});
           })
      .def("advance", [](graph::TimeWindows& w, int64_t wm) { pyerr::Check(w.Advance(wm)); })
      .def("advance_partition",
           [](graph::TimeWindows& w, uint64_t p, int64_t wm, int64_t now) { pyerr::Check(w.AdvancePartition(p, wm, now)); })
      .def("tick", &graph::TimeWindows::Tick)
      .def("flush", &graph::TimeWindows::Flush)
      .def("snapshot", [](graph::TimeWindows& w) { return WindowSnapshotDict(w.snapshot()); });

  py::class_<graph::CountWindows>(m, "CountWindows", "Count windows per partition.")
      .def(py::init([](size_t size, size_t trigger, std::vector<double> percentiles, bool keep_values, py::object on_window,
                       bool keep_inputs) {
             graph::CountWindowOptions o{.size = size, .trigger = trigger, .percentiles = std::move(percentiles),
                                         .keep_values = keep_values, .keep_inputs = keep_inputs};
             return pyerr::Get(graph::CountWindows::Create(
                 o, [on_window](const graph::WindowResult& r) { Guarded([&] { on_window(WindowTuple(r)); }); }));
           }))
      .def("add", &graph::CountWindows::Add, py::arg("partition"), py::arg("event_ns"), py::arg("value"), py::arg("taints") = 0,
           py::arg("id") = 0)
      .def("snapshot", [](graph::CountWindows& w) { return WindowSnapshotDict(w.snapshot()); });

  py::class_<graph::IntervalJoin>(m, "IntervalJoin", "An event-time interval join.")
      .def(py::init([](int64_t within_ns, py::object on_pair, py::object on_drop) {
             return pyerr::Get(graph::IntervalJoin::Create(
                 {.within_ns = within_ns},
                 [on_pair](const graph::JoinPair& p) { Guarded([&] { on_pair(p.left.id, p.right.id); }); },
                 [on_drop](const graph::JoinSide& s) { Guarded([&] { on_drop(s.id); }); }));
           }))
      .def("add_left", &graph::IntervalJoin::AddLeft)
      .def("add_right", &graph::IntervalJoin::AddRight)
      .def("advance", [](graph::IntervalJoin& j, int64_t wm) { pyerr::Check(j.Advance(wm)); })
      .def("snapshot", [](graph::IntervalJoin& j) {
        const graph::JoinSnapshot s = j.snapshot();
        py::dict d;
        d["watermark_ns"] = s.watermark_ns;
        d["keys"] = s.keys;
        d["buffered_left"] = s.buffered_left;
        d["buffered_right"] = s.buffered_right;
        d["left"] = s.left;
        d["right"] = s.right;
        d["pairs"] = s.pairs;
        d["pruned"] = s.pruned;
        d["late"] = s.late;
        return d;
      });

  m.def("plan_repartition",
        [](const std::vector<std::pair<uint64_t, uint64_t>>& counts, uint32_t partitions) {
          std::vector<graph::KeyCount> kc;
          for (const auto& [k, n] : counts) kc.push_back({k, n});
          const graph::RepartitionPlan p = pyerr::Get(graph::PlanRepartition(kc, partitions));
          return py::make_tuple(p.ToJson(), p.ToText(), p.partition_of);
        });
}

py::dict SnapshotDict(const graph::FlowSnapshot& s) {
  py::dict d;
  d["name"] = s.name;
  d["capacity"] = s.capacity;
  d["depth"] = s.depth;
  d["credit"] = s.credit();
  d["accepted"] = s.accepted;
  d["delivered"] = s.delivered;
  d["dropped_oldest"] = s.dropped_oldest;
  d["dropped_newest"] = s.dropped_newest;
  d["coalesced"] = s.coalesced;
  d["blocked"] = s.blocked;
  d["blocked_ns"] = s.blocked_ns;
  d["refused"] = s.refused;
  d["gated"] = s.gated;
  d["pending_demand"] = s.pending_demand;
  return d;
}

graph::Overflow OverflowOf(const std::string& name) { return pyerr::Get(graph::ParseOverflow(name)); }

// A mailbox seen from Python: values decoded as its route's port decodes them.
struct PyMailbox {
  std::shared_ptr<graph::Mailbox> box;
  py::object decode;
  py::object Value(const graph::SampleRef& s) {
    PyObject* v = ValueOf(s, decode.ptr());
    if (v == nullptr) throw py::error_already_set();
    return py::reinterpret_steal<py::object>(v);
  }
};

// The GIL let go while a publisher waits for room in a full mailbox or capacitor.
void* ReleaseGil() { return PyGILState_Check() ? PyEval_SaveThread() : nullptr; }
void ReacquireGil(void* token) { PyEval_RestoreThread(static_cast<PyThreadState*>(token)); }

}  // namespace

void BindGraph(py::module_& m) {
  graph::SetWaitHooks({ReleaseGil, ReacquireGil});
  g_envelope_type = PyStructSequence_NewType(&kEnvelopeDesc);
  if (g_envelope_type == nullptr) throw py::error_already_set();
  m.add_object("Envelope", reinterpret_cast<PyObject*>(g_envelope_type));
  g_port_type = reinterpret_cast<PyTypeObject*>(PyType_FromSpec(&kPortSpec));
  if (g_port_type == nullptr) throw py::error_already_set();
  m.add_object("Port", reinterpret_cast<PyObject*>(g_port_type));
  g_sample_buffer_type = reinterpret_cast<PyTypeObject*>(PyType_FromSpec(&kSampleBufferSpec));
  if (g_sample_buffer_type == nullptr) throw py::error_already_set();
  m.add_object("SampleBuffer", reinterpret_cast<PyObject*>(g_sample_buffer_type));

  py::class_<graph::Graph, std::shared_ptr<graph::Graph>>(m, "GraphCore", "A graph's routes (weft.graph.Graph uses it).")
      .def(py::init([] { return graph::Graph::Create(); }))
      .def(
          "declare",
          [](graph::Graph& g, const std::string& name, const std::string& schema, py::object encode, py::object decode,
             py::object accept, py::object validate) {
            auto n = pyerr::Get(graph::RouteName::Parse(name));
            auto s = pyerr::Get(graph::Schema::FromText(schema));
            return MakePort(pyerr::Get(g.Declare(n, s)), std::move(encode), std::move(decode), std::move(accept),
                            std::move(validate));
          },
          py::arg("name"), py::arg("schema"), py::arg("encode"), py::arg("decode"), py::arg("accept") = py::none(),
          py::arg("validate") = py::none(),
          "declare(name, schema, encode, decode, accept=None, validate=None) -> Port: the route, declared on first use.")
      .def("topology_json", [](graph::Graph& g) { return g.Describe().ToJson(); })
      .def("topology_dot", [](graph::Graph& g) { return g.Describe().ToDot(); })
      .def("validate",
           [](graph::Graph& g) {
             py::list out;
             for (const std::string& p : g.Validate()) out.append(p);
             return out;
           })
      .def(
          "lineage",
          [](graph::Graph& g, const std::string& route, uint64_t trace, uint64_t causality, uint64_t correlation) {
            graph::LineageQuery q{.trace = trace, .causality = causality, .correlation = correlation};
            graph::RouteName n;
            if (!route.empty()) {
              n = pyerr::Get(graph::RouteName::Parse(route));
              q.route = &n;
            }
            py::list out;
            for (const graph::LineageEntry& e : g.Lineage(q)) {
              out.append(py::make_tuple(e.route.ToString(), py::reinterpret_steal<py::object>(EnvelopeOf(e.envelope))));
            }
            return out;
          },
          py::arg("route"), py::arg("trace"), py::arg("causality"), py::arg("correlation"))
      .def("routes", [](graph::Graph& g) {
        py::list out;
        for (const graph::Route& r : g.Routes()) out.append(py::make_tuple(r.name().ToString(), r.schema().text(), r.published()));
        return out;
      });

  py::class_<PyMailbox>(m, "Mailbox", "Values of a route waiting for a consumer (weft.graph uses it).")
      .def(py::init([](py::object port, size_t capacity, const std::string& overflow, int64_t block_timeout_ms,
                       const std::string& name) {
             Port* p = PortOf(port, "the source");
             graph::FlowPolicy policy{.capacity = capacity, .overflow = OverflowOf(overflow), .block_timeout_ms = block_timeout_ms};
             return PyMailbox{pyerr::Get(graph::Mailbox::Create(p->route, policy, name)),
                              py::reinterpret_borrow<py::object>(p->decode)};
           }),
           py::arg("port"), py::arg("capacity"), py::arg("overflow"), py::arg("block_timeout_ms"), py::arg("name") = "")
      .def(
          "take",
          [](PyMailbox& b, double timeout) {
            graph::SampleRef s;
            Status st;
            {
              py::gil_scoped_release nogil;
              auto r = b.box->Take(timeout < 0 ? Deadline::Never() : Deadline::AfterNs(static_cast<int64_t>(timeout * 1e9)));
              if (r.ok()) {
                s = *r;
              } else {
                st = r.status();
              }
            }
            pyerr::Check(st);
            return b.Value(s);
          },
          py::arg("timeout") = -1.0, "take(timeout=-1) -> the oldest value (Timeout, Closed)")
      .def("try_take",
           [](PyMailbox& b) -> py::object {
             graph::SampleRef s = b.box->TryTake();
             if (s == nullptr) return py::none();
             return b.Value(s);
           })
      .def("close", [](PyMailbox& b) {
        py::gil_scoped_release nogil;
        b.box->Close();
      })
      .def("snapshot", [](PyMailbox& b) { return SnapshotDict(b.box->snapshot()); });

  py::class_<graph::Capacitor, std::shared_ptr<graph::Capacitor>>(m, "Capacitor", "Bounded storage released by demand.")
      .def(py::init([](py::object source, py::object sink, size_t capacity, const std::string& overflow,
                       int64_t block_timeout_ms, py::object demand, bool immediate, const std::string& name) {
             graph::CapacitorOptions o;
             o.capacity = capacity;
             o.block_timeout_ms = block_timeout_ms;
             o.immediate = immediate;
             if (!overflow.empty()) o.overflow = OverflowOf(overflow);
             graph::Route d;
             if (!demand.is_none()) {
               d = PortOf(demand, "demand")->route;
               o.demand = &d;
             }
             return pyerr::Get(graph::Capacitor::Create(PortOf(source, "the source")->route, PortOf(sink, "the sink")->route, o, name));
           }),
           py::arg("source"), py::arg("sink"), py::arg("capacity"), py::arg("overflow"), py::arg("block_timeout_ms"),
           py::arg("demand"), py::arg("immediate"), py::arg("name") = "")
      .def("discharge", &graph::Capacitor::Discharge, py::arg("n") = 1)
      .def("snapshot", [](graph::Capacitor& c) { return SnapshotDict(c.snapshot()); })
      .def("close", &graph::Capacitor::Close, py::call_guard<py::gil_scoped_release>());

  py::class_<graph::Resistor, std::shared_ptr<graph::Resistor>>(m, "Resistor", "Pass, gate, or release on pulses.")
      .def(py::init([](py::object source, py::object sink, py::object gate, py::object release, const std::string& name) {
             graph::ResistorOptions o;
             graph::Route g, r;
             if (!gate.is_none()) {
               g = PortOf(gate, "gate")->route;
               o.gate = &g;
             }
             if (!release.is_none()) {
               r = PortOf(release, "release")->route;
               o.release = &r;
             }
             return pyerr::Get(graph::Resistor::Create(PortOf(source, "the source")->route, PortOf(sink, "the sink")->route, o, name));
           }),
           py::arg("source"), py::arg("sink"), py::arg("gate"), py::arg("release"), py::arg("name") = "")
      .def("snapshot", [](graph::Resistor& r) { return SnapshotDict(r.snapshot()); })
      .def("close", &graph::Resistor::Close, py::call_guard<py::gil_scoped_release>());

  py::class_<graph::Placement, std::shared_ptr<graph::Placement>>(m, "Placement", "Where a route lives beyond this process.")
      .def_property_readonly("where", &graph::Placement::where)
      .def("stats",
           [](graph::Placement& p) {
             graph::PlacementStats s = p.stats();
             py::dict d;
             d["sent"] = s.sent;
             d["received"] = s.received;
             d["send_errors"] = s.send_errors;
             d["refused"] = s.refused;
             d["lost"] = s.lost;
             d["in_place"] = s.in_place;
             return d;
           })
      .def("close", &graph::Placement::Close, py::call_guard<py::gil_scoped_release>());
  py::class_<graph::ShmPlacement, graph::Placement, std::shared_ptr<graph::ShmPlacement>>(
      m, "ShmPlacement", "A route shared by the processes of this host.")
      .def(py::init([](py::object port, const std::string& topic, uint32_t queue_depth, uint64_t pool_bytes) {
             graph::ShmPlacementOptions o;
             o.topic = topic;
             o.queue_depth = queue_depth;
             o.pool_bytes = pool_bytes;
             return pyerr::Get(graph::ShmPlacement::Create(PortOf(port, "the route")->route, o));
           }),
           py::arg("port"), py::arg("topic") = "", py::arg("queue_depth") = 1024, py::arg("pool_bytes") = uint64_t{64} << 20)
      .def_property_readonly("topic", &graph::ShmPlacement::topic);
  py::class_<graph::NatsPlacement, graph::Placement, std::shared_ptr<graph::NatsPlacement>>(
      m, "NatsPlacement", "A route shared across hosts over NATS.")
      .def(py::init([](py::object port, const std::string& url, const std::string& subject, bool low_latency) {
             graph::NatsPlacementOptions o;
             o.subject = subject;
             o.low_latency = low_latency;
             graph::Route r = PortOf(port, "the route")->route;
             auto made = [&] {
               py::gil_scoped_release unlocked;  // connecting waits on the network
               return graph::NatsPlacement::Create(r, url, o);
             }();
             return pyerr::Get(std::move(made));
           }),
           py::arg("port"), py::arg("url"), py::arg("subject") = "", py::arg("low_latency") = true);

  py::class_<graph::ManualClock, std::shared_ptr<graph::ManualClock>>(m, "ManualClock", "A clock moved by hand.")
      .def(py::init<int64_t>(), py::arg("start_ns") = 0)
      .def("now_ns", &graph::ManualClock::NowNs)
      .def("advance", &graph::ManualClock::Advance, py::arg("ns"));

  py::class_<graph::Watchdog, std::shared_ptr<graph::Watchdog>>(m, "Watchdog", "Missing-flow detection.")
      .def(py::init([](py::object reset_by, py::object output, int64_t after_ns, py::object clock) {
             graph::Clock* c = &graph::Clock::System();
             if (!clock.is_none()) c = clock.cast<graph::ManualClock*>();
             return pyerr::Get(graph::Watchdog::Create(PortOf(reset_by, "reset_by")->route, PortOf(output, "output")->route,
                                                       after_ns, *c));
           }),
           py::arg("reset_by"), py::arg("output"), py::arg("after_ns"), py::arg("clock"), py::keep_alive<1, 5>())
      .def_property_readonly("fired", &graph::Watchdog::fired)
      .def("close", &graph::Watchdog::Close, py::call_guard<py::gil_scoped_release>());
  BindStores(m);
  BindWindows(m);

  py::class_<graph::LazyPayload, std::shared_ptr<graph::LazyPayload>>(m, "LazyPayload", "Payloads opened on demand.")
      .def(py::init([](py::object meta, py::object payload, size_t keep, const std::string& name) {
             return pyerr::Get(graph::LazyPayload::Create(PortOf(meta, "the metadata route")->route,
                                                          PortOf(payload, "the payload route")->route, {.keep = keep}, name));
           }))
      .def("capture",
           [](graph::LazyPayload& l, py::object publish) {
             // The payload is published by Python (its port), on this thread, with the GIL.
             py::object error;
             auto p = l.Capture([&]() -> Status {
               try {
                 publish();
               } catch (py::error_already_set& e) {
                 error = py::reinterpret_borrow<py::object>(e.value());
                 return Status(Code::kAborted, "publishing the payload raised");
               }
               return Status::Ok();
             });
             if (error) {
               PyErr_SetObject(reinterpret_cast<PyObject*>(Py_TYPE(error.ptr())), error.ptr());
               throw py::error_already_set();
             }
             auto sample = pyerr::Get(std::move(p));
             return py::reinterpret_steal<py::object>(EnvelopeOf(sample->envelope()));
           })
      .def("open",
           [](graph::LazyPayload& l, py::object payload, uint64_t id) {
             Port* port = PortOf(payload, "the payload route");
             auto s = pyerr::Get(l.OpenId(id));
             PyObject* v = ValueOf(s, port->decode, port->views);
             if (v == nullptr) throw py::error_already_set();
             return py::reinterpret_steal<py::object>(v);
           })
      .def("snapshot", [](graph::LazyPayload& l) { return PayloadDict(l.stats()); })
      .def("close", &graph::LazyPayload::Close, py::call_guard<py::gil_scoped_release>());

  struct QueryServer {
    std::unique_ptr<rpc::Server> server;
    void Close() {
      if (server != nullptr) server->Shutdown(Deadline::AfterMs(1000)).IgnoreError();
      server.reset();
    }
  };
  py::class_<QueryServer, std::shared_ptr<QueryServer>>(m, "QueryServer", "A graph's query plane, served.")
      .def(py::init([](std::shared_ptr<graph::Graph> g, const std::string& name) {
             auto s = std::make_shared<QueryServer>();
             s->server = pyerr::Get(graph::ServeQueries(std::move(g), name));
             return s;
           }))
      .def_property_readonly("address", [](QueryServer& s) { return s.server != nullptr ? s.server->address() : std::string(); })
      .def("close", &QueryServer::Close, py::call_guard<py::gil_scoped_release>());

  BindWrites(m);
  BindEmbedded(m);
  m.def("note_repair", [](py::object port, uint64_t repaired, std::string note) {
    PortOf(port, "the route")->route.NoteRepair(repaired, std::move(note));
  });
  m.def("repair_notes", [](py::object port) {
    py::list out;
    for (const graph::RepairNote& n : PortOf(port, "the route")->route.RepairNotes()) out.append(py::make_tuple(n.repaired, n.note));
    return out;
  });

  py::class_<graph::Consensus, std::shared_ptr<graph::Consensus>>(m, "Consensus", "Leader election made of graph parts.")
      .def(py::init([](std::shared_ptr<graph::Graph> g, const std::string& cluster, uint32_t member, uint32_t members,
                       int64_t heartbeat_ns, int64_t election_timeout_ns, py::object clock) {
             graph::ConsensusOptions o{.cluster = cluster, .member = member, .members = members,
                                       .heartbeat_ns = heartbeat_ns, .election_timeout_ns = election_timeout_ns};
             if (!clock.is_none()) o.clock = clock.cast<graph::ManualClock*>();
             return pyerr::Get(graph::Consensus::Install(*g, o));
           }),
           py::arg("graph"), py::arg("cluster"), py::arg("member"), py::arg("members"), py::arg("heartbeat_ns"),
           py::arg("election_timeout_ns"), py::arg("clock"), py::keep_alive<1, 8>())
      .def("state",
           [](graph::Consensus& c) {
             const graph::RaftState s = c.state();
             return py::make_tuple(s.term, s.leader, static_cast<uint32_t>(s.role));
           })
      .def("close", &graph::Consensus::Close, py::call_guard<py::gil_scoped_release>());
}

}  // namespace weft::py_bind
