// Serving resources to other processes and calling them, at the bytes level: a Server hosts
// named resources (a contract and a handler per method) at `ipc://<id>`; a Client connects to
// one by name, checks contracts before the first call, and calls methods with deadlines.
// Requests and replies travel over a channel pair per client (docs/formats/rpc-wire.md); the
// handshake goes over an abstract Unix socket. A client sees its server die as kPeerDead; a
// server sees a client die and drops its connection.
//
//   auto server = Server::Create("calc").value();
//   server->Register("counter", {counter_contract, {{"increment", Increment}, ...}});
//   server->Start();
//   auto client = Client::Connect(counter_contract, "counter", "ipc://calc", Deadline::AfterMs(1000)).value();
//   std::string result = client->Call("increment", {AsBytes(EncodeI64(5))}, Deadline::AfterMs(1000)).value();
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "weft/core/bytes.h"
#include "weft/core/clock.h"
#include "weft/core/status.h"
#include "weft/rpc/contract.h"

namespace weft::rpc {

// One call as a handler sees it; the argument bytes are borrowed until the handler returns.
struct CallArgs {
  int method = 0;  // index into the contract's methods
  std::vector<ByteView> args;
  Deadline deadline = Deadline::Never();
};

// Returns the result's bytes (in the method's result codec), or an error for the caller.
using Handler = std::function<Result<std::string>(const CallArgs&)>;

struct Resource {
  Contract contract;
  std::map<std::string, Handler> handlers;  // one per method, by name
  std::function<void()> on_shutdown;        // after the last call, at Shutdown
};

class Server {
 public:
  ~Server();  // Shutdown
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Listens at ipc://<id> (kAlreadyExists if another server has that id).
  static Result<std::unique_ptr<Server>> Create(const std::string& id);
  Status Register(const std::string& name, Resource resource);
  // Serves in background threads: one accepting, one per connected client.
  Status Start();
  // Stops accepting, lets calls in flight finish (until the deadline), runs on_shutdown hooks.
  Status Shutdown(Deadline deadline);
  std::string address() const;

  struct Impl;

 private:
  explicit Server(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

class Client {
 public:
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Connects to resource `name` at `address` ("ipc://<id>"). kNotFound if no server or no such
  // resource; kContractMismatch (saying what differs) if the contracts differ.
  static Result<std::unique_ptr<Client>> Connect(const Contract& contract, const std::string& name,
                                                 const std::string& address, Deadline deadline);
  // Calls `method` with argument bytes (one per parameter, in its codec); the result's bytes.
  // kTimeout if the deadline passes, kPeerDead if the server dies meanwhile.
  Result<std::string> Call(std::string_view method, const std::vector<ByteView>& args, Deadline deadline);
  Status Close();

  struct Impl;

 private:
  explicit Client(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace weft::rpc
