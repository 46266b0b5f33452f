// Real servers for tests: redis-server (and, later, nats-server) started on a free loopback
// port in a directory of their own, stopped by pid (SIGKILL on request, to test crashes).
// Header-only; used by the tests of net and bus.
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
    pid_ = ::fork();
    if (pid_ == 0) {
      const int out = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
      ::dup2(out, 1);
      ::dup2(out, 2);
      std::vector<char*> args;
      for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
      args.push_back(nullptr);
      ::execv(args[0], args.data());
      ::_exit(127);
    }
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

// redis-server on a free loopback port, its files in a fresh directory; `extra` arguments
// added (e.g. {"--requirepass", "secret"}, {"--appendonly", "yes", "--appendfsync", "always"}).
class RedisServer {
 public:
  explicit RedisServer(std::vector<std::string> extra = {}) : extra_(std::move(extra)) {
    char tmpl[] = "/tmp/weft-redis-XXXXXX";
    dir_ = ::mkdtemp(tmpl);
    port_ = FreePort();
    Start();
  }
  ~RedisServer() {
    proc_.Stop();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  bool Start() {
    std::vector<std::string> argv = {"/usr/bin/redis-server", "--port", std::to_string(port_), "--bind", "127.0.0.1",
                                     "--save", "", "--dir", dir_, "--daemonize", "no"};
    argv.insert(argv.end(), extra_.begin(), extra_.end());
    up_ = proc_.Start(argv, port_, dir_ + "/server.log");
    return up_;
  }
  void Kill() { proc_.Stop(SIGKILL); }
  bool up() const { return up_; }
  int port() const { return port_; }
  std::string url(const std::string& name, const std::string& cred = "") const {
    return "redis://" + cred + (cred.empty() ? "" : "@") + "127.0.0.1:" + std::to_string(port_) + "/" + name;
  }
  const std::string& dir() const { return dir_; }

 private:
  std::vector<std::string> extra_;
  std::string dir_;
  int port_ = 0;
  bool up_ = false;
  ServerProcess proc_;
};

}  // namespace weft::testing
