#include "grpc_client.h"

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <thread>

#include "bench.grpc.pb.h"
#include "weft/core/clock.h"

namespace weft::bench {

std::vector<int64_t> GrpcCallSamples(int port, int warm, int n) {
  std::vector<int64_t> samples;
  auto channel = grpc::CreateChannel("127.0.0.1:" + std::to_string(port), grpc::InsecureChannelCredentials());
  if (!channel->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(30))) return samples;
  auto stub = weftbench::Bench::NewStub(channel);
  weftbench::Num in, out;
  in.set_v(1);
  for (int i = 0; i < warm + n; ++i) {
    grpc::ClientContext ctx;
    const int64_t t0 = MonotonicNs();
    grpc::Status s = stub->Increment(&ctx, in, &out);
    const int64_t t1 = MonotonicNs();
    if (!s.ok()) break;
    if (i >= warm) samples.push_back(t1 - t0);
  }
  return samples;
}

std::vector<int64_t> GrpcBulkSamples(int port, size_t bytes, int reps) {
  std::vector<int64_t> samples;
  grpc::ChannelArguments args;
  args.SetMaxSendMessageSize(-1);
  args.SetMaxReceiveMessageSize(-1);
  auto channel = grpc::CreateCustomChannel("127.0.0.1:" + std::to_string(port), grpc::InsecureChannelCredentials(), args);
  if (!channel->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(30))) return samples;
  auto stub = weftbench::Bench::NewStub(channel);
  weftbench::Blob in;
  in.mutable_data()->assign(bytes, '\1');
  weftbench::Num out;
  for (int i = 0; i < reps; ++i) {
    grpc::ClientContext ctx;
    const int64_t t0 = MonotonicNs();
    grpc::Status s = stub->Sink(&ctx, in, &out);
    const int64_t t1 = MonotonicNs();
    if (!s.ok() || out.v() != static_cast<int64_t>(bytes)) break;
    samples.push_back(t1 - t0);
  }
  return samples;
}

}  // namespace weft::bench
