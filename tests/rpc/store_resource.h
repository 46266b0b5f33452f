// A test resource that exercises what goes beyond bytes in, bytes out: a block of the server's
// pool it keeps and shares (hold mode), arguments read in place (loans), cancellation and
// streams. Served in the test's own process; clients over ipc:// and inproc://.
#pragma once

#include <atomic>
#include <cstring>
#include <memory>
#include <mutex>
#include <thread>

#include "weft/rpc/rpc.h"
#include "rpc/internal/wire.h"

namespace weft::rpc::testing {

inline Contract StoreContract() {
  return ContractBuilder("test.store", "Store", "1.0.0")
      .Method("get", Access::kRead, {}, "bytes")                    // the shared block, in place
      .Method("sum", Access::kRead, {"bytes"}, "i64")               // sum of the bytes
      .Method("echo", Access::kRead, {"bytes"}, "bytes")
      .Method("wait_cancel", Access::kWrite, {"i64"}, "i64")        // runs until cancelled or ms
      .Method("count", Access::kRead, {"i64"}, "i64", true)         // streams 0..n-1
      .Method("big_chunks", Access::kRead, {"i64"}, "bytes", true)  // streams n chunks of 100 KB
      .Build()
      .value();
}

struct StoreState {
  std::shared_ptr<Held> shared;                  // the resource's data, in the server's pool
  std::mutex mu;                                 // taken by `get` and by whoever writes `shared`
  std::atomic<uint64_t> last_arg_block{0};       // the block `sum` read its argument from (0: inline)
  std::atomic<int> saw_cancel{0};                // wait_cancel calls that saw Cancelled()
  std::atomic<int> running{0};                   // wait_cancel calls running
  std::atomic<int64_t> produced{0};              // chunks count has yielded
  std::atomic<int> stream_code{-1};              // how the last stream ended (Code)
};

inline constexpr size_t kSharedBytes = size_t{4} << 20;

inline std::string ChunkPattern(int64_t i) {
  std::string s(100 << 10, '\0');
  for (size_t k = 0; k < s.size(); ++k) s[k] = static_cast<char>((k * 31 + static_cast<size_t>(i)) & 0xff);
  return s;
}

inline Resource StoreResource(Server& server, StoreState* st) {
  st->shared = server.Loan(kSharedBytes).value();
  MutableBytes m = st->shared->mutable_bytes();
  for (size_t i = 0; i < m.size(); ++i) m[i] = static_cast<uint8_t>(i * 7);
  Resource r;
  r.contract = StoreContract();
  r.handlers["get"] = [st](const CallArgs& a) -> Result<std::string> {
    // Shared data is read in place by holders: writers and readers agree on when (here a mutex;
    // it also tells ThreadSanitizer, which cannot see the channel's ordering across two
    // mappings of one segment in this process).
    std::lock_guard<std::mutex> g(st->mu);
    WEFT_RETURN_IF_ERROR(a.context->ReturnHeld(st->shared->bytes()));
    return std::string();
  };
  r.handlers["sum"] = [st](const CallArgs& a) -> Result<std::string> {
    auto h = a.context->ArgumentHold(0);
    st->last_arg_block.store(h ? h->block() : 0);
    int64_t s = 0;
    for (uint8_t b : a.args[0]) s += b;
    return internal::EncodeI64(s);
  };
  r.handlers["echo"] = [](const CallArgs& a) -> Result<std::string> {
    return std::string(reinterpret_cast<const char*>(a.args[0].data()), a.args[0].size());
  };
  r.handlers["wait_cancel"] = [st](const CallArgs& a) -> Result<std::string> {
    st->running.fetch_add(1);
    const Deadline until = Deadline::AfterMs(internal::DecodeI64(a.args[0]).value());
    while (!until.Expired()) {
      if (a.context->Cancelled()) {
        st->saw_cancel.fetch_add(1);
        break;
      }
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    st->running.fetch_sub(1);
    return internal::EncodeI64(1);
  };
  r.handlers["count"] = [st](const CallArgs& a) -> Result<std::string> {
    const int64_t n = internal::DecodeI64(a.args[0]).value();
    for (int64_t i = 0; i < n; ++i) {
      Status s = a.context->Yield(AsBytes(internal::EncodeI64(i)));
      if (!s.ok()) {
        st->stream_code.store(static_cast<int>(s.code()));
        return s;
      }
      st->produced.fetch_add(1);
    }
    st->stream_code.store(0);
    return std::string();
  };
  r.handlers["big_chunks"] = [](const CallArgs& a) -> Result<std::string> {
    const int64_t n = internal::DecodeI64(a.args[0]).value();
    for (int64_t i = 0; i < n; ++i) WEFT_RETURN_IF_ERROR(a.context->Yield(AsBytes(ChunkPattern(i))));
    return std::string();
  };
  return r;
}

}  // namespace weft::rpc::testing
