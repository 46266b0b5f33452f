// The C ABI over weft::log. Nothing throws across this boundary.
#include <cstring>
#include <memory>
#include <new>
#include <string>
#include <vector>

#include "internal/capi_util.h"
#include "internal/log_options.h"
#include "weft/log/log.h"
#include "weft/weft.h"

using weft::ByteView;
using weft::capi::Done;
using weft::capi::Fail;
using weft::capi::FailInvalid;
using weft::capi::ToDeadline;
using weft::log::Log;
using weft::log::Record;

struct weft_log {
  std::unique_ptr<Log> log;
  Record last;  // keeps the mapping of the last record read
};

struct weft_log_tail {
  std::unique_ptr<weft::log::Tail> tail;
  Record last;
};

namespace {

void Fill(const Record& r, weft_log_record_t* out) {
  std::memset(out, 0, sizeof(*out));
  out->seq = r.seq;
  out->timestamp_ns = r.timestamp_ns;
  out->flags = r.flags;
  out->data = r.payload.data();
  out->size = r.payload.size();
}

}  // namespace

extern "C" {

void weft_log_options_init(weft_log_options_t* opt) {
  if (opt == nullptr) return;
  std::memset(opt, 0, sizeof(*opt));
  opt->struct_size = sizeof(*opt);
  weft::log::LogOptions d;
  opt->fsync = static_cast<uint32_t>(d.fsync);
  opt->index_every_bytes = d.index_every_bytes;
  opt->fsync_every_n = d.fsync_every_n;
  opt->fsync_interval_ms = d.fsync_interval_ms;
  opt->segment_bytes = d.segment_bytes;
}

int weft_log_open(const char* path, const weft_log_options_t* opt, weft_log_t** out) {
  weft::capi::Enter();
  if (path == nullptr || out == nullptr) return FailInvalid("path and out must not be NULL");
  *out = nullptr;
  weft::log::LogOptions o;
  if (opt != nullptr) {
    if (const int rc = weft::capi::ToLogOptions(*opt, &o); rc != 0) return rc;
  }
  auto r = Log::Open(path, o);
  if (!r.ok()) return Fail(r.status());
  auto* h = new (std::nothrow) weft_log{std::move(r).value(), {}};
  if (h == nullptr) return FailInvalid("out of memory");
  *out = h;
  return WEFT_OK;
}

int weft_log_close(weft_log_t* log) {
  weft::capi::Enter();
  if (log == nullptr) return WEFT_OK;
  const int rc = Done(log->log->Close());
  delete log;
  return rc;
}

int weft_log_append(weft_log_t* log, const void* data, size_t n, uint32_t flags, uint64_t* seq) {
  weft::capi::Enter();
  if (log == nullptr || (data == nullptr && n != 0)) return FailInvalid("log and data must not be NULL");
  auto r = log->log->Append(ByteView(static_cast<const uint8_t*>(data), n), flags);
  if (!r.ok()) return Fail(r.status());
  if (seq != nullptr) *seq = *r;
  return WEFT_OK;
}

int weft_log_append_batch(weft_log_t* log, const void* const* data, const size_t* sizes, size_t count,
                          uint32_t flags, uint64_t* first) {
  weft::capi::Enter();
  if (log == nullptr) return FailInvalid("log must not be NULL");
  std::vector<ByteView> views;
  if (const int rc = weft::capi::ToViews(data, sizes, count, "a NULL record", &views); rc != 0) return rc;
  auto r = log->log->AppendBatch(views, flags);
  if (!r.ok()) return Fail(r.status());
  if (first != nullptr) *first = r->has_value() ? **r : WEFT_LOG_NONE;
  return WEFT_OK;
}

int weft_log_sync(weft_log_t* log) {
  weft::capi::Enter();
  if (log == nullptr) return FailInvalid("log must not be NULL");
  return Done(log->log->Sync());
}

int weft_log_read(weft_log_t* log, uint64_t seq, weft_log_record_t* rec) {
  weft::capi::Enter();
  if (log == nullptr || rec == nullptr) return FailInvalid("log and rec must not be NULL");
  auto r = log->log->Read(seq);
  if (!r.ok()) return Fail(r.status());
  log->last = std::move(r).value();
  Fill(log->last, rec);
  return WEFT_OK;
}

uint64_t weft_log_first_seq(weft_log_t* log) { return log == nullptr ? 0 : log->log->first_seq(); }
uint64_t weft_log_next_seq(weft_log_t* log) { return log == nullptr ? 0 : log->log->next_seq(); }

int weft_log_stats(weft_log_t* log, weft_log_stats_t* out) {
  weft::capi::Enter();
  if (log == nullptr || out == nullptr) return FailInvalid("log and out must not be NULL");
  if (out->struct_size < sizeof(weft_log_stats_t)) return FailInvalid("stats struct_size too small");
  const weft::log::LogStats s = log->log->Stats();
  out->writer_pid = s.writer_pid;
  out->first_seq = s.first_seq;
  out->next_seq = s.next_seq;
  out->durable_seq = s.durable_seq;
  out->segments = s.segments;
  out->bytes = s.bytes;
  out->fsyncs = s.fsyncs;
  return WEFT_OK;
}

int weft_log_verify(weft_log_t* log) {
  weft::capi::Enter();
  if (log == nullptr) return FailInvalid("log must not be NULL");
  return Done(log->log->Verify());
}

int weft_log_tail_open(weft_log_t* log, uint64_t from_seq, weft_log_tail_t** out) {
  weft::capi::Enter();
  if (log == nullptr || out == nullptr) return FailInvalid("log and out must not be NULL");
  *out = nullptr;
  auto t = log->log->TailFrom(from_seq);
  if (!t.ok()) return Fail(t.status());
  auto* h = new (std::nothrow) weft_log_tail{std::move(t).value(), {}};
  if (h == nullptr) return FailInvalid("out of memory");
  *out = h;
  return WEFT_OK;
}

int weft_log_tail_next(weft_log_tail_t* tail, int64_t timeout_ns, weft_log_record_t* rec) {
  weft::capi::Enter();
  if (tail == nullptr || rec == nullptr) return FailInvalid("tail and rec must not be NULL");
  auto r = tail->tail->Next(ToDeadline(timeout_ns));
  if (!r.ok()) return Fail(r.status());
  tail->last = std::move(r).value();
  Fill(tail->last, rec);
  return WEFT_OK;
}

void weft_log_tail_cancel(weft_log_tail_t* tail) {
  if (tail != nullptr) tail->tail->Close();
}

void weft_log_tail_free(weft_log_tail_t* tail) { delete tail; }

}  // extern "C"
