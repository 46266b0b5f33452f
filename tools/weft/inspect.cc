// weft inspect NAME and weft gc.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <ctime>
#include <string>

#include "commands.h"
#include "weft/core/clock.h"
#include "weft/shm/channel.h"
#include "weft/shm/pool.h"
#include "weft/shm/process.h"
#include "weft/shm/topic.h"
#include "weft/bus/bus.h"
#include "weft/shm/segment.h"

namespace weft::cli {
namespace {

using shm::Segment;

void PrintEndpoint(const char* role, const shm::EndpointInfo& e) {
  std::printf("  %-9s %-9s pid %-7d epoch %-4u %s\n", role, e.state.c_str(), e.pid, e.epoch,
              e.state == "attached" ? (e.alive ? "alive" : "DEAD") : "");
}

int InspectPool(const std::string& name) {
  auto snap = shm::Pool::Snapshot(name);
  if (!snap.ok()) {
    std::fprintf(stderr, "weft inspect: %s\n", snap.status().ToString().c_str());
    return 1;
  }
  const shm::PoolStats& s = *snap;
  std::printf("pool\n");
  std::printf("  pages     %zu of %zu KiB in %zu arenas, %zu assigned to size classes\n", s.pages,
              s.page_size / 1024, s.arenas, s.pages_assigned);
  std::printf("  in use    %lu blocks, %lu bytes; %lu large blocks, %lu bytes\n",
              static_cast<unsigned long>(s.blocks_in_use), static_cast<unsigned long>(s.bytes_in_use),
              static_cast<unsigned long>(s.large_in_use), static_cast<unsigned long>(s.large_bytes));
  std::printf("  classes  ");
  for (size_t c = 0; c < s.pages_per_class.size(); ++c) {
    if (s.pages_per_class[c] == 0) continue;
    std::printf(" %zuB:%lu", shm::Pool::kMinBlock << c, static_cast<unsigned long>(s.pages_per_class[c]));
  }
  std::printf(" (pages per class)\n");
  for (const shm::PoolHolder& hd : s.holders) {
    std::printf("  holder %-2d pid %-7d %-5s holds %lu blocks\n", hd.slot, hd.pid, hd.alive ? "alive" : "DEAD",
                static_cast<unsigned long>(hd.blocks));
  }
  return 0;
}

int InspectTopic(const std::string& name) {
  auto info = shm::InspectTopic(name);
  if (!info.ok()) {
    std::fprintf(stderr, "weft inspect: %s\n", info.status().ToString().c_str());
    return 1;
  }
  std::printf("topic\n");
  std::printf("  limits    %u publishers, %u subscribers, queue %u, history %u (pool %s.pool)\n",
              info->max_publishers, info->max_subscribers, info->queue_depth, info->history, name.c_str());
  for (const auto& p : info->publishers) {
    std::printf("  publisher %-2d pid %-7d %-5s published %lu\n", p.index, p.pid, p.alive ? "alive" : "DEAD",
                static_cast<unsigned long>(p.published));
  }
  for (const auto& s : info->subscribers) {
    std::printf("  subscriber %-2d pid %-7d %-5s %-11s queued %lu, taken %lu, dropped %lu newest, %lu oldest\n",
                s.index, s.pid, s.alive ? "alive" : "DEAD", s.on_full.c_str(), static_cast<unsigned long>(s.queued),
                static_cast<unsigned long>(s.taken), static_cast<unsigned long>(s.drops_newest),
                static_cast<unsigned long>(s.drops_oldest));
  }
  return 0;
}

// A shm: bus as it stands, without joining it (kNotFound if it is not there).
Result<bus::BusStats> BusStatsOf(const std::string& name) {
  bus::BusOptions o;
  o.url = "shm:" + name;
  o.create = false;
  auto b = bus::Bus::Open(o);
  if (!b.ok()) return b.status();
  return (*b)->Stats();
}

}  // namespace

int DescribeBus(const std::string& url) {
  bus::BusOptions o;
  o.url = url;
  o.create = false;
  const bool durable = url.rfind("log:", 0) == 0;
  const bool remote = bus::IsRemoteUrl(url);
  if (durable) o.backpressure = Overflow::kDropOldest;
  auto b = bus::Bus::Open(o);
  if (!b.ok()) {
    std::fprintf(stderr, "weft: %s\n", b.status().ToString().c_str());
    return 1;
  }
  const bus::BusOptions& opt = (*b)->options();
  const bus::BusStats st = (*b)->Stats();
  // Positions are bytes in a ring, or record numbers in a log; a server counts events.
  const char* unit = durable || remote ? "events" : "bytes";
  if (remote) {
    std::printf("bus (on %s)\n", url.substr(0, url.find("://")).c_str());
    std::printf("  shards    %u %s, max event %u%s\n", st.shards, url.rfind("redis", 0) == 0 ? "streams" : "subjects",
                opt.max_event, opt.timestamps ? ", timestamps" : "");
  } else if (durable) {
    std::printf("bus (durable, in %s)\n", url.substr(4).c_str());
    std::printf("  shards    %u logs, max event %u, backpressure %s%s\n", st.shards, opt.max_event,
                OverflowName(opt.backpressure), opt.timestamps ? ", timestamps" : "");
  } else {
    std::printf("bus\n");
    std::printf("  shards    %u of %lu bytes, max event %u, backpressure %s%s\n", st.shards,
                static_cast<unsigned long>(opt.shard_bytes), opt.max_event, OverflowName(opt.backpressure),
                opt.timestamps ? ", timestamps" : "");
  }
  std::printf("  events    %lu ingested, %lu dropped newest, %lu dropped oldest, %lu lost with their producer\n",
              static_cast<unsigned long>(st.ingested), static_cast<unsigned long>(st.dropped_newest),
              static_cast<unsigned long>(st.dropped_oldest), static_cast<unsigned long>(st.lost_events));
  for (uint32_t s = 0; s < st.per_shard.size(); ++s) {
    const bus::ShardStats& x = st.per_shard[s];
    std::printf("  shard %-3u tail %lu, oldest %lu, %lu %s held\n", s, static_cast<unsigned long>(x.tail),
                static_cast<unsigned long>(x.oldest), static_cast<unsigned long>(x.depth_bytes), unit);
  }
  for (const bus::Participant& p : st.producers) {
    std::printf("  producer  slot %-2u pid %-7d %s\n", p.slot, p.pid, p.alive ? "alive" : "DEAD");
  }
  for (const bus::GroupStats& g : st.groups) {
    std::printf("  group     %s: %u live members, %lu delivered, %lu dropped, lag %lu %s\n", g.name.c_str(), g.members,
                static_cast<unsigned long>(g.delivered), static_cast<unsigned long>(g.dropped),
                static_cast<unsigned long>(g.lag_bytes), unit);
    for (const bus::Participant& p : g.holders) {
      std::printf("    member  slot %-2u pid %-7d %s\n", p.slot, p.pid, p.alive ? "alive" : "DEAD");
    }
  }
  return 0;
}

int Inspect(const std::string& name) {
  auto seg = Segment::Open(name, 0, 0);
  if (!seg.ok()) {
    std::fprintf(stderr, "weft inspect: %s\n", seg.status().ToString().c_str());
    return 1;
  }
  const shm::SegmentHeader* h = seg->header();
  const bool creator_alive = shm::IsAlive({h->creator_pid, h->creator_start_ticks});
  time_t created = static_cast<time_t>(h->created_unix_ns / 1'000'000'000);
  char when[64];
  std::strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", std::localtime(&created));
  std::printf("segment   weft.%s\n", name.c_str());
  std::printf("  kind      %s (layout v%u, header v%u)\n", shm::SegmentKindName(h->kind), h->kind_version, h->version);
  std::printf("  size      %lu bytes\n", static_cast<unsigned long>(h->total_bytes));
  std::printf("  creator   pid %d (%s), created %s\n", h->creator_pid, creator_alive ? "alive" : "gone", when);
  if (h->kind == static_cast<uint32_t>(shm::SegmentKind::kPool)) return InspectPool(name);
  if (h->kind == static_cast<uint32_t>(shm::SegmentKind::kTopic)) return InspectTopic(name);
  if (h->kind == static_cast<uint32_t>(shm::SegmentKind::kBus)) return DescribeBus("shm:" + name);
  if (h->kind == static_cast<uint32_t>(shm::SegmentKind::kRegistry)) {
    auto topics = shm::ListTopics();
    if (!topics.ok()) {
      std::fprintf(stderr, "weft inspect: %s\n", topics.status().ToString().c_str());
      return 1;
    }
    std::printf("registry\n  %zu topics\n", topics->size());
    for (const std::string& t : *topics) std::printf("  topic     %s\n", t.c_str());
    return 0;
  }
  if (h->kind != static_cast<uint32_t>(shm::SegmentKind::kChannel)) return 0;
  auto snap = shm::Channel::Snapshot(name);
  if (!snap.ok()) {
    std::fprintf(stderr, "weft inspect: %s\n", snap.status().ToString().c_str());
    return 1;
  }
  const shm::ChannelSnapshot& s = *snap;
  std::printf("channel\n");
  std::printf("  capacity  %lu bytes, max record %lu bytes, when full: %s\n",
              static_cast<unsigned long>(s.capacity), static_cast<unsigned long>(s.max_record),
              OverflowName(s.overflow));
  PrintEndpoint("producer", s.producer);
  PrintEndpoint("consumer", s.consumer);
  const uint64_t used = s.write_pos >= s.read_pos ? s.write_pos - s.read_pos : 0;
  std::printf("  cursors   write %lu, read %lu, in ring %lu bytes (%.1f%%)\n",
              static_cast<unsigned long>(s.write_pos), static_cast<unsigned long>(s.read_pos),
              static_cast<unsigned long>(used), s.capacity ? 100.0 * used / s.capacity : 0.0);
  std::printf("  in        %lu records, %lu bytes; dropped %lu newest, %lu oldest\n",
              static_cast<unsigned long>(s.records_in), static_cast<unsigned long>(s.bytes_in),
              static_cast<unsigned long>(s.drops_newest), static_cast<unsigned long>(s.drops_oldest));
  std::printf("  out       %lu records, %lu bytes\n", static_cast<unsigned long>(s.records_out),
              static_cast<unsigned long>(s.bytes_out));
  std::printf("  producer  spins %lu, sleeps %lu, wakes sent %lu, bells sent %lu\n",
              static_cast<unsigned long>(s.producer_spins), static_cast<unsigned long>(s.producer_sleeps),
              static_cast<unsigned long>(s.producer_wakes), static_cast<unsigned long>(s.producer_bells));
  std::printf("  consumer  spins %lu, sleeps %lu, wakes sent %lu, bells sent %lu\n",
              static_cast<unsigned long>(s.consumer_spins), static_cast<unsigned long>(s.consumer_sleeps),
              static_cast<unsigned long>(s.consumer_wakes), static_cast<unsigned long>(s.consumer_bells));
  return 0;
}

namespace {

// What gc decided about one segment: removable (with the proof), or kept (with the reason).
struct Verdict {
  bool dead = false;
  std::string why;
  bool doubt = false;  // kept because its liveness could not be established (reported)
};

Verdict Doubt(std::string why) { return {false, std::move(why), true}; }

// A segment whose header never became valid: its creator died between creating the file and
// publishing the header (it writes its pid and start time first), and nobody can attach to an
// unpublished segment. Anything else that cannot be parsed is kept: its liveness is unknown.
Verdict Unpublished(const std::string& name, const Status& open_error) {
  const std::string path = "/dev/shm/weft." + name;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return Doubt("unreadable (" + open_error.ToString() + ")");
  struct stat st {};
  shm::SegmentHeader h{};
  const bool read = ::fstat(fd, &st) == 0 && ::pread(fd, &h, sizeof(h), 0) == static_cast<ssize_t>(sizeof(h));
  ::close(fd);
  if (!read || st.st_uid != ::geteuid()) return Doubt("unreadable (" + open_error.ToString() + ")");
  if (h.magic != 0 || h.version != shm::kSegmentVersion || h.creator_pid <= 0 || h.creator_start_ticks == 0) {
    return Doubt("unreadable, liveness unknown (" + open_error.ToString() + ")");
  }
  if (shm::IsAlive({h.creator_pid, h.creator_start_ticks})) return {false, "being created by pid " + std::to_string(h.creator_pid)};
  return {true, "never initialized; its creator, pid " + std::to_string(h.creator_pid) + ", is gone"};
}

// Proves a segment dead: its creator and every process attached to it are gone. Any doubt
// (a snapshot that fails, a kind it does not know) keeps it.
Verdict Judge(const std::string& name) {
  auto seg = Segment::Open(name, 0, 0);
  if (!seg.ok()) {
    if (seg.status().code() == Code::kPermissionDenied) return Doubt(seg.status().message());
    return Unpublished(name, seg.status());
  }
  const shm::SegmentHeader* h = seg->header();
  const uint32_t kind = h->kind;
  if (shm::IsAlive({h->creator_pid, h->creator_start_ticks})) return {false, "its creator lives"};
  const std::string gone = std::string(shm::SegmentKindName(kind)) + ", creator pid " +
                           std::to_string(h->creator_pid) + " and its users are gone";
  auto unknown = [&](const Status& st) { return Doubt("liveness unknown (" + st.ToString() + ")"); };
  switch (static_cast<shm::SegmentKind>(kind)) {
    case shm::SegmentKind::kChannel: {
      auto snap = shm::Channel::Snapshot(name);
      if (!snap.ok()) return unknown(snap.status());
      if (snap->producer.alive || snap->consumer.alive) return {false, "a peer is attached"};
      return {true, gone};
    }
    case shm::SegmentKind::kPool: {
      auto snap = shm::Pool::Snapshot(name);
      if (!snap.ok()) return unknown(snap.status());
      for (const shm::PoolHolder& hd : snap->holders) {
        if (hd.alive) return {false, "a holder is attached"};
      }
      return {true, gone};
    }
    case shm::SegmentKind::kRegistry: {
      auto topics = shm::ListTopics();  // the registry outlives its creator while it lists topics
      if (!topics.ok()) return unknown(topics.status());
      if (!topics->empty()) return {false, "it lists live topics"};
      return {true, gone};
    }
    case shm::SegmentKind::kTopic: {
      auto info = shm::InspectTopic(name);
      if (!info.ok()) return unknown(info.status());
      for (const auto& e : info->publishers) {
        if (e.alive) return {false, "a publisher is attached"};
      }
      for (const auto& e : info->subscribers) {
        if (e.alive) return {false, "a subscriber is attached"};
      }
      return {true, gone};
    }
    case shm::SegmentKind::kBus: {
      auto st = BusStatsOf(name);
      if (!st.ok()) return unknown(st.status());
      for (const bus::Participant& p : st->producers) {
        if (p.alive) return {false, "a producer is attached"};
      }
      for (const bus::GroupStats& g : st->groups) {
        for (const bus::Participant& p : g.holders) {
          if (p.alive) return {false, "a member of group " + g.name + " is attached"};
        }
      }
      return {true, gone};
    }
    case shm::SegmentKind::kBlock: {
      // Arenas and large blocks live as long as their pool: "<pool>.A<i>", "<pool>.L<serial>".
      size_t dot = name.rfind(".L");
      const size_t arena_dot = name.rfind(".A");
      if (dot == std::string::npos || (arena_dot != std::string::npos && arena_dot > dot)) dot = arena_dot;
      if (dot == std::string::npos) return Doubt("a block segment without a pool name");
      auto pool = Segment::Open(name.substr(0, dot), 0, 0);
      if (pool.ok()) return {false, "its pool exists"};
      if (pool.status().code() != Code::kNotFound) return unknown(pool.status());
      return {true, "block of pool " + name.substr(0, dot) + ", which is gone"};
    }
  }
  return Doubt("a segment of unknown kind " + std::to_string(kind));
}

}  // namespace

// Removes only what it has proved dead, reports everything it kept and why, and counts
// exactly what it did (a removal that fails is counted as failed, not removed).
int Gc(bool dry_run) {
  int removed = 0, kept = 0, failed = 0;
  for (const std::string& name : Segment::List()) {
    const Verdict v = Judge(name);
    if (!v.dead) {
      ++kept;
      if (v.doubt) std::printf("kept weft.%s: %s\n", name.c_str(), v.why.c_str());  // live ones go unsaid
      continue;
    }
    if (dry_run) {
      std::printf("would remove weft.%s: %s\n", name.c_str(), v.why.c_str());
      ++removed;
      continue;
    }
    // A pool takes its arenas and kept large blocks with it.
    auto seg = Segment::Open(name, 0, 0);
    const bool pool = seg.ok() && seg->header()->kind == static_cast<uint32_t>(shm::SegmentKind::kPool);
    Status s = pool ? shm::Pool::Unlink(name) : Segment::Unlink(name);
    if (!s.ok()) {
      std::printf("could not remove weft.%s: %s\n", name.c_str(), s.ToString().c_str());
      ++failed;
      continue;
    }
    std::printf("removed weft.%s: %s\n", name.c_str(), v.why.c_str());
    ++removed;
  }
  std::printf("gc: %d %s, %d kept", removed, dry_run ? "to remove" : "removed", kept);
  if (failed > 0) std::printf(", %d could not be removed", failed);
  std::printf("\n");
  return failed > 0 ? 1 : 0;
}

}  // namespace weft::cli
