// Fuzzes the consumer's reading of a ring written by an untrusted producer: the input becomes
// the ring's bytes and its shared cursors; the consumer reads until the ring is empty or it
// reports kCorrupt. It must never crash or return a view outside the ring.
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <string>

#include "shm/internal/channel_layout.h"
#include "weft/shm/channel.h"

using namespace weft;
using namespace weft::shm;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 16) return 0;
  static int counter = 0;
  const std::string name = "fuzz." + std::to_string(::getpid()) + "." + std::to_string(counter++);
  ChannelOptions opt;
  opt.capacity = 1024;
  opt.max_record = 200;
  opt.wait.spin_ns = 0;
  auto tx = Channel::Create(name, opt);
  if (!tx.ok()) __builtin_trap();
  auto seg = Segment::Open(name, 1, 1);
  auto* l = reinterpret_cast<weft::shm::internal::ChannelLayout*>(seg->base());
  uint8_t* ring = seg->base() + weft::shm::internal::kDataOffset;
  uint64_t read_pos, span;
  std::memcpy(&read_pos, data, 8);
  std::memcpy(&span, data + 8, 8);
  read_pos &= ~uint64_t{7};
  read_pos %= uint64_t{1} << 40;
  span %= 2 * opt.capacity;  // sometimes more than the capacity: must be rejected
  std::memcpy(ring, data + 16, std::min<size_t>(size - 16, opt.capacity));
  l->consumer.read_pos = read_pos;
  l->producer.write_pos = read_pos + span;
  auto rx = Channel::Open(name, Role::kConsumer);
  if (!rx.ok()) __builtin_trap();
  for (int i = 0; i < 300; ++i) {
    auto v = (*rx)->Read(Deadline::Now());
    if (!v.ok()) break;
    const uint8_t* p = v->data();
    const ByteView r = (*rx)->ring();
    if (p < r.data() || p + v->size() > r.data() + r.size()) __builtin_trap();
    volatile uint8_t sink = v->empty() ? 0 : p[v->size() - 1];
    (void)sink;
    if (!(*rx)->Release().ok()) __builtin_trap();
  }
  Channel::Unlink(name).IgnoreError();
  return 0;
}
