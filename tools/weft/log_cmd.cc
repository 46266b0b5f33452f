// `weft log append|tail|stat|verify`: a durable log from the command line.
#include <unistd.h>

#include <cinttypes>
#include <csignal>
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "commands.h"
#include "weft/log/log.h"

namespace weft::cli {
namespace {

int Fail(const Status& s) {
  std::fprintf(stderr, "weft log: %s\n", s.ToString().c_str());
  return 1;
}

// Printable bytes as they are; others (and backslash) as \xNN.
std::string Escape(ByteView b) {
  std::string out;
  out.reserve(b.size());
  for (uint8_t c : b) {
    if (c >= 0x20 && c < 0x7F && c != '\\') {
      out.push_back(static_cast<char>(c));
    } else {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\x%02x", c);
      out += buf;
    }
  }
  return out;
}

volatile std::sig_atomic_t g_stop = 0;

}  // namespace

int LogAppend(const LogArgs& a) {
  log::LogOptions o;
  if (a.fsync == "never") o.fsync = log::Fsync::kNever;
  else if (a.fsync == "every_n") o.fsync = log::Fsync::kEveryN;
  else if (a.fsync == "interval") o.fsync = log::Fsync::kInterval;
  else if (a.fsync == "always") o.fsync = log::Fsync::kAlways;
  else return Fail(InvalidArgument("--fsync must be never, every_n, interval or always"));
  auto lg = log::Log::Open(a.path, o);
  if (!lg.ok()) return Fail(lg.status());
  std::vector<std::string> records = a.records;
  if (records.empty()) {  // one record per line of standard input
    std::string line;
    while (std::getline(std::cin, line)) records.push_back(line);
  }
  std::vector<ByteView> views;
  for (const std::string& r : records) views.push_back(AsBytes(r));
  auto first = (*lg)->AppendBatch(views, a.flags);
  if (!first.ok()) return Fail(first.status());
  Status closed = (*lg)->Close();
  if (!closed.ok()) return Fail(closed);
  if (!first->has_value()) {
    std::printf("appended nothing\n");
  } else {
    std::printf("appended %zu record%s, seq %" PRIu64 "..%" PRIu64 "\n", views.size(), views.size() == 1 ? "" : "s",
                **first, **first + views.size() - 1);
  }
  return 0;
}

int LogTail(const LogArgs& a) {
  auto lg = log::Log::Open(a.path, {.read_only = true});
  if (!lg.ok()) return Fail(lg.status());
  uint64_t from = a.from;
  if (a.last > 0) {
    const uint64_t next = (*lg)->next_seq();
    from = next > a.last ? next - a.last : 0;
  }
  from = std::max(from, (*lg)->first_seq());
  auto tail = (*lg)->TailFrom(from);
  if (!tail.ok()) return Fail(tail.status());
  const uint64_t end = (*lg)->next_seq();
  std::signal(SIGINT, [](int) { g_stop = 1; });
  std::signal(SIGTERM, [](int) { g_stop = 1; });
  while (!g_stop) {
    if (!a.follow && (*tail)->position() >= end) break;
    auto r = (*tail)->Next(a.follow ? Deadline::AfterMs(200) : Deadline::Now());
    if (!r.ok()) {
      if (r.status().code() == Code::kTimeout) continue;
      return Fail(r.status());
    }
    if (a.format == "raw") {
      std::fwrite(r->payload.data(), 1, r->payload.size(), stdout);
      std::fputc('\n', stdout);
    } else {
      std::printf("%" PRIu64 "\t%" PRId64 "\t%s\n", r->seq, r->timestamp_ns, Escape(r->payload).c_str());
    }
    if (a.follow) std::fflush(stdout);
  }
  return 0;
}

int LogStat(const LogArgs& a) {
  auto lg = log::Log::Open(a.path, {.read_only = true});
  if (!lg.ok()) return Fail(lg.status());
  const log::LogStats s = (*lg)->Stats();
  std::printf("log %s\n", a.path.c_str());
  std::printf("  records    %" PRIu64 " (seq %" PRIu64 "..%" PRIu64 ")\n", s.next_seq - s.first_seq, s.first_seq,
              s.next_seq == 0 ? 0 : s.next_seq - 1);
  std::printf("  next seq   %" PRIu64 "\n", s.next_seq);
  std::printf("  durable    below %" PRIu64 "\n", s.durable_seq);
  std::printf("  segments   %" PRIu64 ", %.1f MiB on disk\n", s.segments, s.bytes / 1048576.0);
  if (s.writer_pid != 0) {
    std::printf("  writer     pid %d\n", s.writer_pid);
  } else {
    std::printf("  writer     none\n");
  }
  return 0;
}

int LogVerify(const LogArgs& a) {
  if (a.repair) {  // a writer's open with repair cuts the newest segment, then verify the rest
    auto w = log::Log::Open(a.path, {.create = false, .fsync = log::Fsync::kAlways, .repair = true});
    if (!w.ok()) return Fail(w.status());
    const log::LogStats st = (*w)->Stats();
    if (st.cut_valid_records > 0) {
      std::printf("repaired: cut at offset %" PRIu64 " of the newest segment (%s); %" PRIu64
                  " valid records after the damage were dropped; the log now ends before seq %" PRIu64 "\n",
                  st.cut_at_offset, st.cut_reason.c_str(), st.cut_valid_records, st.next_seq);
    } else if (st.cut_at_offset > 0) {
      std::printf("repaired: a torn tail was cut at offset %" PRIu64 " of the newest segment\n", st.cut_at_offset);
    } else {
      std::printf("nothing to repair in the newest segment\n");
    }
    Status closed = (*w)->Close();
    if (!closed.ok()) return Fail(closed);
  }
  auto lg = log::Log::Open(a.path, {.read_only = true});
  if (!lg.ok()) return Fail(lg.status());
  Status s = (*lg)->Verify();
  if (!s.ok()) return Fail(s);
  const log::LogStats st = (*lg)->Stats();
  std::printf("ok: %" PRIu64 " records in %" PRIu64 " segment%s, every checksum and sequence number checks out\n",
              st.next_seq - st.first_seq, st.segments, st.segments == 1 ? "" : "s");
  return 0;
}

}  // namespace weft::cli
