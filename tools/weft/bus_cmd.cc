// `weft bus publish|tail|stat`: a shm:, log:, redis:// or nats:// bus from the command line.
#include <cinttypes>
#include <csignal>
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "commands.h"
#include "weft/bus/bus.h"

namespace weft::cli {
namespace {

int Fail(const Status& s) {
  std::fprintf(stderr, "weft bus: %s\n", s.ToString().c_str());
  return 1;
}

volatile std::sig_atomic_t g_stop = 0;

Status CheckUrl(const std::string& url) {
  if (url.rfind("shm:", 0) != 0 && url.rfind("log:", 0) != 0 && !bus::IsRemoteUrl(url)) {
    return InvalidArgument("the command line reaches shm:<name>, log:<directory>, redis://host:port/<name> and "
                           "nats://host:port/<name> buses, not '" + url + "'");
  }
  return Status::Ok();
}

// The options to open `url` with: a log: bus takes drop_oldest (it is never full).
bus::BusOptions OptionsFor(const std::string& url) {
  bus::BusOptions o;
  o.url = url;
  if (url.rfind("log:", 0) == 0) o.backpressure = Overflow::kDropOldest;
  return o;
}

}  // namespace

int BusPublish(const BusArgs& a) {
  if (Status s = CheckUrl(a.url); !s.ok()) return Fail(s);
  bus::BusOptions o = OptionsFor(a.url);
  if (!a.group.empty()) o.groups.push_back(a.group);
  auto b = bus::Bus::Open(o);
  if (!b.ok()) return Fail(b.status());
  std::vector<std::string> events = a.events;
  if (events.empty()) {  // one event per line of standard input
    std::string line;
    while (std::getline(std::cin, line)) events.push_back(line);
  }
  size_t dropped = 0;
  for (const std::string& e : events) {
    auto p = a.key.empty() ? (*b)->Ingest(AsBytes(e), Deadline::AfterMs(5000))
                           : (*b)->IngestKeyed(AsBytes(a.key), AsBytes(e), Deadline::AfterMs(5000));
    if (!p.ok()) return Fail(p.status());
    dropped += p->dropped();
  }
  std::printf("published %zu event%s", events.size() - dropped, events.size() - dropped == 1 ? "" : "s");
  if (dropped > 0) std::printf(", %zu dropped (drop_newest: the bus is full)", dropped);
  std::printf("\n");
  return 0;
}

int BusTail(const BusArgs& a) {
  if (Status s = CheckUrl(a.url); !s.ok()) return Fail(s);
  if (a.group.empty()) return Fail(InvalidArgument("--group is required: tail reads as a member of a group"));
  bus::BusOptions o = OptionsFor(a.url);
  o.create = false;
  auto b = bus::Bus::Open(o);
  if (!b.ok()) return Fail(b.status());
  auto c = (*b)->Subscribe(a.group);
  if (!c.ok()) return Fail(c.status());
  std::signal(SIGINT, [](int) { g_stop = 1; });
  std::signal(SIGTERM, [](int) { g_stop = 1; });
  int64_t printed = 0;
  while (!g_stop && (a.last < 0 || printed < a.last)) {
    const size_t limit = a.last < 0 ? 256 : static_cast<size_t>(std::min<int64_t>(256, a.last - printed));
    auto batch = (*c)->Poll(limit, a.follow ? Deadline::AfterMs(200) : Deadline::AfterMs(50));
    if (!batch.ok()) {
      if (batch.status().code() == Code::kTimeout && a.follow) continue;
      if (batch.status().code() == Code::kTimeout) break;  // all there is
      return Fail(batch.status());
    }
    for (const bus::Event& e : *batch) {
      std::printf("%u\t%" PRIu64 "\t%s\t%s\n", e.position.shard, e.position.offset, Escape(e.key).c_str(),
                  Escape(e.data).c_str());
      ++printed;
    }
    if (a.follow) std::fflush(stdout);
  }
  Status closed = (*c)->Close();  // commits what was printed
  if (!closed.ok()) return Fail(closed);
  return 0;
}

int BusStat(const BusArgs& a) {
  if (Status s = CheckUrl(a.url); !s.ok()) return Fail(s);
  if (a.url.rfind("shm:", 0) == 0) return Inspect(a.url.substr(4));
  return DescribeBus(a.url);
}

}  // namespace weft::cli
