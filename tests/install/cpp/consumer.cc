// A C++ program built against an installed Weft with find_package(weft): a channel between two
// endpoints of this process, through the C++ API of libweft.so.
#include <unistd.h>

#include <cstdio>
#include <string>

#include "weft/shm/channel.h"

int main() {
  using namespace weft;
  const std::string name = "test.consumer." + std::to_string(::getpid());
  auto tx = shm::Channel::Create(name, {.capacity = 4096});
  if (!tx.ok()) return 1;
  auto rx = shm::Channel::Open(name, shm::Role::kConsumer);
  if (!rx.ok()) return 2;
  if (!(*tx)->Write(AsBytes("hello"), Deadline::AfterMs(1000)).ok()) return 3;
  auto rec = (*rx)->Read(Deadline::AfterMs(1000));
  if (!rec.ok() || std::string(reinterpret_cast<const char*>(rec->data()), rec->size()) != "hello") return 4;
  shm::Channel::Unlink(name).IgnoreError();
  std::puts("c++ consumer ok");
  return 0;
}
