// Fuzzes the TLS record layer's reader (src/net/internal/tls_records.h), what a peer or anyone
// on the path controls after the handshake. The first byte picks how the rest is used:
//  - even: as the bytes on the wire: record headers are checked, records opened (they fail
//    authentication) and the stream ends with an error, never a crash or an overread;
//  - odd: as the inner plaintexts of records a peer with the keys sealed (each a length byte
//    and that many bytes, the content type and padding being the last of them): the reader's
//    content type and padding rules, alerts, and handshake messages split, joined, unexpected
//    or KeyUpdates (after which the sealer's key is behind and the next record must fail).
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "net/internal/tls_records.h"

using weft::ByteView;
using weft::net::internal::RecordLayer;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  uint8_t a[32], b[32];
  for (int i = 0; i < 32; ++i) a[i] = static_cast<uint8_t>(i), b[i] = static_cast<uint8_t>(0xA0 + i);
  auto reader = RecordLayer::Create(weft::net::internal::kAes128GcmSha256, ByteView(a, 32), ByteView(b, 32)).value();
  auto sealer = RecordLayer::Create(weft::net::internal::kAes128GcmSha256, ByteView(b, 32), ByteView(a, 32)).value();
  std::vector<uint8_t> wire;
  if ((data[0] & 1) == 0) {
    wire.assign(data + 1, data + size);
  } else {
    std::vector<uint8_t> rec(RecordLayer::kMaxSealed);
    for (size_t at = 1; at < size;) {
      const size_t n = std::min<size_t>(data[at], size - at - 1);
      const ByteView inner(data + at + 1, n);
      at += 1 + n;
      const size_t put = sealer->Seal(0, {&inner, 1}, rec.data());  // type 0: the inner bytes are all the fuzzer's
      wire.insert(wire.end(), rec.begin(), rec.begin() + static_cast<ptrdiff_t>(put));
    }
  }
  std::vector<uint8_t> plain(RecordLayer::kMaxRecord);
  size_t at = 0;
  for (;;) {
    const ByteView have(wire.data() + at, wire.size() - at);
    auto n = RecordLayer::RecordSize(have);
    if (!n.ok() || *n == 0 || *n > have.size()) break;
    if (*n < RecordLayer::kHeader + RecordLayer::kTag + 1) __builtin_trap();
    // Exactly the room promised: an overrun is caught.
    std::vector<uint8_t> dst(*n - RecordLayer::kHeader - RecordLayer::kTag);
    auto c = reader->Open(have.first(*n), dst.data());
    at += *n;
    if (!c.ok()) break;
    if (c->size > RecordLayer::kMaxPlain || c->size >= dst.size()) __builtin_trap();
    if (c->type == weft::net::internal::kApplicationData) continue;
    auto ev = reader->Absorb(c->type, ByteView(dst.data(), c->size));
    if (!ev.ok() || *ev == RecordLayer::Event::kClosed) break;
  }
  return 0;
}
