// Streams float tensors from a producer process to a consumer process without copying them:
// the producer writes each tensor straight into the channel, the consumer reads it in place.
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <string>

#include "weft/shm/channel.h"

using weft::Deadline;
using weft::shm::Channel;
using weft::shm::Role;

int main() {
  const std::string name = "example.cpp." + std::to_string(::getpid());
  constexpr size_t kFloats = 1 << 20;  // 4 MB tensors
  auto tx = Channel::Create(name, {.capacity = 16 << 20});
  if (!tx.ok()) {
    std::fprintf(stderr, "%s\n", tx.status().ToString().c_str());
    return 1;
  }
  pid_t pid = ::fork();
  if (pid == 0) {
    auto rx = Channel::Open(name, Role::kConsumer).value();
    for (int t = 0; t < 8; ++t) {
      auto rec = rx->Read(Deadline::AfterMs(5000));
      if (!rec.ok()) ::_exit(2);
      const float* f = reinterpret_cast<const float*>(rec->data());
      double sum = 0;
      for (size_t i = 0; i < kFloats; ++i) sum += f[i];
      std::printf("tensor %d: sum %.0f\n", t, sum);
      if (sum != static_cast<double>(t) * kFloats) ::_exit(3);
      rx->Release().IgnoreError();
    }
    ::_exit(0);
  }
  for (int t = 0; t < 8; ++t) {
    auto buf = (*tx)->Reserve(kFloats * sizeof(float), Deadline::AfterMs(5000));
    if (!buf.ok()) return 4;
    float* f = reinterpret_cast<float*>(buf->data());
    for (size_t i = 0; i < kFloats; ++i) f[i] = static_cast<float>(t);
    (*tx)->Commit(kFloats * sizeof(float)).IgnoreError();
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  Channel::Unlink(name).IgnoreError();
  return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 5;
}
