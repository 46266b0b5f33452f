// The gRPC server of `weft bench rpc`'s baseline rows, a process of its own (gRPC and fork()
// do not mix): serves Increment on 127.0.0.1:<port>, prints "ready" once listening, and runs
// until killed.
#include <grpcpp/grpcpp.h>

#include <cstdio>
#include <string>

#include "bench.grpc.pb.h"

namespace {

class Service final : public weftbench::Bench::Service {
  grpc::Status Increment(grpc::ServerContext*, const weftbench::Num* in, weftbench::Num* out) override {
    value_ += in->v();
    out->set_v(value_);
    return grpc::Status::OK;
  }
  grpc::Status Table(grpc::ServerContext*, const weftbench::Rows* in, weftbench::Blob* out) override {
    out->mutable_data()->assign(static_cast<size_t>(in->rows()) * 28, '\1');
    return grpc::Status::OK;
  }
  grpc::Status Sink(grpc::ServerContext*, const weftbench::Blob* in, weftbench::Num* out) override {
    out->set_v(static_cast<int64_t>(in->data().size()));
    return grpc::Status::OK;
  }
  int64_t value_ = 0;
};

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: weft_grpc_server <port>\n");
    return 2;
  }
  Service service;
  grpc::ServerBuilder b;
  b.AddListeningPort(std::string("127.0.0.1:") + argv[1], grpc::InsecureServerCredentials());
  b.RegisterService(&service);
  b.SetMaxReceiveMessageSize(-1);
  b.SetMaxSendMessageSize(-1);
  std::unique_ptr<grpc::Server> server = b.BuildAndStart();
  if (!server) return 1;
  std::printf("ready\n");
  std::fflush(stdout);
  server->Wait();
  return 0;
}
