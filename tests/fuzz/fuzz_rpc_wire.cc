// Fuzzes every decoder of the RPC wire format with arbitrary records (what a hostile client can
// put into a channel): frames, value lists, error payloads, scalars, UTF-8 and ndarray headers.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "rpc/internal/wire.h"

using namespace weft::rpc::internal;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::vector<uint8_t> copy(data, data + size);  // exact size: overreads are caught
  const weft::ByteView in(copy.data(), copy.size());
  auto f = DecodeFrame(in);
  const weft::ByteView payload = f.ok() ? f->payload : in;
  auto values = DecodeValues(payload);
  if (values.ok()) {
    for (const Value& v : *values) {
      if (v.in_block) continue;
      if (v.follows) {  // its bytes are not in the frame
        if (!v.bytes.empty()) __builtin_trap();
        continue;
      }
      if (v.bytes.data() < payload.data() || v.bytes.data() + v.bytes.size() > payload.data() + payload.size()) {
        __builtin_trap();
      }
      (void)DecodeI64(v.bytes);
      (void)DecodeF64(v.bytes);
      (void)DecodeBool(v.bytes);
      (void)CheckUtf8(v.bytes);
      auto a = DecodeArrayHeader(v.bytes);
      if (a.ok() && a->data_offset + a->data_bytes != v.bytes.size()) __builtin_trap();
    }
  }
  (void)DecodeError(payload);
  (void)CheckUtf8(in);
  (void)DecodeArrayHeader(in);
  return 0;
}
