// Serving resources to other processes and calling them, at the bytes level: a Server hosts
// named resources (a contract and a handler per method) at `ipc://<id>`; a Client connects to
// one by name, checks contracts before the first call, and calls methods with deadlines.
// Requests and replies travel over a channel pair per client (docs/formats/rpc-wire.md); the
// handshake goes over an abstract Unix socket. A client sees its server die as kPeerDead; a
// server sees a client die and releases everything that client held.
//
// Large values (above 64 KiB) travel as blocks of the server's pool without a copy on the
// wire. A caller may hold a result in place (CallOptions::hold: the Reply keeps a Held), build
// an argument in place (Client::Loan), and a handler may return memory it keeps in the pool
// (Server::Loan + CallContext::ReturnHeld): then nothing is copied at all. Streaming methods
// send chunks with CallContext::Yield under the client's credit; any call can be cancelled.
// The same Client API reaches a resource in this process ("inproc://<id>": a direct call).
//
//   auto server = Server::Create("calc").value();
//   server->Register("counter", {counter_contract, {{"increment", Increment}, ...}});
//   server->Start();
//   auto client = Client::Connect(counter_contract, "counter", "ipc://calc", Deadline::AfterMs(1000)).value();
//   std::string result = client->Call("increment", {AsBytes(EncodeI64(5))}, Deadline::AfterMs(1000)).value();
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "weft/core/bytes.h"
#include "weft/core/clock.h"
#include "weft/core/status.h"
#include "weft/rpc/contract.h"

namespace weft::rpc {

namespace internal {
class Blocks;
}

// Set from any thread to cancel the calls it was given to: the caller gets kCancelled at once;
// the handler sees CallContext::Cancelled() and its result is dropped.
class CancelToken {
 public:
  void Cancel() { flag_.store(true, std::memory_order_release); }
  bool cancelled() const { return flag_.load(std::memory_order_acquire); }

 private:
  std::atomic<bool> flag_{false};
};

// Blocks of a server's pool held in this process (loans, held results, borrowed arguments).
struct HoldStats {
  uint64_t active_holds = 0;
  uint64_t held_bytes = 0;
  double oldest_hold_seconds = 0;  // age of the oldest hold alive
};
// Summed over every client and server of this process.
HoldStats ProcessHoldStats();

// A hold on one block of a server's pool: the bytes stay valid, in place, while it lives.
// Passed back as an argument (Client) or returned with CallContext::ReturnHeld (Server), the
// bytes cross without a copy. Thread-safe to drop from any thread.
class Held {
 public:
  ~Held();
  Held(const Held&) = delete;
  Held& operator=(const Held&) = delete;
  ByteView bytes() const { return ByteView(data_, size_); }
  MutableBytes mutable_bytes() { return MutableBytes(data_, size_); }  // write before sending
  size_t size() const { return size_; }
  uint64_t block() const { return block_; }

 private:
  friend class internal::Blocks;
  Held(std::shared_ptr<internal::Blocks> owner, uint64_t block, uint8_t* data, size_t size);
  std::shared_ptr<internal::Blocks> owner_;
  uint64_t block_;
  uint8_t* data_;
  size_t size_;
  int64_t since_ns_;
};

// A large value received by value (over tcp://): memory of its own, mapped on demand (huge
// pages where the kernel gives them), filled straight from the connection, never zeroed first.
class Buffer {
 public:
  // Room for `capacity` bytes (memory is taken only as bytes are written); null if none.
  static std::shared_ptr<Buffer> Reserve(size_t capacity);
  ~Buffer();
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  uint8_t* data() { return data_; }
  size_t size() const { return size_; }
  size_t capacity() const { return capacity_; }
  ByteView bytes() const { return ByteView(data_, size_); }
  void Resize(size_t n) { size_ = n <= capacity_ ? n : capacity_; }

 private:
  Buffer(uint8_t* data, size_t capacity, size_t mapped) : data_(data), capacity_(capacity), mapped_(mapped) {}
  uint8_t* data_;
  size_t size_ = 0;
  size_t capacity_;
  size_t mapped_;
};

// A result: bytes of its own, a hold on the pool block it arrived in (hold mode, large values,
// ipc://), or the buffer it was received into (large values, tcp://).
struct Reply {
  std::string inline_bytes;
  std::shared_ptr<Held> held;
  size_t held_length = 0;  // the result's bytes at the start of the held block
  std::shared_ptr<Buffer> buffer;
  ByteView bytes() const {
    if (held) return ByteView(held->bytes().data(), held_length);
    if (buffer) return buffer->bytes();
    return AsBytes(inline_bytes);
  }
  bool in_shared_memory() const { return held != nullptr; }
};

// Who is calling, as the server verified it (never as the client claims).
struct Caller {
  std::string transport;  // "inproc", "ipc", "tcp"
  // "uid:<n>" (ipc: from the kernel), "ed25519:<hex>" (tcp with TLS: the key the peer proved it
  // holds), "" (in-process, or plaintext tcp: nobody is proven).
  std::string identity;
  std::string address;  // "pid 1234", "10.0.0.2:51234"
};

// What a handler may do beyond reading its arguments. Valid during the call.
class CallContext {
 public:
  virtual ~CallContext() = default;
  virtual const Caller& caller() const = 0;
  // True once the client cancelled this call (the handler may stop early; its result is dropped).
  virtual bool Cancelled() = 0;
  // Streaming methods: sends one chunk, waiting while the client has no credit for more.
  // kCancelled if the client cancelled, kPeerDead / kClosed if it went away.
  virtual Status Yield(ByteView chunk) = 0;
  // A block of the server's pool, held by this server (for the result or for the resource).
  virtual Result<std::shared_ptr<Held>> Loan(size_t n) = 0;
  // The result is `bytes`, which must start a block held here (a loan, an argument's block):
  // the client gets it without a copy, and the string the handler returns is ignored.
  // kNotFound if `bytes` is not such a block.
  virtual Status ReturnHeld(ByteView bytes) = 0;
  // The hold on argument i if it arrived in a block (keep it to use the bytes after the call).
  virtual std::shared_ptr<Held> ArgumentHold(size_t i) = 0;
};

// One call as a handler sees it; the argument bytes are borrowed until the handler returns.
struct CallArgs {
  int method = 0;  // index into the contract's methods
  std::span<const ByteView> args;
  Deadline deadline = Deadline::Never();
  CallContext* context = nullptr;
};

// Returns the result's bytes (in the method's result codec), or an error for the caller.
// A streaming method Yields its chunks and returns an empty string at the end.
using Handler = std::function<Result<std::string>(const CallArgs&)>;

struct Resource {
  Contract contract;
  std::map<std::string, Handler> handlers;  // one per method, by name
  std::function<void()> on_shutdown;        // after the last call, at Shutdown
};

// How a tcp:// connection is secured (docs/remote.md): TLS 1.3, both sides proving a host key
// (made by `weft keygen`), each accepting the other by key id or through a CA. Plaintext only
// when said here explicitly, on both sides.
struct TcpSecurity {
  std::string key_file;                   // this side's private key (PEM, 0600)
  std::vector<std::string> trusted_keys;  // peers accepted by key id ("ed25519:<hex>")
  std::string ca_file;                    // and/or peers whose certificate this CA signed (PEM)
  std::string cert_file;                  // this side's certificate chain, signed by the peers' CA
  bool plaintext = false;                 // no TLS: no privacy, no identity (trusted networks only)
};

// Who may connect, and how much one client may take (docs/security.md).
struct ServerOptions {
  // Uids admitted besides the server's own (checked with SO_PEERCRED; everyone else is refused
  // with kPermissionDenied). A client of another uid cannot map the server's pool: its values
  // travel inline (up to about 2 MiB each), and it can never name a pool block.
  std::vector<uint32_t> allow_uids;
  size_t max_clients = 256;          // connections served at once; more are refused (kResourceExhausted)
  size_t max_clients_per_uid = 256;  // of those, from one uid
  size_t max_pending = 32;           // connections still in their handshake
  int64_t handshake_timeout_ms = 2000;
  // Bytes of results a client may hold in the server's pool without releasing them; a result
  // past it is answered with kResourceExhausted.
  uint64_t max_held_bytes_per_client = uint64_t{8} << 30;
  // Addresses to listen on besides ipc://<id>: "tcp://host:port" (port 0: any; see
  // Server::addresses for the one bound).
  std::vector<std::string> listen;
  TcpSecurity tcp;
  // May refuse a call before it runs (its Status, e.g. kPermissionDenied, goes to the caller):
  // who calls (Caller), which resource and method. Called on the connection's thread.
  std::function<Status(const Caller&, const std::string& resource, const std::string& method)> authorize;
  // The largest value a tcp:// peer may send (a larger one loses its connection: kTooLarge).
  uint64_t max_value_bytes = uint64_t{16} << 30;
  // Discovery (docs/remote.md): "nats://<servers>[/<bucket>]" to announce every resource at
  // (name, contract hash, addresses, identity) from Start on, refreshed while the server lives;
  // a dead server's routes expire registry_ttl_ms after their last refresh.
  std::string registry;
  int64_t registry_ttl_ms = 10'000;
  // The tcp:// addresses to announce, if not those listened on (a wildcard listener announces
  // the host's interface addresses).
  std::vector<std::string> advertise;
  // With a registry, also serve through tunnels over its NATS servers, for clients that cannot
  // dial this host (it may sit behind NAT and only dial out). Secured as tcp:// is.
  bool relay = true;
};

class Server {
 public:
  ~Server();  // Shutdown
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Listens at ipc://<id> and inproc://<id> (kAlreadyExists if another server has that id).
  static Result<std::unique_ptr<Server>> Create(const std::string& id, const ServerOptions& options = {});
  Status Register(const std::string& name, Resource resource);
  // Serves in background threads: one accepting, one per connected client.
  Status Start();
  // Stops accepting, lets calls in flight finish (until the deadline), runs on_shutdown hooks.
  Status Shutdown(Deadline deadline);
  std::string address() const;  // ipc://<id>
  // Every address it listens on: ipc://<id>, then tcp://host:port with the port bound.
  std::vector<std::string> addresses() const;
  // A block of this server's pool for a resource's own data; returned by a handler through
  // CallContext::ReturnHeld it reaches clients without a copy (they see later writes to it).
  Result<std::shared_ptr<Held>> Loan(size_t n);
  HoldStats hold_stats() const;

  struct Impl;

 private:
  explicit Server(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

struct CallOptions {
  Deadline deadline = Deadline::Never();
  const CancelToken* cancel = nullptr;
  bool hold = false;  // large results stay in shared memory (Reply::held) instead of being copied
};

class Client;

// The chunks of a streaming call, in order. Cancel (or destroy) to stop it early. The Client
// must outlive it; the connection carries no other call while it is open (kBusy).
class Stream {
 public:
  ~Stream();
  // The next chunk, or nullopt at the end. kCancelled after Cancel; the call's error if it failed.
  Result<std::optional<Reply>> Next(Deadline deadline);
  void Cancel();

  struct Impl;

 private:
  friend class Client;
  explicit Stream(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// What a client does when calls fail (docs/remote.md, "When calls fail"). Streams, in-process
// calls and writes are never retried or hedged: a write may have run before its answer was lost.
struct RetryPolicy {
  int attempts = 1;               // tries per call of a read method (1: no retry)
  int64_t backoff_ms = 20;        // the wait before the second try, doubled before each next one,
  int64_t max_backoff_ms = 1000;  //   at most this; each wait drawn at random below it (jitter)
};
// Retried (reads only, while the deadline allows): kUnavailable, kPeerDead, kClosed,
// kResourceExhausted, kAborted. Never: the caller's own errors, kTimeout (the deadline is
// spent), kCancelled, refusals.
bool Retryable(Code code);

struct BreakerPolicy {
  int failures = 0;         // consecutive failures of the connection or server that open the
                            // circuit (0: no breaker)
  int64_t open_ms = 5'000;  // an open circuit fails calls at once (kUnavailable) this long, then
                            // lets one trial call through: its success closes it, a failure
                            // opens it again
};

struct ConnectOptions {
  TcpSecurity tcp;  // tcp:// and nats:// (a registry's routes)
  RetryPolicy retry;
  // A read not answered this soon is sent to a second server too (another server of the name
  // through a registry, else a second connection), and the first answer wins; the other call is
  // cancelled. 0: no hedging.
  int64_t hedge_after_ms = 0;
  BreakerPolicy breaker;
};

class Client {
 public:
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Connects to resource `name` at `address` ("ipc://<id>", or "inproc://<id>" for a server of
  // this process). kNotFound if no server or no such resource; kContractMismatch (saying what
  // differs) if the contracts differ.
  // "tcp://host:port" reaches a server on another host (options.tcp says how it is secured).
  // "nats://<servers>[/<bucket>]" asks that registry for the live servers of `name` with this
  // contract's hash (kContractMismatch if the name is served only with other contracts) and
  // connects to one: a direct address first, else a tunnel through NATS. After a broken
  // connection the next call resolves again, trying the server that failed last.
  // A client whose connection broke (kUnavailable, kPeerDead, kClosed) connects again at its
  // next call.
  static Result<std::unique_ptr<Client>> Connect(const Contract& contract, const std::string& name,
                                                 const std::string& address, Deadline deadline,
                                                 const ConnectOptions& options = {});
  // Calls `method` with argument bytes (one per parameter, in its codec); the result's bytes.
  // kTimeout if the deadline passes, kPeerDead if the server dies meanwhile.
  Result<std::string> Call(std::string_view method, const std::vector<ByteView>& args, Deadline deadline);
  // The same with options: cancellation, hold mode. An argument that starts a Held of this
  // client (a Loan, a held result) is sent as its block, without a copy.
  Result<Reply> Invoke(std::string_view method, const std::vector<ByteView>& args, const CallOptions& options);
  // Starts a streaming method; its chunks come with credit-based flow control.
  Result<std::unique_ptr<Stream>> OpenStream(std::string_view method, const std::vector<ByteView>& args,
                                             const CallOptions& options);
  // A block of the server's pool to build an argument in: passed as an argument, it is not
  // copied (in-process, no argument is copied anyway).
  Result<std::shared_ptr<Held>> Loan(size_t n);
  // False for a client that does not map the server's pool (another uid's, admitted by the
  // server's policy): every value then travels inline, and Loan gives kPermissionDenied.
  bool shares_pool() const;
  HoldStats hold_stats() const;
  Status Close();

  struct Impl;

 private:
  friend class Stream;
  explicit Client(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace weft::rpc
