// ipc://: the handshake over an abstract Unix socket (descriptors of two sealed channels, the
// peer verified by SO_PEERCRED), then a channel pair per client carrying frames, and values
// above 64 KiB as blocks of the server's pool (docs/formats/rpc-wire.md).
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <map>

#include "internal/transports.h"
#include "weft/shm/channel.h"

namespace weft::rpc::internal {
namespace {

constexpr size_t kChannelBytes = size_t{4} << 20;

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

// Frames over a channel pair: in (records from the peer), out (records to it).
class IpcConn : public Conn {
 public:
  IpcConn(std::unique_ptr<shm::Channel> in, std::unique_ptr<shm::Channel> out, std::shared_ptr<Blocks> blocks,
          std::string identity, std::string where)
      : in_(std::move(in)), out_(std::move(out)), blocks_(std::move(blocks)), identity_(std::move(identity)),
        where_(std::move(where)) {}

  // Encodes straight into the channel's ring (no staging copy) and publishes.
  Status Send(const FrameOut& f, const std::vector<Value>& values, Deadline d) override {
    const size_t vsize = ValuesSize(values);
    auto buf = out_->Reserve(sizeof(FrameHeader) + vsize, d);
    if (!buf.ok()) return buf.status();
    EncodeHeader(f.type, f.flags, f.resource, f.method, f.call, f.deadline_ns, static_cast<uint32_t>(vsize), buf->data());
    EncodeValues(values, buf->data() + sizeof(FrameHeader));
    return out_->Commit(sizeof(FrameHeader) + vsize);
  }

  Status SendPayload(const FrameOut& f, ByteView payload, Deadline d) override {
    auto buf = out_->Reserve(sizeof(FrameHeader) + payload.size(), d);
    if (!buf.ok()) return buf.status();
    EncodeHeader(f.type, f.flags, f.resource, f.method, f.call, 0, static_cast<uint32_t>(payload.size()), buf->data());
    if (!payload.empty()) std::memcpy(buf->data() + sizeof(FrameHeader), payload.data(), payload.size());
    return out_->Commit(sizeof(FrameHeader) + payload.size());
  }

  Result<Frame> Read(Deadline d) override {
    auto rec = in_->Read(d);
    if (!rec.ok()) return rec.status();
    auto f = DecodeFrame(*rec);
    if (!f.ok()) in_->Release().IgnoreError();
    return f;
  }

  Result<std::vector<Value>> Values(const Frame& f) override {
    auto v = DecodeValues(f.payload);
    if (!v.ok()) return v;
    for (const Value& x : *v) {
      if (x.follows) return Corrupt("ipc:// carries no following values");
    }
    return v;
  }
  void Release(size_t n) override { in_->Release(n).IgnoreError(); }
  void Unread() override { in_->Unread().IgnoreError(); }
  void Interrupt() override {
    in_->Interrupt();
    out_->Interrupt();
  }
  std::string peer_identity() const override { return identity_; }
  std::string peer_address() const override { return where_; }

 protected:
  size_t inline_most() const { return out_->max_record() - sizeof(FrameHeader) - 64; }

  std::unique_ptr<shm::Channel> in_, out_;
  std::shared_ptr<Blocks> blocks_;  // the server's pool; null for a client that does not map it
  std::string identity_, where_;
};

// The server's end: results lent to the client as grants in the pool (within its quota),
// arguments taken only from blocks the client holds.
class IpcServerConn final : public IpcConn {
 public:
  IpcServerConn(std::unique_ptr<shm::Channel> req, std::unique_ptr<shm::Channel> rep, std::shared_ptr<Blocks> blocks,
                const IpcPeer& peer, uint64_t max_held)
      : IpcConn(std::move(req), std::move(rep), std::move(blocks), "uid:" + std::to_string(peer.uid),
                "pid " + std::to_string(peer.pid)),
        peer_(peer), bit_(peer.bit()), max_held_(max_held) {}

  Result<Value> Lend(ByteView bytes, const std::shared_ptr<Held>& in_place,
                     std::vector<std::shared_ptr<Held>>*) override {
    if (bit_ != 0 && (in_place != nullptr || bytes.size() > kInlineMax)) {
      // Quota: what this client still holds of what we granted it (blocks it let go of, or
      // whose hold ended with its pool membership, no longer count).
      uint64_t held = 0;
      for (auto it = granted_.begin(); it != granted_.end();) {
        if (blocks_->HeldBy(it->first, peer_.pool_slot)) {
          held += it->second;
          ++it;
        } else {
          it = granted_.erase(it);
        }
      }
      if (held + bytes.size() > max_held_) {
        return Status(Code::kResourceExhausted, "the client holds " + std::to_string(held) +
                                                    " bytes of results it has not released; a result of " +
                                                    std::to_string(bytes.size()) + " bytes would pass its quota of " +
                                                    std::to_string(max_held_));
      }
    }
    auto v = Wire(bytes, in_place);
    if (v.ok() && v->in_block) granted_[v->block] = bytes.size();
    return v;
  }

  // Arguments in blocks are read in place; our hold keeps each alive while it is used. Only
  // blocks this client holds (it allocated them, or we granted them) are accepted: a peer
  // that names another's block by id gets kPermissionDenied, never its bytes.
  Result<ByteView> Take(const Value& v, std::shared_ptr<Held>* hold) override {
    if (!v.in_block) return v.bytes;
    if (bit_ == 0) return Status(Code::kPermissionDenied, "this client does not map the server's pool");
    auto held = blocks_->Take(v.block, v.length, bit_);
    if (!held.ok()) return held.status();
    *hold = *std::move(held);
    return (*hold)->bytes();
  }

  Result<Reply> Adopt(const Value&, bool) override { return Status(Code::kInternal, "a server adopts no results"); }

  // The client died: what it held in the pool (arguments it wrote, results it had not
  // released) comes back.
  void PeerGone() override { blocks_->RecoverDead(); }

 private:
  // What a result or chunk becomes on the wire: the block it already lives in (held here: the
  // client gets a hold of its own), a copy in a new block (large), or inline bytes.
  Result<Value> Wire(ByteView bytes, const std::shared_ptr<Held>& in_place) {
    Value v;
    if (bit_ == 0) {  // a client that does not map the pool gets everything inline
      if (bytes.size() > inline_most()) {
        return TooLarge("a value of " + std::to_string(bytes.size()) + " bytes needs the server's shared pool, which "
                        "this client does not map (at most " + std::to_string(inline_most()) + " bytes inline)");
      }
      v.bytes = bytes;
      return v;
    }
    if (in_place != nullptr) {
      uint64_t already = 0;
      WEFT_RETURN_IF_ERROR(blocks_->Grant(in_place->block(), bit_, &already));
      if (already == 0) {
        v.in_block = true;
        v.block = in_place->block();
        v.length = bytes.size();
        return v;
      }
      // The client holds this block already (an earlier result it still holds): granting gave
      // it nothing, so it gets a copy it can let go of on its own.
    } else if (bytes.size() <= kInlineMax) {
      v.bytes = bytes;
      return v;
    }
    auto copy = blocks_->Copy(bytes);  // our hold ends with `copy`: the client's is then the only one
    if (!copy.ok()) return copy.status();
    WEFT_RETURN_IF_ERROR(blocks_->Grant((*copy)->block(), bit_, nullptr));
    v.in_block = true;
    v.block = (*copy)->block();
    v.length = bytes.size();
    return v;
  }

  IpcPeer peer_;
  uint64_t bit_;
  uint64_t max_held_;
  std::map<uint64_t, uint64_t> granted_;  // blocks granted to the client (by id: bytes), for its quota
};

// The client's end: large arguments lent as blocks of the server's pool, results adopted from
// the grants the server made.
class IpcClientConn final : public IpcConn {
 public:
  using IpcConn::IpcConn;

  // Large arguments go in blocks of the server's pool: as they are if they start a block we
  // hold (a loan, a held result), else copied into a new one. Our holds stay until the call's
  // answer arrives, even if we stop waiting for it: the server takes its own hold when it
  // reads the call, which may be later.
  Result<Value> Lend(ByteView bytes, const std::shared_ptr<Held>&, std::vector<std::shared_ptr<Held>>* keep) override {
    Value v;
    if (bytes.size() <= kInlineMax || blocks_ == nullptr) {  // without the pool, inline (the channel checks the size)
      v.bytes = bytes;
      return v;
    }
    std::shared_ptr<Held> h = blocks_->Find(bytes.data(), bytes.size());
    if (h == nullptr) {
      auto copy = blocks_->Copy(bytes);
      if (!copy.ok()) return copy.status();
      h = *std::move(copy);
    }
    v.in_block = true;
    v.block = h->block();
    v.length = bytes.size();
    keep->push_back(std::move(h));
    return v;
  }

  Result<ByteView> Take(const Value&, std::shared_ptr<Held>*) override {
    return Status(Code::kInternal, "a client takes no arguments");
  }

  Result<Reply> Adopt(const Value& v, bool hold) override {
    Reply r;
    if (!v.in_block) {
      r.inline_bytes.assign(reinterpret_cast<const char*>(v.bytes.data()), v.bytes.size());
      return r;
    }
    if (blocks_ == nullptr) return Corrupt("a reply names a pool block, but this client does not map the pool");
    auto h = blocks_->Adopt(v.block, v.length);  // the server granted us a hold on it
    if (!h.ok()) return h.status();
    if (hold) {
      r.held = *std::move(h);
      r.held_length = v.length;
    } else {
      r.inline_bytes.assign(reinterpret_cast<const char*>((*h)->bytes().data()), v.length);
    }
    return r;
  }

  void Drop(const Value& v) override {
    if (v.in_block && blocks_ != nullptr) blocks_->Release(v.block).IgnoreError();  // the hold the server granted us
  }
};

}  // namespace

std::string PoolName(const std::string& id) { return "rpc." + id + ".pool"; }

shm::PoolOptions RpcPoolOptions() {
  shm::PoolOptions o;
  o.bytes = size_t{4} << 20;  // small blocks are rare here; large values get their own segments
  o.max_arenas = 4;
  o.max_block = size_t{16} << 30;
  return o;
}

bool ValidServerId(const std::string& id) {
  if (id.empty() || id.size() > 64) return false;
  for (char c : id) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.') return false;
  }
  return true;
}

Result<int> ListenIpc(const std::string& id) {
  const int fd = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  if (fd < 0) return ErrnoStatus(errno, "socket");
  socklen_t len;
  sockaddr_un a = SocketAddress(id, &len);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), len) != 0) {
    const int err = errno;
    ::close(fd);
    if (err == EADDRINUSE) return Status(Code::kAlreadyExists, "a server already listens at ipc://" + id);
    return ErrnoStatus(err, "bind");
  }
  if (::listen(fd, 64) != 0) {
    const int err = errno;
    ::close(fd);
    return ErrnoStatus(err, "listen");
  }
  return fd;
}

// Nothing the client says is taken on trust: its uid and pid come from the kernel
// (SO_PEERCRED), its pool slot is checked against that pid, and its channels must be sealed
// memory of exactly the size the server expects.
Result<std::unique_ptr<Conn>> AcceptIpc(const Hello& hello, const std::vector<int>& fds, const ucred& cred,
                                        std::shared_ptr<Blocks> blocks, uint64_t max_held_bytes) {
  if (fds.size() != 2) return Corrupt("handshake: expected the request and reply channels as two descriptors");
  IpcPeer peer;
  peer.pid = cred.pid;
  peer.uid = static_cast<uint32_t>(cred.uid);
  if (hello.pool_slot != kNoSlot) {
    if (!blocks->HolderIs(hello.pool_slot, cred.pid)) {
      return Status(Code::kPermissionDenied, "handshake: pool slot " + std::to_string(hello.pool_slot) +
                                                 " is not held by the connecting process");
    }
    peer.pool_slot = hello.pool_slot;
  }
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
  return std::unique_ptr<Conn>(
      new IpcServerConn(std::move(r).value(), std::move(p).value(), std::move(blocks), peer, max_held_bytes));
}

Result<std::unique_ptr<Conn>> DialIpc(const std::string& id, const std::string& name, const Contract& contract,
                                      Deadline deadline, std::shared_ptr<Blocks>* blocks, std::string* answer) {
  static std::atomic<uint64_t> counter{0};
  const std::string stem = "rpc-" + std::to_string(::getpid()) + "-" + std::to_string(counter.fetch_add(1));
  // The channels are sealed memory handed to the server as descriptors: neither side can
  // shrink what the other maps, and the server opens nothing by a name we chose.
  auto req = shm::Channel::CreateSealed(stem + "-req", {.capacity = kChannelBytes, .role = shm::Role::kProducer, .wait = {}});
  if (!req.ok()) return req.status();
  auto rep = shm::Channel::CreateSealed(stem + "-rep",
                                        {.capacity = kChannelBytes, .role = shm::Role::kConsumer, .wait = CallWaits()});
  if (!rep.ok()) return rep.status();
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
    if (err == ECONNREFUSED || err == ENOENT) return NotFound("no server at ipc://" + id);
    return ErrnoStatus(err, "connect(ipc://" + id + ")");
  }
  // A client of another uid (admitted by the server's policy) cannot map the server's pool:
  // it goes on without it, and every value travels inline.
  auto pool = shm::Pool::Open(PoolName(id));
  if (pool.ok()) {
    *blocks = Blocks::Make(std::move(pool).value());
  } else if (pool.status().code() != Code::kPermissionDenied) {
    Status st = pool.status();
    return st.Annotate("server pool");
  }
  const int slot = *blocks ? (*blocks)->holder_slot() : kNoSlot;
  Status sent = SendMessage(fd, EncodeHello(name, slot, contract.Canonical()), {(*req)->fd(), (*rep)->fd()});
  // A server that refused us at once (policy, caps) has answered and closed before our hello:
  // its answer says why better than the failed send.
  std::vector<int> fds;
  auto msg = RecvMessage(fd, sent.ok() ? deadline : Deadline::AfterMs(100), &fds, 0);
  if (!msg.ok()) return sent.ok() ? msg.status() : sent;
  *answer = std::move(msg).value();
  return std::unique_ptr<Conn>(new IpcClientConn(std::move(rep).value(), std::move(req).value(), *blocks, "",
                                                 "ipc://" + id));
}

}  // namespace weft::rpc::internal
