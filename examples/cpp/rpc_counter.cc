// A counter resource served from C++ and called through the same Client API in this process
// (inproc://) and from another process (ipc://), with typed handlers and calls.
//
//   build/examples/example_rpc_counter
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <mutex>

#include "weft/rpc/codec.h"
#include "weft/rpc/contract.h"
#include "weft/rpc/rpc.h"

using namespace weft;

rpc::Contract CounterContract() {
  return rpc::ContractBuilder("demo.counter", "Counter", "0.1.0")
      .Write<int64_t(int64_t)>("increment")
      .Read<int64_t()>("value")
      .Build()
      .value();
}

int main() {
  const std::string id = "counter-example-" + std::to_string(::getpid());
  auto server = rpc::Server::Create(id).value();
  int64_t total = 0;  // the scheduler runs writes alone and reads beside each other: no lock needed
  rpc::Resource counter;
  counter.contract = CounterContract();
  counter.handlers["increment"] = rpc::Typed<int64_t(int64_t)>([&](int64_t by) -> Result<int64_t> {
    if (by < 0) return InvalidArgument("a counter only goes up");
    return total += by;
  });
  counter.handlers["value"] = rpc::Typed<int64_t()>([&] { return total; });
  counter.on_shutdown = [&] { std::printf("counter shut down at %lld\n", static_cast<long long>(total)); };
  if (!server->Register("counter", std::move(counter)).ok() || !server->Start().ok()) return 1;

  // In this process: a direct call through the resource's scheduler.
  auto local = rpc::Client::Connect(CounterContract(), "counter", "inproc://" + id, Deadline::AfterMs(1000)).value();
  const Deadline soon = Deadline::AfterMs(10'000);
  if (rpc::CallAs<int64_t>(*local, "increment", soon, int64_t{10}).value() != 10) return 2;
  if (rpc::CallAs<int64_t>(*local, "increment", soon, int64_t{-1}).status().code() != Code::kInvalidArgument) return 3;

  // From another process: the same API over ipc://.
  const pid_t child = ::fork();
  if (child == 0) {
    auto remote = rpc::Client::Connect(CounterContract(), "counter", "ipc://" + id, Deadline::AfterMs(10'000));
    if (!remote.ok()) ::_exit(4);
    for (int i = 0; i < 5; ++i) {
      if (!rpc::CallAs<int64_t>(**remote, "increment", Deadline::AfterMs(10'000), int64_t{2}).ok()) ::_exit(5);
    }
    ::_exit(0);
  }
  int status = 0;
  ::waitpid(child, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) return 6;
  const int64_t now = rpc::CallAs<int64_t>(*local, "value", soon).value();
  std::printf("counter: %lld after 10 here and 5 x 2 from process %d\n", static_cast<long long>(now), child);
  local.reset();
  return server->Shutdown(Deadline::AfterMs(10'000)).ok() && now == 20 ? 0 : 7;
}
