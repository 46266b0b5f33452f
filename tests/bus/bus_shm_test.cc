// The bus in shared memory (shm:): events between processes, options of a bus that exists,
// a member killed with SIGKILL whose shards move to the survivors (with a live member as the
// negative control), and damaged shared memory reported as Corrupt.
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstring>
#include <atomic>
#include <map>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "bus/internal/layout.h"
#include "bus/internal/ring.h"
#include "weft/bus/bus.h"
#include "weft/shm/doorbell.h"
#include "weft/shm/segment.h"
#include "bus/cli_util.h"

namespace weft::bus {
namespace {

std::string Url() {
  static int n = 0;
  return "shm:test.bus." + std::to_string(::getpid()) + "." + std::to_string(n++);
}

std::string Str(ByteView b) { return std::string(reinterpret_cast<const char*>(b.data()), b.size()); }

struct Cleanup {
  std::string url;
  ~Cleanup() { Bus::Unlink(url).IgnoreError(); }
};

// Runs `body` in a child process; returns its pid.
template <typename F>
pid_t Child(F body) {
  const pid_t pid = ::fork();
  if (pid == 0) ::_exit(body());
  return pid;
}

int Reap(pid_t pid) {
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

TEST(BusShmTest, EventsCrossProcessesInOrderPerKey) {
  const std::string url = Url();
  Cleanup cleanup{url};
  auto bus = Bus::Open({.url = url, .shards = 4, .shard_bytes = 1 << 16, .groups = {"g"}});
  ASSERT_TRUE(bus.ok()) << bus.status().ToString();
  constexpr int kEvents = 20000;
  const pid_t producer = Child([&] {
    auto b = Bus::Open({.url = url});
    if (!b.ok()) return 2;
    for (int i = 0; i < kEvents; ++i) {
      const std::string key = "k" + std::to_string(i % 13), data = key + ":" + std::to_string(i);
      if (!(*b)->IngestKeyed(AsBytes(key), AsBytes(data), Deadline::AfterMs(10000)).ok()) return 3;
    }
    return 0;
  });
  auto c = (*bus)->Subscribe("g");
  ASSERT_TRUE(c.ok());
  std::map<std::string, int> last;
  int got = 0;
  while (got < kEvents) {
    auto batch = (*c)->Poll(256, Deadline::AfterMs(10000));
    ASSERT_TRUE(batch.ok()) << batch.status().ToString();
    for (const Event& e : *batch) {
      const std::string key = Str(e.key), data = Str(e.data);
      ASSERT_EQ(data.rfind(key + ":", 0), 0u);
      const int i = std::stoi(data.substr(key.size() + 1));
      if (last.count(key)) {
        ASSERT_GT(i, last[key]) << "order per key";
      }
      last[key] = i;
      ++got;
    }
  }
  EXPECT_EQ(Reap(producer), 0);
  EXPECT_EQ((*bus)->Stats().ingested, static_cast<uint64_t>(kEvents));
}

TEST(BusShmTest, ABusThatExistsKeepsItsOptions) {
  const std::string url = Url();
  Cleanup cleanup{url};
  auto first = Bus::Open({.url = url, .shards = 3, .shard_bytes = 1 << 14, .backpressure = Overflow::kDropNewest});
  ASSERT_TRUE(first.ok());
  auto second = Bus::Open({.url = url, .shards = 8});
  ASSERT_TRUE(second.ok());
  EXPECT_EQ((*second)->shards(), 3u);
  EXPECT_EQ((*second)->options().backpressure, Overflow::kDropNewest);
  auto strict = Bus::Open({.url = url, .shards = 8, .must_match = true});
  EXPECT_EQ(strict.status().code(), Code::kInvalidArgument) << strict.status().ToString();
  EXPECT_EQ(Bus::Open({.url = "shm:bad name"}).status().code(), Code::kInvalidArgument);
  EXPECT_TRUE(Bus::Unlink(url).ok());
  EXPECT_EQ(Bus::Unlink(url).code(), Code::kNotFound);
  EXPECT_TRUE((*first)->Ingest(AsBytes("still works")).ok());  // open handles keep working
}

// A member in a child process takes its shards and never commits; killed, its shards go to the
// survivor, which then receives everything, the killed member's uncommitted events included.
// While the child is alive (the negative control), the survivor does not get its shards.
TEST(BusShmTest, AKilledMembersShardsMoveToTheSurvivor) {
  const std::string url = Url();
  Cleanup cleanup{url};
  auto bus = Bus::Open({.url = url, .shards = 4, .shard_bytes = 1 << 16, .groups = {"g"}});
  ASSERT_TRUE(bus.ok());
  auto survivor = (*bus)->Subscribe("g");
  ASSERT_TRUE(survivor.ok());
  int pipefd[2];
  ASSERT_EQ(::pipe(pipefd), 0);
  const pid_t member = Child([&] {
    auto b = Bus::Open({.url = url});
    if (!b.ok()) return 2;
    auto m = (*b)->Subscribe("g", {.auto_commit = false});
    if (!m.ok()) return 3;
    for (int i = 0; i < 500 && (*m)->shards().size() < 2; ++i) (*m)->Poll(1000, Deadline::AfterMs(10)).status().IgnoreError();
    const char ok = (*m)->shards().size() == 2 ? 'y' : 'n';
    if (::write(pipefd[1], &ok, 1) != 1) return 4;
    // Takes what comes to its shards and commits nothing, until killed.
    for (;;) (*m)->Poll(1000, Deadline::AfterMs(10)).status().IgnoreError();
  });
  constexpr int kEvents = 4000;
  std::set<std::string> seen;
  auto drain = [&](int ms) {
    const int64_t until = MonotonicNs() + int64_t{ms} * 1'000'000;
    while (MonotonicNs() < until) {
      auto batch = (*survivor)->Poll(512, Deadline::AfterMs(10));
      if (!batch.ok()) continue;
      for (const Event& e : *batch) seen.insert(Str(e.data));
    }
  };
  // The survivor polls (handing two shards over) until the child has its two.
  std::atomic<char> ok{0};
  std::thread reader([&] {
    char c = 0;
    if (::read(pipefd[0], &c, 1) == 1) ok = c;
  });
  for (int i = 0; i < 500 && ok.load() == 0; ++i) drain(10);
  reader.join();
  ASSERT_EQ(ok.load(), 'y') << "the child did not get two shards";
  for (int i = 0; i < kEvents; ++i) {
    const std::string k = std::to_string(i);
    ASSERT_TRUE((*bus)->IngestKeyed(AsBytes(k), AsBytes(k)).ok());
  }
  drain(300);
  EXPECT_EQ((*survivor)->shards().size(), 2u) << "negative control: a live member keeps its shards";
  const size_t before_kill = seen.size();
  EXPECT_LT(before_kill, static_cast<size_t>(kEvents));
  ASSERT_EQ(::kill(member, SIGKILL), 0);
  EXPECT_EQ(Reap(member), 128 + SIGKILL);
  drain(1000);
  EXPECT_EQ((*survivor)->shards().size(), 4u);
  EXPECT_EQ(seen.size(), static_cast<size_t>(kEvents)) << "every event, the dead member's uncommitted ones included";
  ::close(pipefd[0]);
  ::close(pipefd[1]);
}

// Event data a reader can check by itself: iteration, sequence, and a fill derived from both.
std::string Stamp(uint32_t iter, uint32_t seq) {
  std::string d(48, '\0');
  std::memcpy(d.data(), &iter, 4);
  std::memcpy(d.data() + 4, &seq, 4);
  for (size_t i = 8; i < d.size(); ++i) d[i] = static_cast<char>((iter * 31 + seq * 7 + i) & 0xFF);
  return d;
}

bool Intact(ByteView data, uint32_t* iter, uint32_t* seq) {
  if (data.size() != 48) return false;
  std::memcpy(iter, data.data(), 4);
  std::memcpy(seq, data.data() + 4, 4);
  return Str(data) == Stamp(*iter, *seq);
}

// A producer process that ingests until killed (one at a time and in batches, in turns);
// with `pause_ns` it sleeps between each claim and its publish, so that the kill lands there.
pid_t KilledProducer(const std::string& url, uint32_t iter, int64_t pause_ns) {
  return Child([=] {
    internal::PauseAfterClaimForTest().store(pause_ns);
    auto b = Bus::Open({.url = url});
    if (!b.ok()) return 2;
    const std::string key = "p" + std::to_string(iter);
    for (uint32_t seq = 0;; seq += 4) {
      if (seq % 8 == 0) {
        for (uint32_t k = 0; k < 4; ++k) (*b)->IngestKeyed(AsBytes(key), AsBytes(Stamp(iter, seq + k)), Deadline::AfterMs(50)).status().IgnoreError();
      } else {
        // A batch goes to the thread's own shard: key it by sending keyed events one by one
        // above, and the batch unkeyed here (checked the same way).
        std::vector<std::string> d;
        std::vector<ByteView> v;
        for (uint32_t k = 0; k < 4; ++k) d.push_back(Stamp(iter, seq + k));
        for (auto& x : d) v.push_back(AsBytes(x));
        (*b)->IngestBatch(v, Deadline::AfterMs(50)).status().IgnoreError();
      }
    }
  });
}

// Reads until `marker` arrives or `ms` pass; checks every event; true if the marker came.
// With an empty marker, reads until nothing came for `ms`.
bool DrainUntil(Consumer& c, const std::string& marker, int ms, std::map<uint32_t, uint32_t>* last_seq, int* torn) {
  int64_t until = MonotonicNs() + int64_t{ms} * 1'000'000;
  while (MonotonicNs() < until) {
    auto batch = c.Poll(512, Deadline::AfterMs(20));
    if (!batch.ok()) continue;
    if (marker.empty()) until = MonotonicNs() + int64_t{ms} * 1'000'000;
    for (const Event& e : *batch) {
      if (Str(e.data) == marker) return true;
      uint32_t iter = 0, seq = 0;
      if (!Intact(e.data, &iter, &seq)) {
        ++*torn;
        continue;
      }
      const uint64_t key = (uint64_t{iter} << 8) | e.position.shard;
      auto it = last_seq->find(static_cast<uint32_t>(key));
      if (it != last_seq->end() && seq <= it->second) ++*torn;  // out of order or twice
      (*last_seq)[static_cast<uint32_t>(key)] = seq;
    }
  }
  return false;
}

TEST(BusShmTest, ProducersKilledAtAnyPointLeaveNoTornEventAndNoStuckShard) {
  const std::string url = Url();
  Cleanup cleanup{url};
  auto bus = Bus::Open({.url = url, .shards = 2, .shard_bytes = 1 << 16, .groups = {"g"}});
  ASSERT_TRUE(bus.ok());
  auto c = (*bus)->Subscribe("g");
  ASSERT_TRUE(c.ok());
  std::mt19937 rng(42);
  std::map<uint32_t, uint32_t> last_seq;
  int torn = 0;
  for (uint32_t iter = 0; iter < 120; ++iter) {
    const bool in_claim = iter % 3 == 0;  // every third kill lands between a claim and its publish
    const pid_t child = KilledProducer(url, iter, in_claim ? 200'000'000 : 0);
    std::this_thread::sleep_for(std::chrono::microseconds(in_claim ? 30'000 : rng() % 3000));
    ASSERT_EQ(::kill(child, SIGKILL), 0);
    ASSERT_EQ(Reap(child), 128 + SIGKILL);
    // The bus keeps working: what the dead producer published is read to the end (its claim
    // in flight repaired), and an event ingested now on each shard arrives after it.
    DrainUntil(**c, "", 60, &last_seq, &torn);
    for (uint32_t s = 0; s < 2; ++s) {
      std::string key;
      for (int k = 0; (*bus)->ShardOf(AsBytes(key = "m" + std::to_string(k))) != s; ++k) {
      }
      const std::string marker = "marker " + std::to_string(iter) + "/" + std::to_string(s);
      ASSERT_TRUE((*bus)->IngestKeyed(AsBytes(key), AsBytes(marker), Deadline::AfterMs(5000)).ok());
      ASSERT_TRUE(DrainUntil(**c, marker, 5000, &last_seq, &torn)) << "iteration " << iter << ": shard " << s << " is stuck";
    }
  }
  EXPECT_EQ(torn, 0);
  const BusStats st = (*bus)->Stats();
  uint64_t lost = 0;
  for (const ShardStats& s : st.per_shard) lost += s.lost_events;
  EXPECT_GT(lost, 0u) << "no kill landed inside a claim: the repair was not exercised";
}

// The negative control: with repairs off, a producer killed inside its claim leaves its shard
// stuck; with repairs on again, the shard goes on.
TEST(BusShmTest, WithoutRepairADeadProducersClaimStopsItsShard) {
  const std::string url = Url();
  Cleanup cleanup{url};
  auto bus = Bus::Open({.url = url, .shards = 1, .shard_bytes = 1 << 16, .groups = {"g"}});
  ASSERT_TRUE(bus.ok());
  auto c = (*bus)->Subscribe("g");
  ASSERT_TRUE(c.ok());
  const pid_t child = KilledProducer(url, 7, 200'000'000);
  std::this_thread::sleep_for(std::chrono::milliseconds(30));
  ASSERT_EQ(::kill(child, SIGKILL), 0);
  Reap(child);
  internal::SkipRepairForTest().store(true);
  ASSERT_TRUE((*bus)->Ingest(AsBytes("after")).ok());
  std::map<uint32_t, uint32_t> last_seq;
  int torn = 0;
  EXPECT_FALSE(DrainUntil(**c, "after", 300, &last_seq, &torn)) << "the shard should be stuck without repair";
  internal::SkipRepairForTest().store(false);
  EXPECT_TRUE(DrainUntil(**c, "after", 5000, &last_seq, &torn));
  EXPECT_EQ(torn, 0);
  EXPECT_GT((*bus)->Stats().per_shard[0].lost_events, 0u);
}

#ifdef WEFT_CLI
// The output and exit code of the weft command.
// weft inspect shows a bus's producers and members (dead ones marked); weft gc keeps a bus
// while a member lives (the negative control) and removes it once every user is gone.
TEST(BusShmTest, InspectShowsABusAndGcRemovesItOnlyOnceEveryUserIsGone) {
  const std::string url = Url(), name = url.substr(4);
  Cleanup cleanup{url};
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  const pid_t user = Child([&] {
    auto b = Bus::Open({.url = url, .shards = 2, .shard_bytes = 1 << 14, .groups = {"audit"}});
    if (!b.ok()) return 2;
    if (!(*b)->Ingest(AsBytes("one")).ok()) return 3;
    auto m = (*b)->Subscribe("audit");
    if (!m.ok()) return 4;
    const char c = 'y';
    if (::write(ready[1], &c, 1) != 1) return 5;
    for (;;) ::pause();
  });
  char c = 0;
  ASSERT_EQ(::read(ready[0], &c, 1), 1);
  auto [shown, code] = Weft("inspect " + name);
  EXPECT_EQ(code, 0) << shown;
  EXPECT_NE(shown.find("kind      bus"), std::string::npos) << shown;
  EXPECT_NE(shown.find("group     audit: 1 live members"), std::string::npos) << shown;
  EXPECT_NE(shown.find("producer  slot 0  pid " + std::to_string(user)), std::string::npos) << shown;
  auto [kept, kept_code] = Weft("gc");
  EXPECT_EQ(kept_code, 0) << kept;
  EXPECT_TRUE(Listed(name)) << "a live member keeps the bus: " << kept;
  ASSERT_EQ(::kill(user, SIGKILL), 0);
  EXPECT_EQ(Reap(user), 128 + SIGKILL);
  auto [dead, dead_code] = Weft("inspect " + name);
  EXPECT_NE(dead.find("DEAD"), std::string::npos) << dead;
  auto [removed, removed_code] = Weft("gc");
  EXPECT_EQ(removed_code, 0) << removed;
  EXPECT_NE(removed.find("removed weft." + name), std::string::npos) << removed;
  EXPECT_FALSE(Listed(name));
  ::close(ready[0]);
  ::close(ready[1]);
}
#endif

TEST(BusShmTest, DamagedSharedMemoryIsReportedNotFollowed) {
  const std::string url = Url();
  Cleanup cleanup{url};
  const std::string name = url.substr(4);
  {
    auto bus = Bus::Open({.url = url, .shards = 2, .shard_bytes = 1 << 14, .groups = {"g"}});
    ASSERT_TRUE(bus.ok());
    ASSERT_TRUE((*bus)->IngestKeyed(AsBytes("a"), AsBytes("first")).ok());
    auto c = (*bus)->Subscribe("g");
    ASSERT_TRUE(c.ok());
    // Another process of the same user scribbles the event's length: the member reports the
    // shard and offset instead of reading past the record.
    auto raw = shm::Segment::Open(name, static_cast<uint32_t>(shm::SegmentKind::kBus), internal::kLayoutVersion);
    ASSERT_TRUE(raw.ok());
    const uint32_t shard = (*bus)->ShardOf(AsBytes("a"));
    const internal::Geometry geo = internal::GeometryOf(2, 1 << 14);
    uint8_t* ring = raw->base() + internal::kSegmentLayoutOffset + geo.rings_at + geo.shard_bytes * shard;
    const uint32_t huge = 1 << 30;
    std::memcpy(ring + 8, &huge, 4);
    auto batch = (*c)->Poll(10, Deadline::AfterMs(100));
    ASSERT_FALSE(batch.ok());
    EXPECT_EQ(batch.status().code(), Code::kCorrupt) << batch.status().ToString();
    EXPECT_NE(batch.status().message().find("shard " + std::to_string(shard)), std::string::npos);
    // A header with impossible geometry refuses the open.
    uint8_t* header = raw->base() + internal::kSegmentLayoutOffset;
    const uint32_t shards = 100000;
    std::memcpy(header + 4, &shards, 4);
  }
  auto reopened = Bus::Open({.url = url});
  ASSERT_FALSE(reopened.ok());
  EXPECT_EQ(reopened.status().code(), Code::kCorrupt) << reopened.status().ToString();
}

TEST(BusShmTest, ABusShrunkByAThirdProcessReportsCorruptToEveryCall) {
  const std::string url = Url();
  Cleanup cleanup{url};
  auto bus = Bus::Open({.url = url, .shards = 2, .shard_bytes = 1 << 14, .groups = {"g"}});
  ASSERT_TRUE(bus.ok());
  auto c = (*bus)->Subscribe("g");
  ASSERT_TRUE(c.ok());
  ASSERT_TRUE((*bus)->Ingest(AsBytes("before")).ok());
  auto first = (*c)->Poll(10, Deadline::AfterMs(100));
  ASSERT_TRUE(first.ok());
  ASSERT_EQ(first->size(), 1u);
  // A process that is neither producer nor member truncates the file under both.
  const std::string path = "/dev/shm/weft." + url.substr(4);
  EXPECT_EQ(Reap(Child([&] {
              const int fd = ::open(path.c_str(), O_RDWR);
              return fd >= 0 && ::ftruncate(fd, 0) == 0 ? 0 : 1;
            })),
            0);
  // Without the check, both sides go on: the producer writes into zeros nobody shares and
  // gets a position, the member waits for events that can never come (the old behaviour).
  auto in = (*bus)->Ingest(AsBytes("after"));
  ASSERT_FALSE(in.ok());
  EXPECT_EQ(in.status().code(), Code::kCorrupt) << in.status().ToString();
  const ByteView two[] = {AsBytes("x"), AsBytes("y")};
  auto batch_in = (*bus)->IngestBatch(two);
  ASSERT_FALSE(batch_in.ok());
  EXPECT_EQ(batch_in.status().code(), Code::kCorrupt);
  auto polled = (*c)->Poll(10, Deadline::AfterMs(100));
  ASSERT_FALSE(polled.ok());
  EXPECT_EQ(polled.status().code(), Code::kCorrupt) << polled.status().ToString();
  EXPECT_NE(polled.status().message().find("shrank"), std::string::npos);
  // Closing and stats still work on what is left.
  EXPECT_EQ((*bus)->Stats().shards, 2u);
  EXPECT_TRUE((*c)->Close().ok());
}

bool Readable(int fd, int ms) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, ms) == 1 && (p.revents & POLLIN) != 0;
}

void DrainFd(int fd) {
  char buf[64];
  while (::recv(fd, buf, sizeof(buf), MSG_DONTWAIT) > 0) {
  }
}

// WaitFd: readable at first; quiet once a poll found nothing (and armed it); rung by a producer
// in another process and by a change of membership. Negative control: a member that did not
// arm (no poll since its descriptor was drained) is not rung.
TEST(BusShmTest, AMembersDescriptorIsRungByProducersInOtherProcessesOnceArmed) {
  const std::string url = Url();
  Cleanup cleanup{url};
  auto bus = Bus::Open({.url = url, .shards = 2, .shard_bytes = 1 << 14, .groups = {"g"}});
  ASSERT_TRUE(bus.ok());
  auto c = (*bus)->Subscribe("g");
  ASSERT_TRUE(c.ok());
  auto fd = (*c)->WaitFd();
  ASSERT_TRUE(fd.ok()) << fd.status().ToString();
  EXPECT_TRUE(Readable(*fd, 0)) << "it starts readable";
  EXPECT_EQ((*c)->Poll(8, Deadline::Now()).status().code(), Code::kWouldBlock);
  EXPECT_FALSE(Readable(*fd, 0)) << "quiet once armed with nothing to read";
  auto ingest = [&](const char* what) {
    return Reap(Child([&] {
      auto b = Bus::Open({.url = url, .create = false});
      return b.ok() && (*b)->Ingest(AsBytes(what)).ok() ? 0 : 1;
    }));
  };
  ASSERT_EQ(ingest("one"), 0);
  EXPECT_TRUE(Readable(*fd, 5000)) << "a producer in another process rang it";
  auto got = (*c)->Poll(8, Deadline::Now());
  ASSERT_TRUE(got.ok());
  ASSERT_EQ(got->size(), 1u);
  EXPECT_EQ(Str((*got)[0].data), "one");
  // Negative control: drained by hand and not armed again, the next event does not ring.
  DrainFd(*fd);
  ASSERT_EQ(ingest("two"), 0);
  EXPECT_FALSE(Readable(*fd, 200)) << "only an armed member is rung";
  got = (*c)->Poll(8, Deadline::Now());  // the event is there all the same
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->size(), 1u);
  // Armed again: a member joining (a change of shards) rings it too.
  EXPECT_EQ((*c)->Poll(8, Deadline::Now()).status().code(), Code::kWouldBlock);
  EXPECT_FALSE(Readable(*fd, 0));
  auto other = (*bus)->Subscribe("g");
  ASSERT_TRUE(other.ok());
  EXPECT_TRUE(Readable(*fd, 5000)) << "membership changed";
  (*c)->Poll(8, Deadline::Now()).status().IgnoreError();  // rebalances, re-arms
  EXPECT_EQ((*c)->shards().size(), 1u);
  (*c)->Interrupt();
  EXPECT_TRUE(Readable(*fd, 5000)) << "Interrupt rings it";
  EXPECT_EQ((*c)->Poll(8, Deadline::Now()).status().code(), Code::kClosed);
}

// The abstract Unix sockets bound now whose name starts with `prefix` (from /proc/net/unix).
std::vector<std::string> AbstractSockets(const std::string& prefix) {
  std::vector<std::string> out;
  FILE* f = std::fopen("/proc/net/unix", "r");
  if (f == nullptr) return out;
  char line[512];
  while (std::fgets(line, sizeof(line), f) != nullptr) {
    std::string l(line);
    const size_t at = l.find(" @" + prefix);
    if (at != std::string::npos) out.push_back(l.substr(at + 2, l.find_last_not_of("\n") - at - 1));
  }
  std::fclose(f);
  return out;
}

// A member's doorbell is an abstract socket any local process can reach: rings forged in a
// flood from another process make it poll and find nothing (no event is made up, the next real
// one still arrives), and a name squatted before the member binds it fails WaitFd with the error
// instead of hanging anything; polling goes on.
TEST(BusShmTest, ForgedRingsAndASquattedDoorbellCannotFakeEventsOrHangAMember) {
  const std::string url = Url();
  Cleanup cleanup{url};
  auto bus = Bus::Open({.url = url, .shards = 1, .shard_bytes = 1 << 14, .groups = {"g"}});
  ASSERT_TRUE(bus.ok());
  auto c = (*bus)->Subscribe("g");
  ASSERT_TRUE(c.ok());
  auto fd = (*c)->WaitFd();
  ASSERT_TRUE(fd.ok());
  const std::vector<std::string> bells = AbstractSockets("weft.bus.");
  std::string name;
  for (const std::string& b : bells) {
    if (b.find(".g0.m0.") != std::string::npos) name = b;
  }
  ASSERT_FALSE(name.empty()) << "the member's doorbell is not in /proc/net/unix";
  EXPECT_EQ((*c)->Poll(8, Deadline::Now()).status().code(), Code::kWouldBlock);  // armed
  EXPECT_EQ(Reap(Child([&] {
              int send = -1;
              for (int i = 0; i < 10000; ++i) shm::RingDoorbell(name, &send);
              return 0;
            })),
            0);
  EXPECT_TRUE(Readable(*fd, 1000)) << "the forged rings wake it";
  EXPECT_EQ((*c)->Poll(8, Deadline::Now()).status().code(), Code::kWouldBlock) << "and it finds nothing";
  EXPECT_FALSE(Readable(*fd, 0)) << "drained and armed again";
  ASSERT_TRUE((*bus)->Ingest(AsBytes("real")).ok());
  EXPECT_TRUE(Readable(*fd, 5000));
  auto got = (*c)->Poll(8, Deadline::Now());
  ASSERT_TRUE(got.ok());
  ASSERT_EQ(got->size(), 1u);
  EXPECT_EQ(Str((*got)[0].data), "real");

  // The next member of slot 0 gets epoch + 1: its doorbell's name, bound first by someone else.
  const uint32_t epoch = static_cast<uint32_t>(std::stoul(name.substr(name.rfind('.') + 1)));
  const std::string next = name.substr(0, name.rfind('.') + 1) + std::to_string(epoch + 1);
  ASSERT_TRUE((*c)->Close().ok());
  auto squat = shm::BindDoorbell(next);
  ASSERT_TRUE(squat.ok()) << squat.status().ToString();
  auto c2 = (*bus)->Subscribe("g");
  ASSERT_TRUE(c2.ok());
  auto refused = (*c2)->WaitFd();
  ASSERT_FALSE(refused.ok()) << "bound " << next << " twice";
  EXPECT_NE(refused.status().message().find(next), std::string::npos) << refused.status().ToString();
  ASSERT_TRUE((*bus)->Ingest(AsBytes("still")).ok());
  auto later = (*c2)->Poll(8, Deadline::AfterMs(2000));
  ASSERT_TRUE(later.ok()) << later.status().ToString();
  EXPECT_EQ(Str(later->back().data), "still");
  ::close(*squat);
}

}  // namespace
}  // namespace weft::bus
