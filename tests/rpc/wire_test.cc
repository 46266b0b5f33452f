// The RPC wire format: frames, value lists, errors and the builtin codecs round-trip, and every
// malformed input is refused with kCorrupt (never read past its end: ASan runs this too).
#include "rpc/internal/wire.h"

#include <gtest/gtest.h>

#include <cstring>

namespace weft::rpc::internal {
namespace {

std::vector<uint8_t> Frame(FrameType t, const std::vector<uint8_t>& payload, uint16_t flags = 0) {
  std::vector<uint8_t> rec(sizeof(FrameHeader) + payload.size());
  EncodeHeader(t, flags, 7, 3, 99, 12345, static_cast<uint32_t>(payload.size()), rec.data());
  std::memcpy(rec.data() + sizeof(FrameHeader), payload.data(), payload.size());
  return rec;
}

TEST(WireTest, FramesRoundTripAndBadOnesAreRefused) {
  auto rec = Frame(FrameType::kCall, {1, 2, 3}, kFlagHold);
  auto f = DecodeFrame(ByteView(rec.data(), rec.size()));
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  EXPECT_EQ(f->type(), FrameType::kCall);
  EXPECT_EQ(f->header.resource, 7u);
  EXPECT_EQ(f->header.method, 3u);
  EXPECT_EQ(f->header.call_id, 99u);
  EXPECT_EQ(f->header.deadline_ns, 12345);
  EXPECT_EQ(f->header.flags, kFlagHold);
  EXPECT_EQ(f->payload.size(), 3u);
  auto bad = [&](auto mutate) {
    auto r = rec;
    mutate(r);
    return DecodeFrame(ByteView(r.data(), r.size())).status().code();
  };
  EXPECT_EQ(bad([](auto& r) { r[0] ^= 1; }), Code::kCorrupt);                      // magic
  EXPECT_EQ(bad([](auto& r) { r[4] = 9; }), Code::kVersionMismatch);               // version
  EXPECT_EQ(bad([](auto& r) { r[5] = 0; }), Code::kCorrupt);                       // type
  EXPECT_EQ(bad([](auto& r) { r[5] = 11; }), Code::kCorrupt);
  EXPECT_EQ(bad([](auto& r) { r[6] = 0x80; }), Code::kCorrupt);                    // flags
  EXPECT_EQ(bad([](auto& r) { r.push_back(0); }), Code::kCorrupt);                 // length
  EXPECT_EQ(bad([](auto& r) { r.resize(20); }), Code::kCorrupt);                   // truncated
}

TEST(WireTest, ValueListsRoundTrip) {
  const std::string a = "hello", c(1000, 'x');
  std::vector<Value> vals(3);
  vals[0].bytes = AsBytes(a);
  vals[1].in_block = true;
  vals[1].block = 0x8000000000000002ull;
  vals[1].length = 1 << 30;
  vals[2].bytes = AsBytes(c);
  std::vector<uint8_t> buf(ValuesSize(vals));
  EncodeValues(vals, buf.data());
  auto back = DecodeValues(ByteView(buf.data(), buf.size()));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  ASSERT_EQ(back->size(), 3u);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>((*back)[0].bytes.data()), 5), "hello");
  EXPECT_TRUE((*back)[1].in_block);
  EXPECT_EQ((*back)[1].block, 0x8000000000000002ull);
  EXPECT_EQ((*back)[1].length, 1u << 30);
  EXPECT_EQ((*back)[2].bytes.size(), 1000u);
  // Every truncation is refused, and so are stray bytes and a huge count.
  for (size_t n = 0; n < buf.size(); ++n) {
    EXPECT_EQ(DecodeValues(ByteView(buf.data(), n)).status().code(), Code::kCorrupt) << n;
  }
  buf.push_back(0);
  EXPECT_EQ(DecodeValues(ByteView(buf.data(), buf.size())).status().code(), Code::kCorrupt);
  uint8_t many[8] = {200, 0, 0, 0, 0, 0, 0, 0};
  EXPECT_EQ(DecodeValues(ByteView(many, 8)).status().code(), Code::kCorrupt);
}

TEST(WireTest, ErrorsAndScalarsRoundTrip) {
  const std::string e = EncodeError(Status(Code::kTimeout, "call 5 ran out of time"));
  Status s = DecodeError(AsBytes(e));
  EXPECT_EQ(s.code(), Code::kTimeout);
  EXPECT_EQ(s.message(), "call 5 ran out of time");
  EXPECT_EQ(DecodeError(AsBytes(e.substr(0, 10))).code(), Code::kCorrupt);
  EXPECT_EQ(DecodeI64(AsBytes(EncodeI64(-42))).value(), -42);
  EXPECT_EQ(DecodeF64(AsBytes(EncodeF64(2.5))).value(), 2.5);
  EXPECT_EQ(DecodeBool(AsBytes(EncodeBool(true))).value(), true);
  EXPECT_EQ(DecodeI64(AsBytes("abc")).status().code(), Code::kCorrupt);
  EXPECT_EQ(DecodeBool(AsBytes("\x02")).status().code(), Code::kCorrupt);
  EXPECT_TRUE(CheckUtf8(AsBytes("grüße, 世界 🚀")).ok());
  EXPECT_EQ(CheckUtf8(AsBytes("\xC0\xAF")).code(), Code::kCorrupt);      // overlong
  EXPECT_EQ(CheckUtf8(AsBytes("\xED\xA0\x80")).code(), Code::kCorrupt);  // surrogate
  EXPECT_EQ(CheckUtf8(AsBytes("ab\xE4\xB8")).code(), Code::kCorrupt);    // truncated
}

TEST(WireTest, ArrayHeadersAlignDataAndCheckSizes) {
  uint64_t off = 0;
  std::string v = EncodeArrayHeader("<f8", {1000, 3}, &off);
  EXPECT_EQ(off % 64, 0u);
  v.resize(off + 1000 * 3 * 8);
  auto a = DecodeArrayHeader(AsBytes(v));
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  EXPECT_EQ(a->dtype, "<f8");
  EXPECT_EQ(a->shape, (std::vector<uint64_t>{1000, 3}));
  EXPECT_EQ(a->data_offset, off);
  EXPECT_EQ(a->data_bytes, 24000u);
  EXPECT_EQ(DecodeArrayHeader(AsBytes(v.substr(0, v.size() - 8))).status().code(), Code::kCorrupt);
  std::string obj = EncodeArrayHeader("|O8", {1}, &off);
  obj.resize(off + 8);
  EXPECT_EQ(DecodeArrayHeader(AsBytes(obj)).status().code(), Code::kCorrupt);  // objects never cross
  std::string huge = EncodeArrayHeader("<f8", {1ull << 40, 1ull << 40}, &off);
  EXPECT_EQ(DecodeArrayHeader(AsBytes(huge)).status().code(), Code::kCorrupt);
}

}  // namespace
}  // namespace weft::rpc::internal
