// weft_log_options_t to weft::log::LogOptions, for weft_log_open and the log: bus of
// weft_bus_open (one conversion for both).
#pragma once

#include "capi_util.h"
#include "weft/log/log.h"
#include "weft/weft.h"

namespace weft::capi {

// Fills *o from `opt`; 0, or the code of an invalid argument (last error set).
inline int ToLogOptions(const weft_log_options_t& opt, weft::log::LogOptions* o) {
  if (opt.struct_size < sizeof(weft_log_options_t)) return FailInvalid("log options struct_size too small");
  if (opt.fsync > WEFT_FSYNC_ALWAYS) return FailInvalid("unknown fsync policy");
  o->read_only = opt.read_only != 0;
  o->fsync = static_cast<weft::log::Fsync>(opt.fsync);
  o->index_every_bytes = opt.index_every_bytes;
  o->fsync_every_n = opt.fsync_every_n;
  o->fsync_interval_ms = opt.fsync_interval_ms;
  o->segment_bytes = opt.segment_bytes;
  o->retention_events = opt.retention_events;
  o->retention_bytes = opt.retention_bytes;
  o->retention_age_ms = opt.retention_age_ms;
  return 0;
}

}  // namespace weft::capi
