// The ipc:// transport: a handshake over an abstract Unix socket, then a channel pair per
// client carrying frames (docs/formats/rpc-wire.md); and inproc://, the same API as a direct
// call in this process.
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <system_error>
#include <deque>
#include <list>
#include <mutex>
#include <thread>

#include "internal/handshake.h"
#include "weft/core/mutex.h"
#include "weft/rpc/scheduler.h"
#include "weft/rpc/rpc.h"
#include "weft/shm/channel.h"
#include "internal/blocks.h"
#include "weft/shm/pool.h"
#include "internal/wire.h"

namespace weft::rpc {
namespace {

using internal::DecodeFrame;
using internal::DecodeValues;
using internal::FrameType;
using internal::Value;
using internal::Blocks;

constexpr size_t kChannelBytes = size_t{4} << 20;
constexpr size_t kInlineMax = 64 << 10;  // values above this travel as blocks of the server's pool
constexpr int64_t kInitialCredit = 16;   // chunks a server may send before the client's first credit
constexpr uint32_t kCreditBatch = 8;     // the client grants credit this many chunks at a time

std::string PoolName(const std::string& id) { return "rpc." + id + ".pool"; }

shm::PoolOptions RpcPoolOptions() {
  shm::PoolOptions o;
  o.bytes = size_t{4} << 20;  // small blocks are rare here; large values get their own segments
  o.max_arenas = 4;
  o.max_block = size_t{16} << 30;
  return o;
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

// Encodes a frame straight into the channel's ring (no staging copy) and publishes it.
Status SendFrame(shm::Channel& ch, FrameType type, uint64_t call_id, int64_t deadline_ns, uint32_t resource,
                 uint32_t method, const std::vector<Value>& values, Deadline deadline, uint16_t flags = 0) {
  const size_t vsize = internal::ValuesSize(values);
  auto buf = ch.Reserve(sizeof(internal::FrameHeader) + vsize, deadline);
  if (!buf.ok()) return buf.status();
  internal::EncodeHeader(type, flags, resource, method, call_id, deadline_ns, static_cast<uint32_t>(vsize), buf->data());
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

// Cancel and credit frames: u32 count (credit: chunks the server may send), u32 0.
Status SendControl(shm::Channel& ch, FrameType type, uint64_t call_id, uint32_t count, Deadline deadline) {
  auto buf = ch.Reserve(sizeof(internal::FrameHeader) + 8, deadline);
  if (!buf.ok()) return buf.status();
  internal::EncodeHeader(type, 0, 0, 0, call_id, 0, 8, buf->data());
  std::memset(buf->data() + sizeof(internal::FrameHeader), 0, 8);
  std::memcpy(buf->data() + sizeof(internal::FrameHeader), &count, 4);
  return ch.Commit(sizeof(internal::FrameHeader) + 8);
}

uint32_t ControlCount(const internal::Frame& f) {
  uint32_t n = 0;
  if (f.payload.size() >= 4) std::memcpy(&n, f.payload.data(), 4);
  return n;
}

// Servers of this process by id, for inproc:// clients.
Mutex g_servers_mu;
std::map<std::string, Server::Impl*>& Servers() WEFT_REQUIRES(g_servers_mu) {
  static auto* servers = new std::map<std::string, Server::Impl*>;
  return *servers;
}

}  // namespace

// ---- server ---------------------------------------------------------------------------------

struct Hosted {
  uint32_t id = 0;
  Resource resource;
  std::vector<Handler> handlers;  // by method index
  Scheduler scheduler;
  // Set at Shutdown. An in-process call checks it once it holds its turn in the scheduler, and
  // Shutdown takes a write turn after setting it: so a call either finishes before Shutdown
  // goes on, or sees the flag and does not run.
  std::atomic<bool> closed{false};
};

// One accepted connection's thread; reaped (joined) by the acceptor once `done`.
struct Connection {
  std::thread thread;
  std::atomic<bool> done{false};
  bool handshaking = true;  // guarded by Server::Impl::mu (the analysis cannot name it here)
  uint32_t uid = 0;
};

// What the server knows of a connected client: verified, never taken from what it claims.
struct Peer {
  int32_t pid = 0;
  uint32_t uid = 0;
  int pool_slot = internal::kNoSlot;  // verified attached by `pid`; kNoSlot: no pool access
  uint64_t bit() const { return pool_slot == internal::kNoSlot ? 0 : uint64_t{1} << pool_slot; }
};

struct Server::Impl {
  std::string id;
  ServerOptions options;
  int listen_fd = -1;
  std::shared_ptr<Blocks> blocks;  // the server's pool: large values
  std::atomic<bool> stopping{false};
  Mutex mu;
  std::map<std::string, std::shared_ptr<Hosted>> resources WEFT_GUARDED_BY(mu);
  std::thread acceptor;
  std::list<Connection> connections WEFT_GUARDED_BY(mu);
  bool started WEFT_GUARDED_BY(mu) = false;
  bool shut WEFT_GUARDED_BY(mu) = false;

  std::shared_ptr<Hosted> Find(const std::string& name) {
    MutexLock g(mu);
    auto it = resources.find(name);
    return it == resources.end() ? nullptr : it->second;
  }

  void Accept();
  // Joins connection threads that have finished. mu held.
  void Reap() WEFT_REQUIRES(mu);
  // The verdict on a new connection before any thread is spent on it. mu held.
  Status Admit(const ucred& cred) const WEFT_REQUIRES(mu);
  void Serve(int fd, Connection* conn, ucred cred);
  Status Handshake(int fd, Connection* conn, const ucred& cred, Peer* peer, std::shared_ptr<Hosted>* hosted,
                   std::unique_ptr<shm::Channel>* req, std::unique_ptr<shm::Channel>* rep);
};

namespace {

// What a call's result or chunk becomes on the wire: the block it already lives in (held here:
// the client gets a hold of its own), a copy in a new block (large), or inline bytes.
Result<Value> WireValue(Blocks& blocks, ByteView bytes, const std::shared_ptr<Held>& in_place, uint64_t client_bit,
                        size_t inline_most) {
  Value v;
  if (client_bit == 0) {  // a client that does not map the pool gets everything inline
    if (bytes.size() > inline_most) {
      return TooLarge("a value of " + std::to_string(bytes.size()) + " bytes needs the server's shared pool, which "
                      "this client does not map (at most " + std::to_string(inline_most) + " bytes inline)");
    }
    v.bytes = bytes;
    return v;
  }
  if (in_place != nullptr) {
    uint64_t already = 0;
    WEFT_RETURN_IF_ERROR(blocks.Grant(in_place->block(), client_bit, &already));
    if (already == 0) {
      v.in_block = true;
      v.block = in_place->block();
      v.length = bytes.size();
      return v;
    }
    // The client holds this block already (an earlier result it still holds): granting gave it
    // nothing, so it gets a copy it can let go of on its own.
  } else if (bytes.size() <= kInlineMax) {
    v.bytes = bytes;
    return v;
  }
  auto copy = blocks.Copy(bytes);  // our hold ends with `copy`: the client's is then the only one
  if (!copy.ok()) return copy.status();
  WEFT_RETURN_IF_ERROR(blocks.Grant((*copy)->block(), client_bit, nullptr));
  v.in_block = true;
  v.block = (*copy)->block();
  v.length = bytes.size();
  return v;
}

// One call from an ipc:// client, served on its connection's thread.
class IpcCall final : public CallContext {
 public:
  // `granted`: blocks this connection granted to the client (by id: bytes), for its quota.
  IpcCall(Server::Impl& srv, Hosted& h, shm::Channel& req, shm::Channel& rep, const Peer& peer,
          std::map<uint64_t, uint64_t>* granted)
      : srv_(srv), h_(h), req_(req), rep_(rep), peer_(peer), client_bit_(peer.bit()), granted_(granted) {}

  // Runs the call in frame `f` (the record just read) and answers. Non-OK: drop the connection.
  Status Run(const internal::Frame& f);

  bool Cancelled() override {
    if (!cancelled_ && gone_.ok()) Poll(Deadline::Now());
    return cancelled_;
  }

  Status Yield(ByteView chunk) override {
    if (!stream_) return InvalidArgument("Yield from a method that does not stream");
    while (credits_ <= 0) {
      if (cancelled_) return Status(Code::kCancelled, "the client cancelled the stream");
      if (!gone_.ok()) return gone_;
      if (srv_.stopping.load()) return Status(Code::kClosed, "the server is shutting down");
      Poll(Deadline::AfterMs(kPollSliceMs));
    }
    if (cancelled_) return Status(Code::kCancelled, "the client cancelled the stream");
    auto v = Answer(chunk, srv_.blocks->Find(chunk.data(), chunk.size()));
    if (!v.ok()) return v.status();
    --credits_;
    return SendFrame(rep_, FrameType::kChunk, call_, 0, h_.id, method_, {*v}, Deadline::AfterMs(10'000));
  }

  Result<std::shared_ptr<Held>> Loan(size_t n) override { return srv_.blocks->Loan(n); }

  Status ReturnHeld(ByteView bytes) override {
    auto held = srv_.blocks->Find(bytes.data(), bytes.size());
    if (held == nullptr) return NotFound("ReturnHeld: the bytes do not start a block held by this server");
    result_hold_ = std::move(held);
    result_view_ = bytes;
    return Status::Ok();
  }

  std::shared_ptr<Held> ArgumentHold(size_t i) override { return i < arg_holds_.size() ? arg_holds_[i] : nullptr; }

 private:
  // Takes the frames that arrived for this call (cancel, credit) until `d`, stopping at a frame
  // that is not for it (the next call, garbage: put back for the connection loop).
  void Poll(Deadline d) {
    for (;;) {
      auto rec = req_.Read(d);
      if (!rec.ok()) {
        const Code c = rec.status().code();
        if (c != Code::kTimeout && c != Code::kWouldBlock) gone_ = rec.status();
        return;
      }
      auto f = DecodeFrame(*rec);
      if (!f.ok() || f->type() == FrameType::kCall) {
        req_.Unread().IgnoreError();
        return;
      }
      if (f->header.call_id == call_) {
        if (f->type() == FrameType::kCancel) cancelled_ = true;
        if (f->type() == FrameType::kCredit) credits_ += ControlCount(*f);
      }
      if (record_held_) {
        ++records_;  // released with the call's own record, which is older
      } else {
        req_.Release().IgnoreError();
      }
      if (cancelled_) return;
      d = Deadline::Now();  // after one frame, take only what is already there
    }
  }

  Result<Value> Execute(const internal::Frame& f, std::string* storage);
  // A result or chunk on the wire (WireValue), within the client's quota of held bytes.
  Result<Value> Answer(ByteView bytes, const std::shared_ptr<Held>& in_place);

  Server::Impl& srv_;
  Hosted& h_;
  shm::Channel& req_;
  shm::Channel& rep_;
  Peer peer_;
  uint64_t client_bit_;
  std::map<uint64_t, uint64_t>* granted_;
  uint64_t call_ = 0;
  uint32_t method_ = 0;
  bool stream_ = false;
  bool cancelled_ = false;
  bool record_held_ = true;  // the call's record (its inline arguments) is still borrowed
  size_t records_ = 1;       // records to release when the call ends
  int64_t credits_ = kInitialCredit;
  Status gone_;              // the client died or closed
  std::vector<std::shared_ptr<Held>> arg_holds_;
  std::shared_ptr<Held> result_hold_;
  ByteView result_view_;
};

Result<Value> IpcCall::Answer(ByteView bytes, const std::shared_ptr<Held>& in_place) {
  const size_t inline_most = rep_.max_record() - sizeof(internal::FrameHeader) - 64;
  if (client_bit_ != 0 && (in_place != nullptr || bytes.size() > kInlineMax)) {
    // Quota: what this client still holds of what we granted it (blocks it let go of, or
    // whose hold ended with its pool membership, no longer count).
    uint64_t held = 0;
    for (auto it = granted_->begin(); it != granted_->end();) {
      if (srv_.blocks->HeldBy(it->first, peer_.pool_slot)) {
        held += it->second;
        ++it;
      } else {
        it = granted_->erase(it);
      }
    }
    const uint64_t quota = srv_.options.max_held_bytes_per_client;
    if (held + bytes.size() > quota) {
      return Status(Code::kResourceExhausted, "the client holds " + std::to_string(held) + " bytes of results it has not "
                                 "released; a result of " + std::to_string(bytes.size()) +
                                 " bytes would pass its quota of " + std::to_string(quota));
    }
  }
  auto v = WireValue(*srv_.blocks, bytes, in_place, client_bit_, inline_most);
  if (v.ok() && v->in_block) (*granted_)[v->block] = bytes.size();
  return v;
}

Result<Value> IpcCall::Execute(const internal::Frame& f, std::string* storage) {
  const Contract& c = h_.resource.contract;
  if (f.header.method >= c.methods.size()) return InvalidArgument("no method " + std::to_string(f.header.method));
  const MethodSpec& m = c.methods[f.header.method];
  stream_ = m.stream;
  auto values = DecodeValues(f.payload);
  if (!values.ok()) return values.status();
  if (values->size() != m.params.size()) {
    return InvalidArgument("method '" + m.name + "' takes " + std::to_string(m.params.size()) + " arguments, got " +
                           std::to_string(values->size()));
  }
  std::vector<ByteView> args(values->size());
  std::vector<std::string> copies;  // a stream's inline arguments, so its record can go at once
  if (stream_) copies.reserve(values->size());
  for (size_t i = 0; i < values->size(); ++i) {
    const Value& v = (*values)[i];
    if (!v.in_block) {
      if (stream_) {
        copies.emplace_back(reinterpret_cast<const char*>(v.bytes.data()), v.bytes.size());
        args[i] = AsBytes(copies.back());
      } else {
        args[i] = v.bytes;
      }
      continue;
    }
    // Arguments in blocks are read in place; our hold keeps each alive while it is used. Only
    // blocks this client holds (it allocated them, or we granted them) are accepted: a peer
    // that names another's block by id gets kPermissionDenied, never its bytes.
    if (client_bit_ == 0) {
      return Status(Code::kPermissionDenied, "argument " + std::to_string(i) +
                                                 ": this client does not map the server's pool");
    }
    auto held = srv_.blocks->Take(v.block, v.length, client_bit_);
    if (!held.ok()) {
      Status st = held.status();
      return st.Annotate("argument " + std::to_string(i));
    }
    if (arg_holds_.empty()) arg_holds_.resize(values->size());  // only calls with block arguments pay
    arg_holds_[i] = *held;
    args[i] = (*held)->bytes();
  }
  if (stream_) {  // a stream reads credit frames as it goes: its record must not hold them up
    req_.Release(records_).IgnoreError();
    records_ = 0;
    record_held_ = false;
  }
  CallArgs a;
  a.method = static_cast<int>(f.header.method);
  a.args = args;
  a.deadline = f.header.deadline_ns == 0 ? Deadline::Never() : Deadline::At(f.header.deadline_ns);
  a.context = this;
  const std::function<bool()> cancelled = [this] { return Cancelled(); };
  if (!h_.scheduler.Enter(m.access, a.deadline, &cancelled)) {
    if (cancelled_) return Status(Code::kCancelled, "cancelled while waiting for the resource");
    return Status(Code::kTimeout, "resource busy past the call's deadline");
  }
  Result<std::string> r = h_.handlers[f.header.method](a);
  h_.scheduler.Leave(m.access);
  arg_holds_.clear();  // a handler that kept one keeps its block
  if (cancelled_) return Status(Code::kCancelled, "the client cancelled the call");
  if (!r.ok()) return r.status();
  if (stream_) return Value{};
  ByteView bytes = result_hold_ ? result_view_ : AsBytes(*r);
  auto out = Answer(bytes, result_hold_);
  if (out.ok() && !out->in_block) {
    // Inline bytes: keep them alive until the reply is written.
    if (result_hold_) {
      storage->assign(reinterpret_cast<const char*>(bytes.data()), bytes.size());
    } else {
      *storage = std::move(r).value();
    }
    out->bytes = AsBytes(*storage);
  }
  return out;
}

Status IpcCall::Run(const internal::Frame& f) {
  call_ = f.header.call_id;
  method_ = f.header.method;
  std::string storage;
  Result<Value> out = Execute(f, &storage);
  result_hold_.reset();
  if (records_ > 0) req_.Release(records_).IgnoreError();  // the arguments were read in place until here
  if (!gone_.ok()) {
    if (out.ok() && out->in_block) srv_.blocks->RecoverDead();
    return gone_;
  }
  const Deadline send_by = Deadline::AfterMs(10'000);
  if (!out.ok()) return SendError(rep_, call_, out.status(), send_by);
  if (stream_) return SendFrame(rep_, FrameType::kEnd, call_, 0, h_.id, method_, {}, send_by);
  return SendFrame(rep_, FrameType::kReply, call_, 0, h_.id, method_, {*out}, send_by);
}

}  // namespace

void Server::Impl::Reap() {
  for (auto it = connections.begin(); it != connections.end();) {
    if (it->done.load(std::memory_order_acquire)) {
      it->thread.join();
      it = connections.erase(it);
    } else {
      ++it;
    }
  }
}

Status Server::Impl::Admit(const ucred& cred) const {
  const uint32_t uid = static_cast<uint32_t>(cred.uid);
  const bool allowed = uid == static_cast<uint32_t>(::geteuid()) ||
                       std::find(options.allow_uids.begin(), options.allow_uids.end(), uid) != options.allow_uids.end();
  if (!allowed) {
    return Status(Code::kPermissionDenied, "uid " + std::to_string(uid) + " may not call ipc://" + id +
                                               " (only its own uid and ServerOptions::allow_uids)");
  }
  size_t pending = 0, of_uid = 0;
  for (const Connection& c : connections) {
    if (c.done.load(std::memory_order_relaxed)) continue;
    pending += c.handshaking ? 1 : 0;
    of_uid += c.uid == uid ? 1 : 0;
  }
  if (connections.size() >= options.max_clients) {
    return Status(Code::kResourceExhausted, "ipc://" + id + " serves " + std::to_string(options.max_clients) + " clients already");
  }
  if (pending >= options.max_pending) {
    return Status(Code::kResourceExhausted, "ipc://" + id + " has " + std::to_string(pending) + " handshakes in progress");
  }
  if (of_uid >= options.max_clients_per_uid) {
    return Status(Code::kResourceExhausted, "uid " + std::to_string(uid) + " has " + std::to_string(of_uid) +
                                   " connections to ipc://" + id + " already");
  }
  return Status::Ok();
}

void Server::Impl::Accept() {
  // A refused connection is answered at once but closed only once its hello has arrived (or
  // after a second): closing a socket with an unread message resets it, and the client would
  // read the reset instead of the reason.
  constexpr size_t kMostRefusing = 64;
  std::vector<pollfd> polled;
  std::vector<int64_t> close_at;  // for polled[1..]
  auto refuse = [&](int fd, const Status& s) {
    internal::SendMessage(fd, internal::EncodeRefusal(s), {}).IgnoreError();
    if (polled.size() > kMostRefusing) {
      ::close(fd);
      return;
    }
    polled.push_back({fd, POLLIN, 0});
    close_at.push_back(MonotonicNs() + 1'000'000'000);
  };
  polled.push_back({listen_fd, POLLIN, 0});
  close_at.push_back(0);
  while (!stopping.load()) {
    for (pollfd& p : polled) p.revents = 0;
    ::poll(polled.data(), polled.size(), kPollSliceMs);
    const int64_t now = MonotonicNs();
    for (size_t i = polled.size(); i-- > 1;) {
      if (polled[i].revents == 0 && now < close_at[i]) continue;
      if (polled[i].revents & POLLIN) {  // take the hello off the queue, and any descriptors it brought
        std::vector<int> fds;
        (void)internal::RecvMessage(polled[i].fd, Deadline::Now(), &fds, 2);
        for (int f : fds) ::close(f);
      }
      ::close(polled[i].fd);
      polled.erase(polled.begin() + static_cast<std::ptrdiff_t>(i));
      close_at.erase(close_at.begin() + static_cast<std::ptrdiff_t>(i));
    }
    const bool ready = (polled[0].revents & POLLIN) != 0;
    MutexLock g(mu);
    Reap();
    if (!ready) continue;
    const int fd = ::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    ucred cred{};
    socklen_t len = sizeof(cred);
    if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
      refuse(fd, ErrnoStatus(errno, "SO_PEERCRED"));
      continue;
    }
    Status admitted = Admit(cred);
    if (!admitted.ok()) {
      refuse(fd, admitted);
      continue;
    }
    Connection& c = connections.emplace_back();
    c.uid = static_cast<uint32_t>(cred.uid);
    try {
      c.thread = std::thread([this, fd, conn = &c, cred] { Serve(fd, conn, cred); });
    } catch (const std::system_error&) {  // no thread to be had: refuse this one, keep serving
      connections.pop_back();
      refuse(fd, Status(Code::kResourceExhausted, "ipc://" + id + " could not start a thread for this client"));
    }
  }
  for (size_t i = 1; i < polled.size(); ++i) ::close(polled[i].fd);
}

// Verifies a new client and opens its channels. Nothing the client says is taken on trust:
// its uid and pid come from the kernel (SO_PEERCRED), its pool slot is checked against that
// pid, and its channels must be sealed memory of exactly the size the server expects.
Status Server::Impl::Handshake(int fd, Connection* conn, const ucred& cred, Peer* peer,
                               std::shared_ptr<Hosted>* hosted, std::unique_ptr<shm::Channel>* req,
                               std::unique_ptr<shm::Channel>* rep) {
  std::vector<int> fds;
  auto msg = internal::RecvMessage(fd, Deadline::AfterMs(options.handshake_timeout_ms), &fds, 2);
  if (!msg.ok()) return msg.status();
  struct Closer {
    std::vector<int>& fds;
    ~Closer() {
      for (int f : fds) ::close(f);
    }
  } closer{fds};
  auto hello = internal::ParseHello(*msg);
  if (!hello.ok()) return hello.status();
  if (fds.size() != 2) return Corrupt("handshake: expected the request and reply channels as two descriptors");
  peer->pid = cred.pid;
  peer->uid = static_cast<uint32_t>(cred.uid);
  if (hello->pool_slot != internal::kNoSlot) {
    if (!blocks->HolderIs(hello->pool_slot, cred.pid)) {
      return Status(Code::kPermissionDenied, "handshake: pool slot " + std::to_string(hello->pool_slot) +
                                                 " is not held by the connecting process");
    }
    peer->pool_slot = hello->pool_slot;
  }
  *hosted = Find(hello->resource);
  if (*hosted == nullptr) return NotFound("no resource named '" + hello->resource + "' at ipc://" + id);
  auto client_contract = Contract::Parse(hello->contract);
  if (!client_contract.ok()) return client_contract.status();
  WEFT_RETURN_IF_ERROR(Compare((*hosted)->resource.contract, *client_contract));
  for (int i = 0; i < 2; ++i) {
    struct stat st {};
    if (::fstat(fds[i], &st) != 0 || static_cast<size_t>(st.st_size) > kChannelBytes + (64 << 10)) {
      return InvalidArgument("handshake: a channel of an unexpected size");
    }
  }
  auto r = shm::Channel::OpenSealed(fds[0], shm::Role::kConsumer, CallWaits());
  if (!r.ok()) return r.status();
  auto p = shm::Channel::OpenSealed(fds[1], shm::Role::kProducer);
  if (!p.ok()) return p.status();
  *req = std::move(r).value();
  *rep = std::move(p).value();
  {
    MutexLock g(mu);
    conn->handshaking = false;
  }
  return Status::Ok();
}

// One connected client: the handshake, then its calls until it leaves, dies or we stop.
void Server::Impl::Serve(int fd, Connection* conn, ucred cred) {
  Peer peer;
  std::shared_ptr<Hosted> h;
  std::unique_ptr<shm::Channel> req, rep;
  Status hs = Handshake(fd, conn, cred, &peer, &h, &req, &rep);
  if (!hs.ok()) {
    internal::SendMessage(fd, internal::EncodeRefusal(hs), {}).IgnoreError();
    ::close(fd);
    conn->done.store(true, std::memory_order_release);
    return;
  }
  Status sent = internal::SendMessage(fd, internal::EncodeAccept(h->id, h->resource.contract.Canonical()), {});
  ::close(fd);  // from here the channels carry everything, and tell us if the client dies
  std::map<uint64_t, uint64_t> granted;
  while (sent.ok() && !stopping.load()) {
    auto rec = req->Read(Deadline::AfterMs(kPollSliceMs));
    if (!rec.ok()) {
      if (rec.status().code() == Code::kTimeout || rec.status().code() == Code::kWouldBlock) continue;
      // The client died or closed: what it held in the pool (arguments it wrote, results it
      // had not released) comes back.
      if (rec.status().code() == Code::kPeerDead) blocks->RecoverDead();
      break;
    }
    auto f = DecodeFrame(*rec);
    if (!f.ok()) break;  // a client that sends garbage loses its connection, and only it
    if (f->type() != FrameType::kCall) {
      req->Release().IgnoreError();
      continue;  // cancel and credit frames of calls already answered
    }
    IpcCall call(*this, *h, *req, *rep, peer, &granted);
    Status s = call.Run(*f);
    if (!s.ok()) {
      if (s.code() == Code::kPeerDead) blocks->RecoverDead();
      break;
    }
  }
  conn->done.store(true, std::memory_order_release);
}

Server::Server(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Server::~Server() { Shutdown(Deadline::AfterMs(10'000)).IgnoreError(); }

Result<std::unique_ptr<Server>> Server::Create(const std::string& id, const ServerOptions& options) {
  if (!ValidId(id)) return InvalidArgument("server id '" + id + "': 1 to 64 letters, digits, - _ .");
  if (options.max_clients == 0 || options.max_pending == 0 || options.max_clients_per_uid == 0) {
    return InvalidArgument("server options: max_clients, max_pending and max_clients_per_uid must be at least 1");
  }
  auto impl = std::make_unique<Impl>();
  impl->id = id;
  impl->options = options;
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
  impl->blocks = Blocks::Make(std::move(pool).value());
  impl->blocks->RecoverDead();
  {
    MutexLock g(g_servers_mu);
    Servers()[id] = impl.get();
  }
  return std::unique_ptr<Server>(new Server(std::move(impl)));
}

Status Server::Register(const std::string& name, Resource resource) {
  if (name.empty() || name.size() > 128) return InvalidArgument("resource name must be 1 to 128 bytes");
  WEFT_RETURN_IF_ERROR(Validate(resource.contract));
  auto h = std::make_shared<Hosted>();
  for (const MethodSpec& m : resource.contract.methods) {
    auto it = resource.handlers.find(m.name);
    if (it == resource.handlers.end() || !it->second) return InvalidArgument("no handler for method '" + m.name + "'");
    h->handlers.push_back(it->second);
  }
  MutexLock g(impl_->mu);
  if (impl_->shut) return Status(Code::kClosed, "server ipc://" + impl_->id + " is shut down; register before Shutdown");
  if (impl_->resources.count(name) != 0) return Status(Code::kAlreadyExists, "resource '" + name + "' is registered");
  h->id = static_cast<uint32_t>(impl_->resources.size() + 1);
  h->resource = std::move(resource);
  impl_->resources[name] = std::move(h);
  return Status::Ok();
}

Status Server::Start() {
  MutexLock g(impl_->mu);
  if (impl_->shut) return Status(Code::kClosed, "server ipc://" + impl_->id + " is shut down");
  if (impl_->started) return Status::Ok();
  impl_->started = true;
  impl_->acceptor = std::thread([this] { impl_->Accept(); });
  return Status::Ok();
}

Status Server::Shutdown(Deadline deadline) {
  Impl& m = *impl_;
  {
    MutexLock g(m.mu);  // Register reads it under the same lock
    if (m.shut) return Status::Ok();
    m.shut = true;
  }
  {
    MutexLock g(g_servers_mu);
    Servers().erase(m.id);
  }
  m.stopping.store(true);
  if (m.acceptor.joinable()) m.acceptor.join();
  ::close(m.listen_fd);
  // Connection threads finish the call they are in, then see the flag within a slice.
  std::list<Connection> conns;
  {
    MutexLock g(m.mu);
    conns.swap(m.connections);
  }
  for (Connection& c : conns) c.thread.join();
  std::map<std::string, std::shared_ptr<Hosted>> resources;  // Register refuses from now on
  {
    MutexLock g(m.mu);
    resources = m.resources;
  }
  for (auto& [name, h] : resources) {
    h->closed.store(true);
    // In-process calls that got in before the flag finish first.
    if (h->scheduler.Enter(Access::kWrite, deadline)) h->scheduler.Leave(Access::kWrite);
  }
  for (auto& [name, h] : resources) {
    if (h->resource.on_shutdown) h->resource.on_shutdown();
  }
  // The pool goes with its server (clients still attached, and holds still alive here, keep
  // their mappings).
  m.blocks.reset();
  shm::Pool::Unlink(PoolName(m.id)).IgnoreError();
  return Status::Ok();
}

std::string Server::address() const { return "ipc://" + impl_->id; }

Result<std::shared_ptr<Held>> Server::Loan(size_t n) {
  if (!impl_->blocks) return Status(Code::kClosed, "the server is shut down");
  return impl_->blocks->Loan(n);
}

HoldStats Server::hold_stats() const { return impl_->blocks ? impl_->blocks->stats() : HoldStats{}; }

// ---- client ---------------------------------------------------------------------------------

namespace {

// A call made in this process: the handler runs on the caller's thread.
class InprocCall final : public CallContext {
 public:
  // `blocks` must outlive the call (the caller's reference keeps it).
  InprocCall(Blocks* blocks, const CancelToken* cancel) : blocks_(blocks), cancel_(cancel) {}
  bool Cancelled() override { return cancel_ != nullptr && cancel_->cancelled(); }
  Status Yield(ByteView chunk) override {
    if (!sink_) return InvalidArgument("Yield from a method that does not stream");
    return sink_(chunk);
  }
  Result<std::shared_ptr<Held>> Loan(size_t n) override { return blocks_->Loan(n); }
  Status ReturnHeld(ByteView bytes) override {
    held_ = blocks_->Find(bytes.data(), bytes.size());
    if (held_ == nullptr) return NotFound("ReturnHeld: the bytes do not start a block held by this server");
    view_ = bytes;
    return Status::Ok();
  }
  std::shared_ptr<Held> ArgumentHold(size_t) override { return nullptr; }

  std::function<Status(ByteView)> sink_;  // streams: takes each chunk
  std::shared_ptr<Held> held_;
  ByteView view_;

 private:
  Blocks* blocks_;
  const CancelToken* cancel_;
};

}  // namespace

struct Client::Impl {
  Contract contract;
  std::shared_ptr<Blocks> blocks;  // the server's pool, for large values
  Mutex mu;                        // one call at a time on this connection
  bool stream_open WEFT_GUARDED_BY(mu) = false;  // a Stream owns the connection until it ends
  // ipc://
  uint32_t resource = 0;
  std::unique_ptr<shm::Channel> req, rep;  // used under mu (Close interrupts them from anywhere)
  uint64_t next_call WEFT_GUARDED_BY(mu) = 1;
  std::map<uint64_t, std::vector<std::shared_ptr<Held>>> arg_holds WEFT_GUARDED_BY(mu);  // by call, until its answer
  // inproc://
  std::shared_ptr<Hosted> local;

  Result<int> Method(std::string_view method, bool stream) const {
    const int idx = contract.Find(method);
    if (idx < 0) return InvalidArgument("contract " + contract.name + " has no method '" + std::string(method) + "'");
    if (contract.methods[idx].stream != stream) {
      return InvalidArgument("method '" + std::string(method) + (stream ? "' does not stream: call it" : "' streams: open it as a stream"));
    }
    return idx;
  }
  Result<uint64_t> Send(int idx, const std::vector<ByteView>& args, Deadline deadline, bool hold) WEFT_REQUIRES(mu);
  // Reads frames until one for `call`; frames of earlier calls (timed out, cancelled) are dropped
  // and any hold they carried released. Cancels the call if the token says so.
  Result<internal::Frame> Await(uint64_t call, const CallOptions& o) WEFT_REQUIRES(mu);
  // A failure of the connection itself (its channels timing out, the server dying or closing)
  // told in the caller's terms: the method, the resource and the server, not our channels.
  Status Explain(const Status& s, int idx) const {
    const std::string call = contract.methods[idx].name + "() on " + where;
    switch (s.code()) {
      case Code::kTimeout:
        return Status(Code::kTimeout, "no answer to " + call + " before the deadline");
      case Code::kPeerDead:
        return Status(Code::kPeerDead, "the server of " + call + " died");
      case Code::kClosed:
        return Status(Code::kClosed, "the server of " + call + " closed the connection");
      default:
        return s;
    }
  }
  std::string where;  // "resource 'counter' at ipc://calc"
  Result<Reply> ToReply(const internal::Frame& f, bool hold);
  void Drop(const internal::Frame& f) WEFT_REQUIRES(mu);
  Result<Reply> CallLocal(int idx, const std::vector<ByteView>& args, const CallOptions& o);
  // The handler's own result (the caller looks at ctx for a held one).
  Result<std::string> RunLocal(int idx, const std::vector<ByteView>& args, const CallOptions& o, InprocCall& ctx);
};

Result<uint64_t> Client::Impl::Send(int idx, const std::vector<ByteView>& args, Deadline deadline, bool hold) {
  // Large arguments go in blocks of the server's pool: as they are if they start a block we
  // hold (a loan, a held result), else copied into a new one. Our holds stay until the call's
  // answer arrives, even if we stop waiting for it: the server takes its own hold when it
  // reads the call, which may be later.
  std::vector<Value> values(args.size());
  std::vector<std::shared_ptr<Held>> keep;
  for (size_t i = 0; i < args.size(); ++i) {
    const ByteView a = args[i];
    if (a.size() <= kInlineMax || blocks == nullptr) {  // without the pool, inline (the channel checks the size)
      values[i].bytes = a;
      continue;
    }
    std::shared_ptr<Held> h = blocks->Find(a.data(), a.size());
    if (h == nullptr) {
      auto copy = blocks->Copy(a);
      if (!copy.ok()) return copy.status();
      h = *std::move(copy);
    }
    values[i] = Value{true, {}, h->block(), a.size()};
    keep.push_back(std::move(h));
  }
  const uint64_t call = next_call++;
  WEFT_RETURN_IF_ERROR(SendFrame(*req, FrameType::kCall, call, deadline.is_never() ? 0 : deadline.at_ns(), resource,
                                 static_cast<uint32_t>(idx), values, deadline, hold ? internal::kFlagHold : 0));
  if (!keep.empty()) arg_holds[call] = std::move(keep);
  return call;
}

Result<internal::Frame> Client::Impl::Await(uint64_t call, const CallOptions& o) {
  for (;;) {
    if (o.cancel != nullptr && o.cancel->cancelled()) {
      SendControl(*req, FrameType::kCancel, call, 0, Deadline::AfterMs(1000)).IgnoreError();
      return Status(Code::kCancelled, "the call was cancelled");
    }
    Deadline d = o.deadline;
    if (o.cancel != nullptr) {  // look at the token every millisecond
      const Deadline slice = Deadline::AfterMs(1);
      if (d.is_never() || slice.at_ns() < d.at_ns()) d = slice;
    }
    auto rec = rep->Read(d);
    if (!rec.ok()) {
      const Code c = rec.status().code();
      if ((c == Code::kTimeout || c == Code::kWouldBlock) && o.cancel != nullptr && !o.deadline.Expired()) continue;
      return rec.status();
    }
    auto f = DecodeFrame(*rec);
    if (!f.ok()) {
      rep->Release().IgnoreError();
      return f.status();
    }
    if (f->header.call_id != call) {  // the answer of an earlier call that timed out or was cancelled
      Drop(*f);
      rep->Release().IgnoreError();
      continue;
    }
    return f;  // the caller releases the record
  }
}

void Client::Impl::Drop(const internal::Frame& f) {
  if (blocks != nullptr && (f.type() == FrameType::kReply || f.type() == FrameType::kChunk)) {
    auto vals = DecodeValues(f.payload);
    if (vals.ok()) {
      for (const Value& v : *vals) {
        if (v.in_block) blocks->Release(v.block).IgnoreError();  // the hold the server granted us
      }
    }
  }
  if (f.type() != FrameType::kChunk) arg_holds.erase(f.header.call_id);
}

Result<Reply> Client::Impl::ToReply(const internal::Frame& f, bool hold) {
  if (f.type() == FrameType::kError) return internal::DecodeError(f.payload);
  if (f.type() != FrameType::kReply && f.type() != FrameType::kChunk) return Corrupt("unexpected frame in reply");
  auto vals = DecodeValues(f.payload);
  if (!vals.ok()) return vals.status();
  if (vals->size() != 1) {
    for (const Value& v : *vals) {
      if (v.in_block && blocks != nullptr) blocks->Release(v.block).IgnoreError();
    }
    return Corrupt("a reply carries one value");
  }
  const Value& v = (*vals)[0];
  Reply r;
  if (!v.in_block) {
    r.inline_bytes.assign(reinterpret_cast<const char*>(v.bytes.data()), v.bytes.size());
    return r;
  }
  if (blocks == nullptr) return Corrupt("a reply names a pool block, but this client does not map the pool");
  auto h = blocks->Adopt(v.block, v.length);  // the server granted us a hold on it
  if (!h.ok()) return h.status();
  if (hold) {
    r.held = *std::move(h);
    r.held_length = v.length;
  } else {
    r.inline_bytes.assign(reinterpret_cast<const char*>((*h)->bytes().data()), v.length);
  }
  return r;
}

Result<Reply> Client::Impl::CallLocal(int idx, const std::vector<ByteView>& args, const CallOptions& o) {
  InprocCall ctx(blocks.get(), o.cancel);
  Result<std::string> r = RunLocal(idx, args, o, ctx);
  if (!r.ok()) return r.status();
  Reply rep;
  if (ctx.held_ != nullptr) {
    if (o.hold) {
      rep.held = std::move(ctx.held_);
      rep.held_length = ctx.view_.size();
    } else {
      rep.inline_bytes.assign(reinterpret_cast<const char*>(ctx.view_.data()), ctx.view_.size());
    }
  } else {
    rep.inline_bytes = std::move(r).value();
  }
  return rep;
}

Result<std::string> Client::Impl::RunLocal(int idx, const std::vector<ByteView>& args, const CallOptions& o,
                                           InprocCall& ctx) {
  Hosted& h = *local;
  const MethodSpec& ms = contract.methods[idx];
  if (args.size() != ms.params.size()) {
    return InvalidArgument("method '" + ms.name + "' takes " + std::to_string(ms.params.size()) + " arguments, got " +
                           std::to_string(args.size()));
  }
  CallArgs a;
  a.method = idx;
  a.args = args;
  a.deadline = o.deadline;
  a.context = &ctx;
  std::function<bool()> cancelled;
  if (o.cancel != nullptr) cancelled = [&o] { return o.cancel->cancelled(); };
  if (!h.scheduler.Enter(ms.access, o.deadline, o.cancel != nullptr ? &cancelled : nullptr)) {
    if (o.cancel != nullptr && o.cancel->cancelled()) return Status(Code::kCancelled, "the call was cancelled");
    return Status(Code::kTimeout, "resource busy past the call's deadline");
  }
  if (h.closed.load(std::memory_order_relaxed)) {  // ordered by the scheduler's turn (see Hosted)
    h.scheduler.Leave(ms.access);
    return Status(Code::kClosed, "the resource's server shut down");
  }
  Result<std::string> r = h.handlers[idx](a);
  h.scheduler.Leave(ms.access);
  if (o.cancel != nullptr && o.cancel->cancelled()) return Status(Code::kCancelled, "the call was cancelled");
  return r;
}

Client::Client(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Client::~Client() { Close().IgnoreError(); }

Result<std::unique_ptr<Client>> Client::Connect(const Contract& contract, const std::string& name,
                                                const std::string& address, Deadline deadline) {
  WEFT_RETURN_IF_ERROR(Validate(contract));
  if (address.rfind("inproc://", 0) == 0) {
    const std::string id = address.substr(9);
    MutexLock g(g_servers_mu);
    auto it = Servers().find(id);
    if (it == Servers().end()) return NotFound("no server " + address + " in this process");
    std::shared_ptr<Hosted> h = it->second->Find(name);
    if (h == nullptr) return NotFound("no resource named '" + name + "' at " + address);
    WEFT_RETURN_IF_ERROR(Compare(h->resource.contract, contract));
    auto impl = std::make_unique<Impl>();
    impl->contract = contract;
    impl->local = std::move(h);
    impl->blocks = it->second->blocks;
    return std::unique_ptr<Client>(new Client(std::move(impl)));
  }
  if (address.rfind("ipc://", 0) != 0) return InvalidArgument("address '" + address + "': expected ipc://<id> or inproc://<id>");
  const std::string id = address.substr(6);
  if (!ValidId(id)) return InvalidArgument("address '" + address + "': bad server id");
  static std::atomic<uint64_t> counter{0};
  const std::string stem = "rpc-" + std::to_string(::getpid()) + "-" + std::to_string(counter.fetch_add(1));
  auto impl = std::make_unique<Impl>();
  impl->contract = contract;
  impl->where = "resource '" + name + "' at " + address;
  // The channels are sealed memory handed to the server as descriptors: neither side can
  // shrink what the other maps, and the server opens nothing by a name we chose.
  {
    auto req = shm::Channel::CreateSealed(stem + "-req", {.capacity = kChannelBytes, .role = shm::Role::kProducer});
    if (!req.ok()) return req.status();
    impl->req = std::move(req).value();
    auto rep = shm::Channel::CreateSealed(stem + "-rep",
                                          {.capacity = kChannelBytes, .role = shm::Role::kConsumer, .wait = CallWaits()});
    if (!rep.ok()) return rep.status();
    impl->rep = std::move(rep).value();
  }
  const int fd = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  if (fd < 0) return ErrnoStatus(errno, "socket");
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  socklen_t len;
  sockaddr_un a = SocketAddress(id, &len);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), len) != 0) {
    const int err = errno;
    if (err == ECONNREFUSED || err == ENOENT) return NotFound("no server at " + address);
    return ErrnoStatus(err, "connect(" + address + ")");
  }
  // A client of another uid (admitted by the server's policy) cannot map the server's pool:
  // it goes on without it, and every value travels inline.
  auto pool = shm::Pool::Open(PoolName(id));
  if (pool.ok()) {
    impl->blocks = Blocks::Make(std::move(pool).value());
  } else if (pool.status().code() != Code::kPermissionDenied) {
    Status st = pool.status();
    return st.Annotate("server pool");
  }
  const int slot = impl->blocks ? impl->blocks->holder_slot() : internal::kNoSlot;
  Status sent = internal::SendMessage(fd, internal::EncodeHello(name, slot, contract.Canonical()),
                                      {impl->req->fd(), impl->rep->fd()});
  // A server that refused us at once (policy, caps) has answered and closed before our hello:
  // its answer says why better than the failed send.
  std::vector<int> fds;
  auto answer = internal::RecvMessage(fd, sent.ok() ? deadline : Deadline::AfterMs(100), &fds, 0);
  if (!answer.ok()) return sent.ok() ? answer.status() : sent;
  auto resource = internal::ParseAnswer(*answer);
  if (!resource.ok()) return resource.status();
  impl->resource = *resource;
  return std::unique_ptr<Client>(new Client(std::move(impl)));
}

Result<Reply> Client::Invoke(std::string_view method, const std::vector<ByteView>& args, const CallOptions& options) {
  Impl& m = *impl_;
  auto idx = m.Method(method, false);
  if (!idx.ok()) return idx.status();
  if (m.local != nullptr) return m.CallLocal(*idx, args, options);  // calls run side by side, ordered by the scheduler
  MutexLock g(m.mu);
  if (!m.req) return Status(Code::kClosed, "client is closed");
  if (m.stream_open) return Status(Code::kBusy, "a stream is open on this connection: finish or cancel it first");
  auto call = m.Send(*idx, args, options.deadline, options.hold);
  if (!call.ok()) return m.Explain(call.status(), *idx);
  auto f = m.Await(*call, options);
  if (!f.ok()) return m.Explain(f.status(), *idx);
  Result<Reply> r = m.ToReply(*f, options.hold);
  m.arg_holds.erase(*call);
  m.rep->Release().IgnoreError();
  return r;
}

Result<std::string> Client::Call(std::string_view method, const std::vector<ByteView>& args, Deadline deadline) {
  CallOptions o;
  o.deadline = deadline;
  Impl& m = *impl_;
  if (m.local != nullptr) {  // the handler's string itself, without a Reply around it
    const int idx = m.contract.Find(method);
    if (idx < 0 || m.contract.methods[idx].stream) return m.Method(method, false).status();
    InprocCall ctx(m.blocks.get(), nullptr);
    Result<std::string> r = m.RunLocal(idx, args, o, ctx);
    if (r.ok() && ctx.held_ != nullptr) return std::string(reinterpret_cast<const char*>(ctx.view_.data()), ctx.view_.size());
    return r;
  }
  auto r = Invoke(method, args, o);
  if (!r.ok()) return r.status();
  return std::move(r->inline_bytes);
}

Result<std::shared_ptr<Held>> Client::Loan(size_t n) {
  if (!impl_->req && !impl_->local) return Status(Code::kClosed, "client is closed");
  if (!impl_->blocks) return Status(Code::kPermissionDenied, "this client does not map the server's pool");
  return impl_->blocks->Loan(n);
}

HoldStats Client::hold_stats() const { return impl_->blocks ? impl_->blocks->stats() : HoldStats{}; }

bool Client::shares_pool() const { return impl_->blocks != nullptr; }

Status Client::Close() {
  MutexLock g(impl_->mu);
  impl_->req.reset();
  impl_->rep.reset();
  impl_->arg_holds.clear();
  impl_->blocks.reset();  // the pool stays mapped while holds handed out are alive
  impl_->local.reset();
  return Status::Ok();
}

// ---- streams --------------------------------------------------------------------------------

struct Stream::Impl {
  Client::Impl* client = nullptr;
  CallOptions options;
  int method = 0;  // its index in the contract
  bool done = false;
  // ipc://
  uint64_t call = 0;
  uint32_t consumed = 0;  // chunks taken since the last credit
  // inproc://: the handler runs on a thread of its own, under the same credit as over ipc://.
  std::thread worker;
  Mutex mu;
  CondVar cv;
  std::deque<std::string> chunks WEFT_GUARDED_BY(mu);
  int64_t credits WEFT_GUARDED_BY(mu) = kInitialCredit;
  bool finished WEFT_GUARDED_BY(mu) = false;
  Status final WEFT_GUARDED_BY(mu);
  CancelToken stop;

  void End() {
    if (done) return;
    done = true;
    if (worker.joinable()) {
      stop.Cancel();
      {
        // Under the lock: the worker checks the token and sleeps under it, so the wake cannot
        // fall between its check and its sleep.
        MutexLock g(mu);
        cv.NotifyAll();
      }
      worker.join();
      return;
    }
    MutexLock g(client->mu);
    client->stream_open = false;
  }
};

Stream::Stream(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Stream::~Stream() { Cancel(); }

void Stream::Cancel() {
  Impl& s = *impl_;
  if (s.done) return;
  if (!s.worker.joinable() && s.client->req) {
    MutexLock g(s.client->mu);
    SendControl(*s.client->req, FrameType::kCancel, s.call, 0, Deadline::AfterMs(1000)).IgnoreError();
  }
  s.End();
}

Result<std::optional<Reply>> Stream::Next(Deadline deadline) {
  Impl& s = *impl_;
  if (s.done) return std::optional<Reply>();
  CallOptions o = s.options;
  if (deadline.at_ns() < o.deadline.at_ns()) o.deadline = deadline;
  if (s.worker.joinable()) {  // in-process
    MutexLock lk(s.mu);
    while (s.chunks.empty() && !s.finished) {
      if (o.cancel != nullptr && o.cancel->cancelled()) {
        lk.Unlock();
        Cancel();
        return Status(Code::kCancelled, "the stream was cancelled");
      }
      if (o.deadline.Expired()) return Status(Code::kTimeout, "no chunk before the deadline");
      s.cv.WaitForNs(lk, 1'000'000);
    }
    if (!s.chunks.empty()) {
      Reply r;
      r.inline_bytes = std::move(s.chunks.front());
      s.chunks.pop_front();
      if (++s.consumed >= kCreditBatch) {
        s.credits += s.consumed;
        s.consumed = 0;
        s.cv.NotifyAll();
      }
      return std::optional<Reply>(std::move(r));
    }
    Status final = s.final;
    lk.Unlock();
    s.End();
    if (!final.ok()) return final;
    return std::optional<Reply>();
  }
  Client::Impl& m = *s.client;
  Result<std::optional<Reply>> out = std::optional<Reply>();
  {
    MutexLock g(m.mu);
    if (!m.rep) return Status(Code::kClosed, "client is closed");
    auto f = m.Await(s.call, o);
    if (!f.ok()) {
      if (f.status().code() == Code::kCancelled) s.done = true;
      if (s.done || f.status().code() == Code::kPeerDead || f.status().code() == Code::kClosed) {
        s.done = true;
        m.stream_open = false;
      }
      return m.Explain(f.status(), s.method);
    }
    if (f->type() == FrameType::kChunk) {
      auto r = m.ToReply(*f, o.hold);
      m.rep->Release().IgnoreError();
      if (!r.ok()) return r.status();
      if (++s.consumed >= kCreditBatch) {
        Status c = SendControl(*m.req, FrameType::kCredit, s.call, s.consumed, o.deadline);
        if (!c.ok()) return c;
        s.consumed = 0;
      }
      return std::optional<Reply>(*std::move(r));
    }
    if (f->type() == FrameType::kEnd) {
      out = std::optional<Reply>();
    } else if (f->type() == FrameType::kError) {
      out = internal::DecodeError(f->payload);
    } else {
      out = Corrupt("unexpected frame in a stream");
    }
    m.arg_holds.erase(s.call);
    m.rep->Release().IgnoreError();
    m.stream_open = false;
  }
  s.done = true;
  return out;
}

Result<std::unique_ptr<Stream>> Client::OpenStream(std::string_view method, const std::vector<ByteView>& args,
                                                   const CallOptions& options) {
  Impl& m = *impl_;
  auto idx = m.Method(method, true);
  if (!idx.ok()) return idx.status();
  auto s = std::make_unique<Stream::Impl>();
  s->client = &m;
  s->options = options;
  s->method = *idx;
  if (m.local != nullptr) {
    Hosted& h = *m.local;
    const MethodSpec& ms = m.contract.methods[*idx];
    if (args.size() != ms.params.size()) return InvalidArgument("method '" + ms.name + "' takes " + std::to_string(ms.params.size()) + " arguments");
    // The handler's arguments are copied: it runs on after this call returns.
    auto copies = std::make_shared<std::vector<std::string>>();
    for (ByteView a : args) copies->emplace_back(reinterpret_cast<const char*>(a.data()), a.size());
    Stream::Impl* raw = s.get();
    std::shared_ptr<Hosted> hosted = m.local;
    std::shared_ptr<Blocks> blocks = m.blocks;
    const int index = *idx;
    s->worker = std::thread([raw, hosted, blocks, copies, index, access = ms.access] {
      std::vector<ByteView> views;
      for (const std::string& c : *copies) views.push_back(AsBytes(c));
      InprocCall ctx(blocks.get(), &raw->stop);
      ctx.sink_ = [raw](ByteView chunk) -> Status {
        MutexLock lk(raw->mu);
        while (raw->credits <= 0 && !raw->stop.cancelled()) raw->cv.Wait(lk);
        if (raw->stop.cancelled()) return Status(Code::kCancelled, "the client cancelled the stream");
        --raw->credits;
        raw->chunks.emplace_back(reinterpret_cast<const char*>(chunk.data()), chunk.size());
        raw->cv.NotifyAll();
        return Status::Ok();
      };
      CallArgs a;
      a.method = index;
      a.args = views;
      a.deadline = raw->options.deadline;
      a.context = &ctx;
      const std::function<bool()> cancelled = [raw] { return raw->stop.cancelled(); };
      Status final;
      if (!hosted->scheduler.Enter(access, a.deadline, &cancelled)) {
        final = Status(Code::kTimeout, "resource busy past the call's deadline");
      } else if (hosted->closed.load(std::memory_order_relaxed)) {
        hosted->scheduler.Leave(access);
        final = Status(Code::kClosed, "the resource's server shut down");
      } else {
        Result<std::string> r = hosted->handlers[index](a);
        hosted->scheduler.Leave(access);
        if (!r.ok()) final = r.status();
      }
      MutexLock g(raw->mu);
      raw->finished = true;
      raw->final = final;
      raw->cv.NotifyAll();
    });
    return std::unique_ptr<Stream>(new Stream(std::move(s)));
  }
  MutexLock g(m.mu);
  if (!m.req) return Status(Code::kClosed, "client is closed");
  if (m.stream_open) return Status(Code::kBusy, "a stream is open on this connection: finish or cancel it first");
  auto call = m.Send(*idx, args, options.deadline, options.hold);
  if (!call.ok()) return m.Explain(call.status(), *idx);
  s->call = *call;
  m.stream_open = true;
  return std::unique_ptr<Stream>(new Stream(std::move(s)));
}

}  // namespace weft::rpc
