// The bus in shared memory (shm:): events between processes, options of a bus that exists,
// a member killed with SIGKILL whose shards move to the survivors (with a live member as the
// negative control), and damaged shared memory reported as Corrupt.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstring>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "bus/internal/layout.h"
#include "weft/bus/bus.h"
#include "weft/shm/segment.h"

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
    size_t taken = 0;
    for (int i = 0; i < 200 && taken < 2; ++i) {  // until it reads two shards' events
      auto batch = (*m)->Poll(1000, Deadline::AfterMs(20));
      if (batch.ok()) taken += batch->size() > 0;
    }
    const char ok = (*m)->shards().size() == 2 ? 'y' : 'n';
    if (::write(pipefd[1], &ok, 1) != 1) return 4;
    for (;;) ::pause();  // holds its shards, commits nothing, until killed
  });
  constexpr int kEvents = 4000;
  for (int i = 0; i < kEvents; ++i) {
    const std::string k = std::to_string(i);
    ASSERT_TRUE((*bus)->IngestKeyed(AsBytes(k), AsBytes(k)).ok());
  }
  std::set<std::string> seen;
  auto drain = [&](int ms) {
    const int64_t until = MonotonicNs() + int64_t{ms} * 1'000'000;
    while (MonotonicNs() < until) {
      auto batch = (*survivor)->Poll(512, Deadline::AfterMs(10));
      if (!batch.ok()) continue;
      for (const Event& e : *batch) seen.insert(Str(e.data));
    }
  };
  // The child polls while the survivor does: two shards each.
  char ok = 0;
  std::thread reader([&] { ASSERT_EQ(::read(pipefd[0], &ok, 1), 1); });
  drain(300);
  reader.join();
  ASSERT_EQ(ok, 'y') << "the child did not get two shards";
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

}  // namespace
}  // namespace weft::bus
