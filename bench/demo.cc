// weft demo: a producer process streams 50 MB tensors and a burst of 64-byte messages to a
// consumer process, which verifies every checksum; then a Unix socket does the same work.
#include <sys/wait.h>
#include <unistd.h>

#include <sys/mman.h>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "bench_util.h"
#include "suites.h"
#include "links.h"
#include "weft/core/clock.h"
#include "weft/shm/channel.h"

namespace weft::bench {
namespace {

using bench::Fork;
using bench::Join;
using bench::TouchSum;

constexpr size_t kTensor = 50ull << 20;
constexpr size_t kHeader = 24;  // seq, checksum, commit time
constexpr size_t kMessage = 64;

struct Shared {
  std::atomic<uint64_t> ready, errors, verified_tensors, verified_messages;
  std::atomic<int64_t> msg_start, msg_end;
  int64_t tensor_latency[64];
};

struct Outcome {
  std::vector<int64_t> latency;
  double msgs_per_s = 0;
  uint64_t verified_tensors = 0, verified_messages = 0, errors = 0;
};

void FillTensor(uint8_t* p, size_t n, uint64_t seq) {
  auto* f = reinterpret_cast<float*>(p);
  for (size_t i = 0; i < n / 4; ++i) f[i] = static_cast<float>((i + seq) % 1000) * 0.5f;
}

void FillMessage(uint8_t* p, uint64_t seq) {
  std::memcpy(p, &seq, 8);
  for (size_t i = 16; i < kMessage; ++i) p[i] = static_cast<uint8_t>(seq + i);
  uint64_t check = TouchSum(p + 16, kMessage - 16) ^ (seq * 0x9E3779B97F4A7C15ull);
  std::memcpy(p + 8, &check, 8);
}

bool CheckMessage(const uint8_t* p, uint64_t want_seq) {
  uint64_t seq, check;
  std::memcpy(&seq, p, 8);
  std::memcpy(&check, p + 8, 8);
  return seq == want_seq && check == (TouchSum(p + 16, kMessage - 16) ^ (seq * 0x9E3779B97F4A7C15ull));
}

// Reads the consumer's results out of shared memory and frees it.
Outcome Collect(Shared* sh, int tensors, uint64_t messages, int child_rc) {
  Outcome out;
  out.latency.assign(sh->tensor_latency, sh->tensor_latency + tensors);
  out.msgs_per_s = messages / ((sh->msg_end - sh->msg_start) / 1e9);
  out.verified_tensors = sh->verified_tensors;
  out.verified_messages = sh->verified_messages;
  out.errors = sh->errors + (child_rc != 0 ? 1 : 0);
  bench::SharedFree(sh, sizeof(Shared));
  return out;
}

// Waits until the child says it is ready; false if it exited first.
bool AwaitReady(Shared* sh, pid_t child) {
  while (sh->ready.load() == 0) {
    int status;
    if (::waitpid(child, &status, WNOHANG) == child) return false;
    usleep(100);
  }
  return true;
}

// The channel's shared-memory name while it exists, for the signal handler.
char g_segment[96] = {};

// A demo stopped by a signal (Ctrl-C, SIGTERM, SIGPIPE from `weft demo | head`) removes its
// channel, then dies of the signal as it would have.
void OnFatalSignal(int sig) {
  if (g_segment[0] != '\0') ::shm_unlink(g_segment);
  std::signal(sig, SIG_DFL);
  ::raise(sig);
}

Outcome RunWeft(int tensors, uint64_t messages) {
  const std::string name = "demo." + std::to_string(::getpid());
  std::snprintf(g_segment, sizeof(g_segment), "/weft.%s", name.c_str());
  for (int sig : {SIGINT, SIGTERM, SIGPIPE, SIGHUP}) std::signal(sig, OnFatalSignal);
  shm::ChannelOptions o;
  o.capacity = 3 * (kTensor + kHeader) + (1 << 20);
  auto tx_r = shm::Channel::Create(name, o);
  if (!tx_r.ok()) {
    std::fprintf(stderr, "weft demo: %s\n", tx_r.status().ToString().c_str());
    std::exit(1);
  }
  auto tx = std::move(tx_r).value();
  auto* sh = static_cast<Shared*>(bench::SharedAlloc(sizeof(Shared)));
  pid_t child = Fork([&] {
    auto rx_r = shm::Channel::Open(name, shm::Role::kConsumer);
    if (!rx_r.ok()) return 1;
    auto rx = std::move(rx_r).value();
    sh->ready = 1;
    for (int t = 0; t < tensors; ++t) {
      auto v = rx->Read(Deadline::AfterMs(30'000));
      if (!v.ok()) return 2;
      uint64_t seq, check;
      int64_t t0;
      std::memcpy(&seq, v->data(), 8);
      std::memcpy(&check, v->data() + 8, 8);
      std::memcpy(&t0, v->data() + 16, 8);
      const bool ok = seq == static_cast<uint64_t>(t) && v->size() == kHeader + kTensor &&
                      TouchSum(v->data() + kHeader, kTensor) == check;
      sh->tensor_latency[t] = MonotonicNs() - t0;
      (ok ? sh->verified_tensors : sh->errors)++;
      if (!rx->Release().ok()) return 3;
    }
    size_t held = 0;
    for (uint64_t i = 0; i < messages; ++i) {
      auto v = rx->Read(Deadline::Now());
      if (!v.ok()) {
        if (held) rx->Release(held).IgnoreError();
        held = 0;
        v = rx->Read(Deadline::AfterMs(30'000));
        if (!v.ok()) return 4;
      }
      (v->size() == kMessage && CheckMessage(v->data(), i) ? sh->verified_messages : sh->errors)++;
      if (++held == 256) {
        rx->Release(held).IgnoreError();
        held = 0;
      }
    }
    if (held) rx->Release(held).IgnoreError();
    sh->msg_end = MonotonicNs();
    return 0;
  });
  if (!AwaitReady(sh, child)) {
    shm::Channel::Unlink(name).IgnoreError();
    std::fprintf(stderr, "weft demo: the consumer process failed to start\n");
    std::exit(1);
  }
  // Both sides are attached: the name is no longer needed. Removing it now means a demo killed
  // from here on (Ctrl-C, or SIGPIPE from `weft demo | head`) leaves no segment behind.
  shm::Channel::Unlink(name).IgnoreError();
  g_segment[0] = '\0';
  for (int t = 0; t < tensors; ++t) {
    auto buf = tx->Reserve(kHeader + kTensor, Deadline::AfterMs(30'000));
    if (!buf.ok()) break;
    uint8_t* p = buf->data();
    FillTensor(p + kHeader, kTensor, t);  // written once, in place
    uint64_t seq = t, check = TouchSum(p + kHeader, kTensor);
    std::memcpy(p, &seq, 8);
    std::memcpy(p + 8, &check, 8);
    int64_t t0 = MonotonicNs();
    std::memcpy(p + 16, &t0, 8);
    tx->Commit(kHeader + kTensor).IgnoreError();
  }
  sh->msg_start = MonotonicNs();
  for (uint64_t i = 0; i < messages; ++i) {
    auto buf = tx->Reserve(kMessage, Deadline::AfterMs(30'000));
    if (!buf.ok()) break;
    FillMessage(buf->data(), i);
    tx->CommitBatched(kMessage).IgnoreError();
    if ((i & 255) == 255) tx->Flush();
  }
  tx->Flush();
  const int rc = Join(child);
  return Collect(sh, tensors, messages, rc);
}

Outcome RunSocket(int tensors, uint64_t messages) {
  bench::LinkPair lp = bench::MakeLinkPair("uds", false);
  auto* sh = static_cast<Shared*>(bench::SharedAlloc(sizeof(Shared)));
  pid_t child = Fork([&] {
    auto link = lp.child();
    std::vector<uint8_t> buf(kHeader + kTensor);
    sh->ready = 1;
    for (int t = 0; t < tensors; ++t) {
      if (!link->Recv(buf.data(), buf.size())) return 2;
      uint64_t seq, check;
      int64_t t0;
      std::memcpy(&seq, buf.data(), 8);
      std::memcpy(&check, buf.data() + 8, 8);
      std::memcpy(&t0, buf.data() + 16, 8);
      const bool ok = seq == static_cast<uint64_t>(t) && TouchSum(buf.data() + kHeader, kTensor) == check;
      sh->tensor_latency[t] = MonotonicNs() - t0;
      (ok ? sh->verified_tensors : sh->errors)++;
    }
    uint8_t m[kMessage];
    for (uint64_t i = 0; i < messages; ++i) {
      if (!link->Recv(m, kMessage)) return 4;
      (CheckMessage(m, i) ? sh->verified_messages : sh->errors)++;
    }
    sh->msg_end = MonotonicNs();
    return 0;
  });
  auto link = lp.parent();
  std::vector<uint8_t> buf(kHeader + kTensor);
  if (!AwaitReady(sh, child)) {
    std::fprintf(stderr, "weft demo: the consumer process failed to start\n");
    std::exit(1);
  }
  for (int t = 0; t < tensors; ++t) {
    uint8_t* p = buf.data();
    FillTensor(p + kHeader, kTensor, t);
    uint64_t seq = t, check = TouchSum(p + kHeader, kTensor);
    std::memcpy(p, &seq, 8);
    std::memcpy(p + 8, &check, 8);
    int64_t t0 = MonotonicNs();
    std::memcpy(p + 16, &t0, 8);
    if (!link->Send(p, buf.size())) break;
  }
  sh->msg_start = MonotonicNs();
  uint8_t m[kMessage];
  for (uint64_t i = 0; i < messages; ++i) {
    FillMessage(m, i);
    if (!link->Send(m, kMessage)) break;
  }
  const int rc = Join(child);
  link.reset();
  lp.cleanup();
  return Collect(sh, tensors, messages, rc);
}

}  // namespace

int Demo(bool quick) {
  const int tensors = quick ? 8 : 20;
  const uint64_t messages = quick ? 200'000 : 1'000'000;
  std::printf("weft demo -- %s\n", bench::MachineLine().c_str());
  std::printf("A producer process sends %d tensors of 50 MB and %lu messages of 64 B to a consumer\n"
              "process, which verifies every checksum. Then a Unix socket does the same work.\n\n",
              tensors, static_cast<unsigned long>(messages));
  Outcome w = RunWeft(tensors, messages);
  Outcome u = RunSocket(tensors, messages);
  bench::Row rw, ru;
  bench::SetLatency(rw, w.latency);
  bench::SetLatency(ru, u.latency);
  std::printf("%-18s %14s %14s %16s %22s\n", "transport", "tensor p50", "tensor p99", "messages/s",
              "verified (errors)");
  auto line = [&](const char* name, const bench::Row& r, const Outcome& o) {
    char verified[64];
    std::snprintf(verified, sizeof(verified), "%lu+%lu (%lu)", static_cast<unsigned long>(o.verified_tensors),
                  static_cast<unsigned long>(o.verified_messages), static_cast<unsigned long>(o.errors));
    std::printf("%-18s %11.2f ms %11.2f ms %16.0f %22s\n", name, r.p50_ns / 1e6, r.p99_ns / 1e6,
                o.msgs_per_s, verified);
  };
  line("weft channel", rw, w);
  line("unix socket", ru, u);
  // Message rates compare as costs: the time per message.
  std::printf("\ntensor latency: from commit (weft) or first send (socket) until the consumer has\n"
              "checked the sum of all 50 MB. Against the Unix socket, weft was %s per tensor and %s per\n"
              "message.\n",
              Relative(rw.p50_ns, ru.p50_ns).c_str(),
              Relative(w.msgs_per_s > 0 ? 1 / w.msgs_per_s : 0, u.msgs_per_s > 0 ? 1 / u.msgs_per_s : 0).c_str());
  const bool ok = w.errors == 0 && u.errors == 0 && w.verified_tensors == static_cast<uint64_t>(tensors) &&
                  w.verified_messages == messages;
  std::printf("%s\n", ok ? "all checksums verified" : "VERIFICATION FAILED");
  return ok ? 0 : 1;
}

}  // namespace weft::bench
