// The ipc:// transport: a handshake over an abstract Unix socket, then a channel pair per
// client carrying frames (docs/formats/rpc-wire.md).
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <list>
#include <mutex>
#include <thread>

#include "scheduler.h"
#include "weft/rpc/rpc.h"
#include "weft/shm/channel.h"
#include "weft/shm/pool.h"
#include "wire.h"

namespace weft::rpc {
namespace {

using internal::DecodeFrame;
using internal::DecodeValues;
using internal::FrameType;
using internal::Value;

constexpr size_t kChannelBytes = size_t{4} << 20;
constexpr size_t kInlineMax = 64 << 10;  // values above this travel as blocks of the server's pool

std::string PoolName(const std::string& id) { return "rpc." + id + ".pool"; }

shm::PoolOptions RpcPoolOptions() {
  shm::PoolOptions o;
  o.bytes = size_t{4} << 20;  // small blocks are rare here; large values get their own segments
  o.max_arenas = 4;
  o.max_block = size_t{16} << 30;
  return o;
}

// Puts a large value into a block of `pool` (held by this process); returns the value entry.
Result<Value> ToBlock(shm::Pool& pool, ByteView bytes) {
  auto b = pool.Allocate(bytes.size());
  if (!b.ok()) return b.status();
  auto d = pool.Data(*b);
  if (!d.ok()) return d.status();
  std::memcpy(d->data(), bytes.data(), bytes.size());
  Value v;
  v.in_block = true;
  v.block = *b;
  v.length = bytes.size();
  return v;
}

// The bytes of a block value, checked against the block's size.
Result<ByteView> FromBlock(shm::Pool& pool, const Value& v) {
  auto d = pool.Data(v.block);
  if (!d.ok()) return d.status();
  if (v.length > d->size()) return Corrupt("a value says " + std::to_string(v.length) + " bytes, its block has " + std::to_string(d->size()));
  return ByteView(d->data(), v.length);
}
constexpr int64_t kPollSliceMs = 100;  // server loops look at their stop flag this often

// How both sides wait for the other: spin up to half a millisecond (adaptive: much less while
// spinning keeps failing, as for an idle client) before sleeping. A caller's own work between
// calls (a Python client encoding its next arguments, say) often takes tens of microseconds;
// a shorter spin would put the server to sleep each time, and waking it costs ~30 us here.
shm::WaitPolicy CallWaits() {
  shm::WaitPolicy w;
  w.spin_ns = 500'000;
  w.adaptive = true;
  return w;
}

sockaddr_un SocketAddress(const std::string& id, socklen_t* len) {
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  const std::string name = "weft.rpc." + id;  // abstract namespace: sun_path[0] == 0
  std::memcpy(a.sun_path + 1, name.data(), std::min(name.size(), sizeof(a.sun_path) - 2));
  *len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + std::min(name.size(), sizeof(a.sun_path) - 2));
  return a;
}

bool ValidId(const std::string& id) {
  if (id.empty() || id.size() > 64) return false;
  for (char c : id) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.') return false;
  }
  return true;
}

// Waits up to the deadline for a message on a seqpacket socket.
Result<std::string> RecvMessage(int fd, Deadline deadline) {
  pollfd p{fd, POLLIN, 0};
  const int64_t left = deadline.RemainingNs();
  const int ms = deadline.is_never() ? -1 : static_cast<int>(std::min<int64_t>(left / 1'000'000 + 1, INT32_MAX));
  const int r = ::poll(&p, 1, ms);
  if (r == 0) return Status(Code::kTimeout, "no answer in the handshake");
  if (r < 0) return ErrnoStatus(errno, "poll");
  std::string buf(1 << 20, '\0');
  const ssize_t n = ::recv(fd, buf.data(), buf.size(), 0);
  if (n < 0) return ErrnoStatus(errno, "recv");
  if (n == 0) return Status(Code::kPeerDead, "the peer closed the connection during the handshake");
  buf.resize(static_cast<size_t>(n));
  return buf;
}

// Splits off the first `lines` lines; the rest is returned in *rest.
bool Lines(std::string_view msg, size_t lines, std::vector<std::string>* out, std::string_view* rest) {
  size_t pos = 0;
  for (size_t i = 0; i < lines; ++i) {
    const size_t nl = msg.find('\n', pos);
    if (nl == std::string_view::npos) return false;
    out->emplace_back(msg.substr(pos, nl - pos));
    pos = nl + 1;
  }
  *rest = msg.substr(pos);
  return true;
}

// Encodes a frame straight into the channel's ring (no staging copy) and publishes it.
Status SendFrame(shm::Channel& ch, FrameType type, uint64_t call_id, int64_t deadline_ns, uint32_t resource,
                 uint32_t method, const std::vector<Value>& values, Deadline deadline) {
  const size_t vsize = internal::ValuesSize(values);
  auto buf = ch.Reserve(sizeof(internal::FrameHeader) + vsize, deadline);
  if (!buf.ok()) return buf.status();
  internal::EncodeHeader(type, 0, resource, method, call_id, deadline_ns, static_cast<uint32_t>(vsize), buf->data());
  internal::EncodeValues(values, buf->data() + sizeof(internal::FrameHeader));
  return ch.Commit(sizeof(internal::FrameHeader) + vsize);
}

Status SendError(shm::Channel& ch, uint64_t call_id, const Status& s, Deadline deadline) {
  const std::string payload = internal::EncodeError(s);
  auto buf = ch.Reserve(sizeof(internal::FrameHeader) + payload.size(), deadline);
  if (!buf.ok()) return buf.status();
  internal::EncodeHeader(FrameType::kError, 0, 0, 0, call_id, 0, static_cast<uint32_t>(payload.size()), buf->data());
  std::memcpy(buf->data() + sizeof(internal::FrameHeader), payload.data(), payload.size());
  return ch.Commit(sizeof(internal::FrameHeader) + payload.size());
}

}  // namespace

// ---- server ---------------------------------------------------------------------------------

struct Server::Impl {
  struct Hosted {
    uint32_t id = 0;
    Resource resource;
    std::vector<Handler> handlers;  // by method index
    internal::Scheduler scheduler;
  };

  std::string id;
  int listen_fd = -1;
  std::unique_ptr<shm::Pool> pool;  // large values
  std::atomic<bool> stopping{false};
  std::mutex mu;
  std::map<std::string, std::unique_ptr<Hosted>> resources;
  std::thread acceptor;
  std::list<std::thread> connections;
  bool started = false;
  bool shut = false;

  Hosted* Find(const std::string& name) {
    std::lock_guard<std::mutex> g(mu);
    auto it = resources.find(name);
    return it == resources.end() ? nullptr : it->second.get();
  }

  void Accept();
  void Serve(int fd);
  // Runs one call; the result's value (inline bytes kept in *storage, or a block handed to the
  // client), or the error to send back.
  Result<Value> Handle(Hosted& h, const internal::Frame& f, uint64_t client_bit, std::string* storage);
};

void Server::Impl::Accept() {
  while (!stopping.load()) {
    pollfd p{listen_fd, POLLIN, 0};
    if (::poll(&p, 1, kPollSliceMs) <= 0) continue;
    const int fd = ::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    std::lock_guard<std::mutex> g(mu);
    connections.emplace_back([this, fd] { Serve(fd); });
  }
}

// One connected client: the handshake, then its calls until it leaves, dies or we stop.
void Server::Impl::Serve(int fd) {
  auto refuse = [&](const Status& s) {
    const std::string m = "error\n" + std::to_string(static_cast<int>(s.code())) + "\n" + s.message();
    (void)!::send(fd, m.data(), m.size(), MSG_NOSIGNAL);
    ::close(fd);
  };
  auto hello = RecvMessage(fd, Deadline::AfterMs(10'000));
  if (!hello.ok()) {
    ::close(fd);
    return;
  }
  std::vector<std::string> head;
  std::string_view canonical;
  if (!Lines(*hello, 5, &head, &canonical) || head[0] != "hello") return refuse(Corrupt("bad handshake"));
  const int client_slot = std::atoi(head[4].c_str());
  if (client_slot < 0 || client_slot >= shm::Pool::kMaxHolders) return refuse(Corrupt("bad pool slot in handshake"));
  const uint64_t client_bit = uint64_t{1} << client_slot;
  Hosted* h = Find(head[1]);
  if (h == nullptr) return refuse(NotFound("no resource named '" + head[1] + "' at ipc://" + id));
  auto client_contract = Contract::Parse(canonical);
  if (!client_contract.ok()) return refuse(client_contract.status());
  Status same = Compare(h->resource.contract, *client_contract);
  if (!same.ok()) return refuse(same);
  auto req = shm::Channel::Open(head[2], shm::Role::kConsumer, CallWaits());
  if (!req.ok()) return refuse(req.status());
  auto rep = shm::Channel::Open(head[3], shm::Role::kProducer);
  if (!rep.ok()) return refuse(rep.status());
  const std::string ok = "ok\n" + std::to_string(h->id) + "\n" + h->resource.contract.Canonical();
  if (::send(fd, ok.data(), ok.size(), MSG_NOSIGNAL) < 0) {
    ::close(fd);
    return;
  }
  ::close(fd);  // from here the channels carry everything, and tell us if the client dies
  while (!stopping.load()) {
    auto rec = (*req)->Read(Deadline::AfterMs(kPollSliceMs));
    if (!rec.ok()) {
      if (rec.status().code() == Code::kTimeout || rec.status().code() == Code::kWouldBlock) continue;
      // The client died or closed: what it held in the pool (arguments it wrote, results it
      // had not released) comes back.
      if (rec.status().code() == Code::kPeerDead) pool->RecoverDead();
      break;
    }
    auto f = DecodeFrame(*rec);
    if (!f.ok()) break;  // a client that sends garbage loses its connection, and only it
    if (f->type() != FrameType::kCall) {
      (*req)->Release().IgnoreError();
      continue;  // cancel and credit frames: nothing in flight to act on here
    }
    const uint64_t call = f->header.call_id;
    const uint32_t method = f->header.method;
    std::string storage;
    Result<Value> out = Handle(*h, *f, client_bit, &storage);
    (*req)->Release().IgnoreError();  // the arguments were read in place until here
    const Deadline send_by = Deadline::AfterMs(10'000);
    Status sent = out.ok() ? SendFrame(**rep, FrameType::kReply, call, 0, h->id, method, {*out}, send_by)
                           : SendError(**rep, call, out.status(), send_by);
    if (!sent.ok()) break;
  }
}

Result<Value> Server::Impl::Handle(Hosted& h, const internal::Frame& f, uint64_t client_bit, std::string* storage) {
  const Contract& c = h.resource.contract;
  if (f.header.method >= c.methods.size()) return InvalidArgument("no method " + std::to_string(f.header.method));
  const MethodSpec& m = c.methods[f.header.method];
  auto values = DecodeValues(f.payload);
  if (!values.ok()) return values.status();
  if (values->size() != m.params.size()) {
    return InvalidArgument("method '" + m.name + "' takes " + std::to_string(m.params.size()) + " arguments, got " +
                           std::to_string(values->size()));
  }
  CallArgs args;
  args.method = static_cast<int>(f.header.method);
  args.deadline = f.header.deadline_ns == 0 ? Deadline::Never() : Deadline::At(f.header.deadline_ns);
  // Arguments in blocks are read in place; our hold keeps each alive until the handler is done.
  std::vector<uint64_t> held;
  auto release = [&] {
    for (uint64_t b : held) pool->Release(b).IgnoreError();
  };
  for (const Value& v : *values) {
    if (!v.in_block) {
      args.args.push_back(v.bytes);
      continue;
    }
    Status hs = pool->Hold(v.block);
    if (!hs.ok()) {
      release();
      return hs.Annotate("argument block");
    }
    held.push_back(v.block);
    auto b = FromBlock(*pool, v);
    if (!b.ok()) {
      release();
      return b.status();
    }
    args.args.push_back(*b);
  }
  if (!h.scheduler.Enter(m.access, args.deadline)) {
    release();
    return Status(Code::kTimeout, "resource busy past the call's deadline");
  }
  Result<std::string> r = h.handlers[f.header.method](args);
  h.scheduler.Leave(m.access);
  release();
  if (!r.ok()) return r.status();
  if (r->size() <= kInlineMax) {
    *storage = std::move(r).value();
    Value out;
    out.bytes = AsBytes(*storage);
    return out;
  }
  // A large result goes into a block handed to the client (its hold), ours dropped.
  auto out = ToBlock(*pool, AsBytes(*r));
  if (!out.ok()) {
    Status st = out.status();
    return st.Annotate("result");
  }
  Status g = pool->Grant(out->block, client_bit);
  pool->Release(out->block).IgnoreError();
  if (!g.ok()) return g;
  return *out;
}

Server::Server(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Server::~Server() { Shutdown(Deadline::AfterMs(10'000)).IgnoreError(); }

Result<std::unique_ptr<Server>> Server::Create(const std::string& id) {
  if (!ValidId(id)) return InvalidArgument("server id '" + id + "': 1 to 64 letters, digits, - _ .");
  auto impl = std::make_unique<Impl>();
  impl->id = id;
  impl->listen_fd = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  if (impl->listen_fd < 0) return ErrnoStatus(errno, "socket");
  socklen_t len;
  sockaddr_un a = SocketAddress(id, &len);
  if (::bind(impl->listen_fd, reinterpret_cast<sockaddr*>(&a), len) != 0) {
    const int err = errno;
    ::close(impl->listen_fd);
    if (err == EADDRINUSE) return Status(Code::kAlreadyExists, "a server already listens at ipc://" + id);
    return ErrnoStatus(err, "bind");
  }
  if (::listen(impl->listen_fd, 64) != 0) return ErrnoStatus(errno, "listen");
  // A pool left by an earlier server of this id that died is reused (its holders recovered).
  auto pool = shm::Pool::OpenOrCreate(PoolName(id), RpcPoolOptions());
  if (!pool.ok()) {
    ::close(impl->listen_fd);
    Status st = pool.status();
    return st.Annotate("server pool");
  }
  impl->pool = std::move(pool).value();
  impl->pool->RecoverDead();
  return std::unique_ptr<Server>(new Server(std::move(impl)));
}

Status Server::Register(const std::string& name, Resource resource) {
  if (name.empty() || name.size() > 128) return InvalidArgument("resource name must be 1 to 128 bytes");
  WEFT_RETURN_IF_ERROR(Validate(resource.contract));
  auto h = std::make_unique<Impl::Hosted>();
  for (const MethodSpec& m : resource.contract.methods) {
    auto it = resource.handlers.find(m.name);
    if (it == resource.handlers.end() || !it->second) return InvalidArgument("no handler for method '" + m.name + "'");
    h->handlers.push_back(it->second);
  }
  std::lock_guard<std::mutex> g(impl_->mu);
  if (impl_->resources.count(name) != 0) return Status(Code::kAlreadyExists, "resource '" + name + "' is registered");
  h->id = static_cast<uint32_t>(impl_->resources.size() + 1);
  h->resource = std::move(resource);
  impl_->resources[name] = std::move(h);
  return Status::Ok();
}

Status Server::Start() {
  if (impl_->started) return Status::Ok();
  impl_->started = true;
  impl_->acceptor = std::thread([this] { impl_->Accept(); });
  return Status::Ok();
}

Status Server::Shutdown(Deadline deadline) {
  Impl& m = *impl_;
  if (m.shut) return Status::Ok();
  m.shut = true;
  m.stopping.store(true);
  if (m.acceptor.joinable()) m.acceptor.join();
  ::close(m.listen_fd);
  // Connection threads finish the call they are in, then see the flag within a slice.
  std::list<std::thread> conns;
  {
    std::lock_guard<std::mutex> g(m.mu);
    conns.swap(m.connections);
  }
  for (std::thread& t : conns) t.join();
  (void)deadline;
  for (auto& [name, h] : m.resources) {
    if (h->resource.on_shutdown) h->resource.on_shutdown();
  }
  // The pool goes with its server (clients still attached keep their mappings).
  m.pool.reset();
  shm::Pool::Unlink(PoolName(m.id)).IgnoreError();
  return Status::Ok();
}

std::string Server::address() const { return "ipc://" + impl_->id; }

// ---- client ---------------------------------------------------------------------------------

struct Client::Impl {
  std::unique_ptr<shm::Pool> pool;  // the server's, for large values
  Contract contract;
  uint32_t resource = 0;
  std::unique_ptr<shm::Channel> req, rep;
  std::mutex mu;  // one call at a time on this connection
  uint64_t next_call = 1;
};

Client::Client(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Client::~Client() { Close().IgnoreError(); }

Result<std::unique_ptr<Client>> Client::Connect(const Contract& contract, const std::string& name,
                                                const std::string& address, Deadline deadline) {
  WEFT_RETURN_IF_ERROR(Validate(contract));
  if (address.rfind("ipc://", 0) != 0) return InvalidArgument("address '" + address + "': expected ipc://<id>");
  const std::string id = address.substr(6);
  if (!ValidId(id)) return InvalidArgument("address '" + address + "': bad server id");
  static std::atomic<uint64_t> counter{0};
  const std::string stem = "rpc-" + std::to_string(::getpid()) + "-" + std::to_string(counter.fetch_add(1));
  const std::string req_name = stem + "-req", rep_name = stem + "-rep";
  auto impl = std::make_unique<Impl>();
  impl->contract = contract;
  {
    auto req = shm::Channel::Create(req_name, {.capacity = kChannelBytes, .role = shm::Role::kProducer});
    if (!req.ok()) return req.status();
    impl->req = std::move(req).value();
    auto rep = shm::Channel::Create(rep_name, {.capacity = kChannelBytes, .role = shm::Role::kConsumer, .wait = CallWaits()});
    if (!rep.ok()) {
      shm::Channel::Unlink(req_name).IgnoreError();
      return rep.status();
    }
    impl->rep = std::move(rep).value();
  }
  auto forget = [&] {
    shm::Channel::Unlink(req_name).IgnoreError();
    shm::Channel::Unlink(rep_name).IgnoreError();
  };
  const int fd = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    forget();
    return ErrnoStatus(errno, "socket");
  }
  socklen_t len;
  sockaddr_un a = SocketAddress(id, &len);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), len) != 0) {
    const int err = errno;
    ::close(fd);
    forget();
    if (err == ECONNREFUSED || err == ENOENT) return NotFound("no server at " + address);
    return ErrnoStatus(err, "connect(" + address + ")");
  }
  auto pool = shm::Pool::Open(PoolName(id));
  if (!pool.ok()) {
    ::close(fd);
    forget();
    Status st = pool.status();
    return st.Annotate("server pool");
  }
  impl->pool = std::move(pool).value();
  const std::string hello = "hello\n" + name + "\n" + req_name + "\n" + rep_name + "\n" +
                            std::to_string(impl->pool->holder_slot()) + "\n" + contract.Canonical();
  if (::send(fd, hello.data(), hello.size(), MSG_NOSIGNAL) < 0) {
    const int err = errno;
    ::close(fd);
    forget();
    return ErrnoStatus(err, "send");
  }
  auto answer = RecvMessage(fd, deadline);
  ::close(fd);
  forget();  // the server has them open, or never will: the names are no longer needed
  if (!answer.ok()) return answer.status();
  std::vector<std::string> head;
  std::string_view rest;
  if (Lines(*answer, 2, &head, &rest) && head[0] == "error") {
    const int code = std::atoi(head[1].c_str());
    if (code <= 0 || code > static_cast<int>(Code::kOutOfRange)) return Corrupt("bad handshake answer");
    return Status(static_cast<Code>(code), std::string(rest));
  }
  if (head.size() != 2 || head[0] != "ok") return Corrupt("bad handshake answer from " + address);
  impl->resource = static_cast<uint32_t>(std::strtoul(head[1].c_str(), nullptr, 10));
  return std::unique_ptr<Client>(new Client(std::move(impl)));
}

Result<std::string> Client::Call(std::string_view method, const std::vector<ByteView>& args, Deadline deadline) {
  Impl& m = *impl_;
  std::lock_guard<std::mutex> g(m.mu);
  if (!m.req) return Status(Code::kClosed, "client is closed");
  const int idx = m.contract.Find(method);
  if (idx < 0) return InvalidArgument("contract " + m.contract.name + " has no method '" + std::string(method) + "'");
  // Large arguments go in blocks of the server's pool; ours to release once the call is over.
  std::vector<Value> values;
  std::vector<uint64_t> blocks;
  struct ReleaseBlocks {
    shm::Pool* pool;
    std::vector<uint64_t>* blocks;
    ~ReleaseBlocks() {
      for (uint64_t b : *blocks) pool->Release(b).IgnoreError();
    }
  } release_blocks{m.pool.get(), &blocks};
  for (ByteView a : args) {
    if (a.size() <= kInlineMax) {
      Value v;
      v.bytes = a;
      values.push_back(v);
      continue;
    }
    auto v = ToBlock(*m.pool, a);
    if (!v.ok()) return v.status();
    blocks.push_back(v->block);
    values.push_back(*v);
  }
  const uint64_t call = m.next_call++;
  WEFT_RETURN_IF_ERROR(SendFrame(*m.req, FrameType::kCall, call, deadline.is_never() ? 0 : deadline.at_ns(), m.resource,
                                 static_cast<uint32_t>(idx), values, deadline));
  for (;;) {
    auto rec = m.rep->Read(deadline);
    if (!rec.ok()) return rec.status();
    auto f = DecodeFrame(*rec);
    if (!f.ok()) {
      m.rep->Release().IgnoreError();
      return f.status();
    }
    if (f->header.call_id != call) {  // the late reply of an earlier call that timed out
      m.rep->Release().IgnoreError();
      continue;
    }
    Result<std::string> out = Status(Code::kInternal, "");
    if (f->type() == FrameType::kError) {
      out = internal::DecodeError(f->payload);
    } else if (f->type() == FrameType::kReply) {
      auto vals = DecodeValues(f->payload);
      if (!vals.ok()) {
        out = vals.status();
      } else if (vals->size() != 1) {
        out = Corrupt("a reply carries one value");
      } else if ((*vals)[0].in_block) {
        // The server handed us a hold on the block: read it, then let it go.
        auto b = FromBlock(*m.pool, (*vals)[0]);
        out = b.ok() ? Result<std::string>(std::string(reinterpret_cast<const char*>(b->data()), b->size()))
                     : Result<std::string>(b.status());
        m.pool->Release((*vals)[0].block).IgnoreError();
      } else {
        out = std::string(reinterpret_cast<const char*>((*vals)[0].bytes.data()), (*vals)[0].bytes.size());
      }
    } else {
      out = Corrupt("unexpected frame in reply");
    }
    m.rep->Release().IgnoreError();
    return out;
  }
}

Status Client::Close() {
  std::lock_guard<std::mutex> g(impl_->mu);
  impl_->req.reset();
  impl_->rep.reset();
  impl_->pool.reset();
  return Status::Ok();
}

}  // namespace weft::rpc
