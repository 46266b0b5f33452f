// Real servers for tests: redis-server and nats-server started on free loopback ports in a
// directory of their own, stopped by pid (SIGKILL on request, to test crashes). Header-only;
// used by the tests of the bus's remote backends and by the benchmarks.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <string>
#include <thread>
#include <vector>

namespace weft::testing {

// A port nothing listens on now (the kernel's pick for an ephemeral bind).
inline int FreePort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a));
  socklen_t len = sizeof(a);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

// True once something accepts TCP connections on 127.0.0.1:port.
inline bool Accepts(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0;
  ::close(fd);
  return ok;
}

// A server process: argv run with its output to <dir>/server.log, up once its port accepts.
class ServerProcess {
 public:
  ServerProcess() = default;
  ~ServerProcess() { Stop(); }
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;

  bool Start(const std::vector<std::string>& argv, int port, const std::string& log) {
    Spawn(argv, log);
    for (int i = 0; i < 3000; ++i) {  // up to 30 s to load its data and listen
      if (Accepts(port)) return true;
      int st;
      if (::waitpid(pid_, &st, WNOHANG) == pid_) {
        pid_ = -1;
        return false;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  }
  // Starts argv with its output to `log`, without waiting; `in_child` runs first in the child
  // (e.g. to enter a network namespace; false: the child exits 126).
  pid_t Spawn(const std::vector<std::string>& argv, const std::string& log,
              const std::function<bool()>& in_child = nullptr) {
    pid_ = ::fork();
    if (pid_ == 0) {
      if (in_child && !in_child()) ::_exit(126);
      const int out = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
      ::dup2(out, 1);
      ::dup2(out, 2);
      std::vector<char*> args;
      for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
      args.push_back(nullptr);
      ::execv(args[0], args.data());
      ::_exit(127);
    }
    return pid_;
  }
  // Stops it: SIGTERM (or `sig`), then waits for it.
  void Stop(int sig = SIGTERM) {
    if (pid_ <= 0) return;
    ::kill(pid_, sig);
    int st;
    ::waitpid(pid_, &st, 0);
    pid_ = -1;
  }
  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
};

// A server the remote bus backends run on, started on free loopback ports in a fresh
// directory; Kill (SIGKILL) and Start again keep its port and files.
class RemoteServer {
 public:
  virtual ~RemoteServer() {
    if (!own_dir_) return;
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  virtual bool Start() = 0;
  void Kill() { proc_.Stop(SIGKILL); }
  bool up() const { return up_; }
  int port() const { return port_; }
  const std::string& dir() const { return dir_; }
  // The bus url of `name` on this server, with credentials `cred` ("user:password" or a token).
  virtual std::string url(const std::string& name, const std::string& cred = "") const = 0;

 protected:
  // `dir`: where the server keeps its files (empty: a fresh directory, removed at the end).
  explicit RemoteServer(const std::string& dir) : dir_(dir), own_dir_(dir.empty()) {
    if (own_dir_) {
      char tmpl[] = "/tmp/weft-server-XXXXXX";
      dir_ = ::mkdtemp(tmpl);
    }
    port_ = FreePort();
  }
  bool Run(const std::vector<std::string>& argv) {
    up_ = proc_.Start(argv, port_, dir_ + "/server.log");
    return up_;
  }
  std::string dir_;
  bool own_dir_;
  int port_ = 0;
  bool up_ = false;
  ServerProcess proc_;
};

// redis-server; `extra` arguments added (e.g. {"--requirepass", "secret"}, {"--appendonly",
// "yes", "--appendfsync", "always"}).
class RedisServer final : public RemoteServer {
 public:
  explicit RedisServer(std::vector<std::string> extra = {}, const std::string& dir = "")
      : RemoteServer(dir), extra_(std::move(extra)) {
    Start();
  }
  ~RedisServer() override { proc_.Stop(); }
  bool Start() override {
    if (::access("/usr/bin/redis-server", X_OK) != 0) return false;
    std::vector<std::string> argv = {"/usr/bin/redis-server", "--port", std::to_string(port_), "--bind", "127.0.0.1",
                                     "--save", "", "--dir", dir_, "--daemonize", "no"};
    argv.insert(argv.end(), extra_.begin(), extra_.end());
    return Run(argv);
  }
  std::string url(const std::string& name, const std::string& cred = "") const override {
    return "redis://" + cred + (cred.empty() ? "" : "@") + "127.0.0.1:" + std::to_string(port_) + "/" + name;
  }

 private:
  std::vector<std::string> extra_;
};

// nats-server with JetStream (its store in the server's directory); `extra` arguments added
// (e.g. {"--user", "u", "--pass", "p"}). In a cluster, each node gets its name, the cluster's
// name and the other nodes' route ports.
class NatsServer final : public RemoteServer {
 public:
  explicit NatsServer(std::vector<std::string> extra = {}, bool start = true) : RemoteServer(""), extra_(std::move(extra)) {
    cluster_port_ = FreePort();
    if (start) Start();
  }
  ~NatsServer() override { proc_.Stop(); }
  int cluster_port() const { return cluster_port_; }
  // Makes this node one of a cluster whose route ports are `routes` (this node's among them).
  void JoinCluster(const std::string& node, const std::vector<int>& routes) {
    extra_.insert(extra_.end(), {"--name", node, "--cluster_name", "weft", "--cluster",
                                 "nats://127.0.0.1:" + std::to_string(cluster_port_)});
    std::string r;
    for (int p : routes) {
      if (p == cluster_port_) continue;
      r += (r.empty() ? "" : ",") + std::string("nats://127.0.0.1:") + std::to_string(p);
    }
    extra_.insert(extra_.end(), {"--routes", r});
  }
  bool Start() override {
    if (::access("/usr/sbin/nats-server", X_OK) != 0) return false;
    std::vector<std::string> argv = {"/usr/sbin/nats-server", "-js", "-a", "127.0.0.1", "-p", std::to_string(port_),
                                     "-sd", dir_ + "/js"};
    argv.insert(argv.end(), extra_.begin(), extra_.end());
    return Run(argv);
  }
  std::string url(const std::string& name, const std::string& cred = "") const override {
    return "nats://" + cred + (cred.empty() ? "" : "@") + "127.0.0.1:" + std::to_string(port_) + "/" + name;
  }

 private:
  std::vector<std::string> extra_;
  int cluster_port_ = 0;
};

}  // namespace weft::testing
