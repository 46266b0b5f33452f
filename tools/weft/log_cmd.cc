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

namespace {

int Fail(const Status& s) {
  std::fprintf(stderr, "weft log: %s\n", s.ToString().c_str());
  return 1;
}


// A JSON string: valid UTF-8 kept (control characters, quote and backslash escaped); false if
// the bytes are not UTF-8 (the caller writes them as base64).
bool JsonString(ByteView b, std::string* out) {
  out->push_back('"');
  for (size_t i = 0; i < b.size();) {
    const uint8_t c = b[i];
    size_t len = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
    if (len == 0 || i + len > b.size()) return false;
    for (size_t k = 1; k < len; ++k) {
      if ((b[i + k] & 0xC0) != 0x80) return false;
    }
    if (len == 1) {
      if (c == '"' || c == '\\') {
        out->push_back('\\');
        out->push_back(static_cast<char>(c));
      } else if (c < 0x20) {
        char buf[8];
        std::snprintf(buf, sizeof(buf), "\\u%04x", c);
        *out += buf;
      } else {
        out->push_back(static_cast<char>(c));
      }
    } else {
      out->append(reinterpret_cast<const char*>(b.data() + i), len);
    }
    i += len;
  }
  out->push_back('"');
  return true;
}

std::string Base64(ByteView b) {
  static const char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  for (size_t i = 0; i < b.size(); i += 3) {
    const uint32_t n = uint32_t{b[i]} << 16 | (i + 1 < b.size() ? uint32_t{b[i + 1]} << 8 : 0) |
                       (i + 2 < b.size() ? uint32_t{b[i + 2]} : 0);
    out.push_back(kAlphabet[n >> 18 & 63]);
    out.push_back(kAlphabet[n >> 12 & 63]);
    out.push_back(i + 1 < b.size() ? kAlphabet[n >> 6 & 63] : '=');
    out.push_back(i + 2 < b.size() ? kAlphabet[n & 63] : '=');
  }
  return out;
}

// "2026-11-29T19:15:29.123456789Z": a record's wall-clock time, UTC.
std::string Iso8601(int64_t ns) {
  const time_t secs = static_cast<time_t>(ns / 1'000'000'000);
  struct tm tm {};
  gmtime_r(&secs, &tm);
  char buf[48];
  std::snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%09" PRId64 "Z", tm.tm_year + 1900, tm.tm_mon + 1,
                tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ns % 1'000'000'000);
  return buf;
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
  if (a.format != "text" && a.format != "raw" && a.format != "json") {
    return Fail(InvalidArgument("--format must be text, raw or json, not '" + a.format + "'"));
  }
  auto lg = log::Log::Open(a.path, {.read_only = true});
  if (!lg.ok()) return Fail(lg.status());
  uint64_t from = a.from;
  if (a.last >= 0) {  // -n N: the last N records (-n 0: none, only what comes next with -f)
    const uint64_t next = (*lg)->next_seq();
    const uint64_t last = static_cast<uint64_t>(a.last);
    from = next > last ? next - last : 0;
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
    } else if (a.format == "json") {
      std::string payload;
      const bool utf8 = JsonString(r->payload, &payload);
      std::printf("{\"seq\": %" PRIu64 ", \"time\": \"%s\", \"timestamp_ns\": %" PRId64 ", \"flags\": %u, \"%s\": %s}\n",
                  r->seq, Iso8601(r->timestamp_ns).c_str(), r->timestamp_ns, r->flags,
                  utf8 ? "payload" : "payload_base64", utf8 ? payload.c_str() : ("\"" + Base64(r->payload) + "\"").c_str());
    } else {
      std::printf("%" PRIu64 "\t%s\t%s\n", r->seq, Iso8601(r->timestamp_ns).c_str(), Escape(r->payload).c_str());
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
