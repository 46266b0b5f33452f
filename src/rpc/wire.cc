#include "internal/wire.h"

#include <cstring>

namespace weft::rpc::internal {
namespace {

constexpr uint64_t Pad8(uint64_t n) { return (n + 7) & ~uint64_t{7}; }

template <typename T>
T Load(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

template <typename T>
void Store(uint8_t* p, T v) {
  std::memcpy(p, &v, sizeof(T));
}

constexpr char kArrayMagic[4] = {'W', 'N', 'D', 'A'};
constexpr uint64_t kMaxDims = 32;

}  // namespace

Status CheckHeader(const FrameHeader& h) {
  if (h.magic != kFrameMagic) return Corrupt("not an rpc frame (bad magic)");
  if (h.version != kWireVersion) {
    return Status(Code::kVersionMismatch, "rpc wire version " + std::to_string(h.version) + ", this build speaks " +
                                              std::to_string(kWireVersion));
  }
  if (h.type < static_cast<uint8_t>(FrameType::kCall) || h.type > kLastFrameType) {
    return Corrupt("unknown rpc frame type " + std::to_string(h.type));
  }
  if ((h.flags & ~uint16_t{kFlagHold}) != 0) return Corrupt("unknown rpc frame flags");
  if (h.reserved != 0) return Corrupt("rpc frame reserved field set");
  if (h.deadline_ns < 0) return Corrupt("rpc frame with a negative deadline");
  return Status::Ok();
}

Result<Frame> DecodeFrame(ByteView record) {
  if (record.size() < sizeof(FrameHeader)) return Corrupt("rpc frame shorter than its header");
  Frame f;
  std::memcpy(&f.header, record.data(), sizeof(FrameHeader));
  const FrameHeader& h = f.header;
  WEFT_RETURN_IF_ERROR(CheckHeader(h));
  if (h.payload != record.size() - sizeof(FrameHeader)) {
    return Corrupt("rpc frame says " + std::to_string(h.payload) + " payload bytes, carries " +
                   std::to_string(record.size() - sizeof(FrameHeader)));
  }
  f.payload = record.subspan(sizeof(FrameHeader));
  return f;
}

void EncodeHeader(FrameType type, uint16_t flags, uint32_t resource, uint32_t method, uint64_t call_id,
                  int64_t deadline_ns, uint32_t payload, uint8_t* out) {
  FrameHeader h{kFrameMagic, kWireVersion, static_cast<uint8_t>(type), flags, resource, method, call_id,
                deadline_ns, payload, 0};
  std::memcpy(out, &h, sizeof(h));
}

size_t ValuesSize(const std::vector<Value>& values) {
  size_t n = 8;
  for (const Value& v : values) n += 16 + (v.in_block ? 8 : v.follows ? 0 : Pad8(v.bytes.size()));
  return n;
}

void EncodeValues(const std::vector<Value>& values, uint8_t* out) {
  Store<uint32_t>(out, static_cast<uint32_t>(values.size()));
  Store<uint32_t>(out + 4, 0);
  uint8_t* p = out + 8;
  for (const Value& v : values) {
    std::memset(p, 0, 16);
    p[0] = v.in_block ? 1 : v.follows ? 2 : 0;
    Store<uint64_t>(p + 8, v.in_block ? v.length : v.bytes.size());
    p += 16;
    if (v.follows) continue;
    if (v.in_block) {
      Store<uint64_t>(p, v.block);
      p += 8;
    } else {
      if (!v.bytes.empty()) std::memcpy(p, v.bytes.data(), v.bytes.size());
      std::memset(p + v.bytes.size(), 0, Pad8(v.bytes.size()) - v.bytes.size());
      p += Pad8(v.bytes.size());
    }
  }
}

Result<std::vector<Value>> DecodeValues(ByteView payload) {
  if (payload.size() < 8) return Corrupt("rpc value list shorter than its count");
  const uint32_t count = Load<uint32_t>(payload.data());
  if (count > kMaxValues) return Corrupt("rpc value list of " + std::to_string(count) + " values");
  if (Load<uint32_t>(payload.data() + 4) != 0) return Corrupt("rpc value list reserved field set");
  std::vector<Value> out;
  out.reserve(count);
  uint64_t off = 8;
  for (uint32_t i = 0; i < count; ++i) {
    const std::string which = "rpc value " + std::to_string(i);
    if (payload.size() - off < 16) return Corrupt(which + ": truncated");
    const uint8_t* p = payload.data() + off;
    for (int k = 1; k < 8; ++k) {
      if (p[k] != 0) return Corrupt(which + ": reserved bytes set");
    }
    Value v;
    const uint64_t length = Load<uint64_t>(p + 8);
    off += 16;
    if (p[0] == 1) {
      if (payload.size() - off < 8) return Corrupt(which + ": truncated block id");
      v.in_block = true;
      v.length = length;
      v.block = Load<uint64_t>(payload.data() + off);
      off += 8;
    } else if (p[0] == 0) {
      if (length > kMaxInline || Pad8(length) > payload.size() - off) return Corrupt(which + ": length runs past the frame");
      v.bytes = payload.subspan(off, length);
      off += Pad8(length);
    } else if (p[0] == 2) {
      v.follows = true;
      v.length = length;
    } else {
      return Corrupt(which + ": unknown placement " + std::to_string(p[0]));
    }
    out.push_back(v);
  }
  if (off != payload.size()) return Corrupt("rpc value list followed by " + std::to_string(payload.size() - off) + " stray bytes");
  return out;
}

std::string EncodeError(const Status& s) {
  std::string out(8, '\0');
  const uint32_t code = static_cast<uint32_t>(s.code());
  const uint32_t len = static_cast<uint32_t>(s.message().size());
  std::memcpy(out.data(), &code, 4);
  std::memcpy(out.data() + 4, &len, 4);
  return out + s.message();
}

Status DecodeError(ByteView payload) {
  if (payload.size() < 8) return Corrupt("rpc error frame truncated");
  const uint32_t code = Load<uint32_t>(payload.data());
  const uint32_t len = Load<uint32_t>(payload.data() + 4);
  if (len != payload.size() - 8) return Corrupt("rpc error frame: message length does not match");
  if (!IsFailureCode(code)) return Corrupt("rpc error frame: unknown code " + std::to_string(code));
  return Status(static_cast<Code>(code), std::string(reinterpret_cast<const char*>(payload.data() + 8), len));
}


}  // namespace weft::rpc::internal

namespace weft::rpc {

namespace {
template <typename T>
T LoadScalar(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}
}  // namespace

std::string EncodeI64(int64_t v) { return std::string(reinterpret_cast<const char*>(&v), 8); }
std::string EncodeF64(double v) { return std::string(reinterpret_cast<const char*>(&v), 8); }
std::string EncodeBool(bool v) { return std::string(1, v ? '\1' : '\0'); }

Result<int64_t> DecodeI64(ByteView b) {
  if (b.size() != 8) return Corrupt("i64 value of " + std::to_string(b.size()) + " bytes");
  return LoadScalar<int64_t>(b.data());
}

Result<double> DecodeF64(ByteView b) {
  if (b.size() != 8) return Corrupt("f64 value of " + std::to_string(b.size()) + " bytes");
  return LoadScalar<double>(b.data());
}

Result<bool> DecodeBool(ByteView b) {
  if (b.size() != 1 || b[0] > 1) return Corrupt("bool value is not one byte of 0 or 1");
  return b[0] == 1;
}

Status CheckUtf8(ByteView b) {
  size_t i = 0;
  while (i < b.size()) {
    const uint8_t c = b[i];
    size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (n == 0 || i + n > b.size()) return Corrupt("str value is not UTF-8 (byte " + std::to_string(i) + ")");
    uint32_t cp = n == 1 ? c : c & (0x7F >> n);
    for (size_t k = 1; k < n; ++k) {
      if ((b[i + k] & 0xC0) != 0x80) return Corrupt("str value is not UTF-8 (byte " + std::to_string(i + k) + ")");
      cp = cp << 6 | (b[i + k] & 0x3F);
    }
    const bool overlong = (n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000);
    if (overlong || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
      return Corrupt("str value is not UTF-8 (byte " + std::to_string(i) + ")");
    }
    i += n;
  }
  return Status::Ok();
}


// ---- ndarray values (weft/rpc/codec.h) ----
using internal::kArrayMagic;
using internal::Load;
using internal::Pad8;
using internal::kMaxDims;

uint64_t DtypeItemSize(std::string_view d) {
  if (d.size() < 3 || d.size() > 4) return 0;
  if (d[0] != '<' && d[0] != '>' && d[0] != '|' && d[0] != '=') return 0;
  const char kind = d[1];
  if (kind != 'f' && kind != 'i' && kind != 'u' && kind != 'b' && kind != 'c') return 0;
  uint64_t size = 0;
  for (size_t i = 2; i < d.size(); ++i) {
    if (d[i] < '0' || d[i] > '9') return 0;
    size = size * 10 + static_cast<uint64_t>(d[i] - '0');
  }
  switch (size) {
    case 1: case 2: case 4: case 8: case 16: return size;
    default: return 0;
  }
}

std::string EncodeArrayHeader(std::string_view dtype, const std::vector<uint64_t>& shape, uint64_t* data_offset) {
  std::string h(kArrayMagic, 4);
  h.resize(8);  // header size, filled below
  h.push_back(static_cast<char>(dtype.size()));
  h += dtype;
  h.push_back(static_cast<char>(shape.size()));
  h.resize(Pad8(h.size()));
  for (uint64_t d : shape) h.append(reinterpret_cast<const char*>(&d), 8);
  h.resize((h.size() + 63) & ~size_t{63});
  const uint32_t size = static_cast<uint32_t>(h.size());
  std::memcpy(h.data() + 4, &size, 4);
  *data_offset = h.size();
  return h;
}

Result<ArrayHeader> DecodeArrayHeader(ByteView v) {
  if (v.size() < 10 || std::memcmp(v.data(), kArrayMagic, 4) != 0) return Corrupt("not an ndarray value");
  const uint32_t hsize = Load<uint32_t>(v.data() + 4);
  if (hsize % 64 != 0 || hsize > v.size() || hsize > 4096) return Corrupt("ndarray header size " + std::to_string(hsize));
  ArrayHeader a;
  const uint8_t dlen = v[8];
  if (uint32_t{9} + dlen + 1 > hsize) return Corrupt("ndarray dtype runs past its header");
  a.dtype.assign(reinterpret_cast<const char*>(v.data() + 9), dlen);
  const uint64_t item = DtypeItemSize(a.dtype);
  if (item == 0) return Corrupt("ndarray dtype '" + a.dtype + "' is not a plain numeric type");
  const uint8_t ndim = v[9 + dlen];
  if (ndim > kMaxDims) return Corrupt("ndarray of " + std::to_string(ndim) + " dimensions");
  const uint64_t shape_at = Pad8(9 + dlen + 1);
  if (shape_at + 8 * uint64_t{ndim} > hsize) return Corrupt("ndarray shape runs past its header");
  uint64_t count = 1;
  for (uint8_t i = 0; i < ndim; ++i) {
    const uint64_t d = Load<uint64_t>(v.data() + shape_at + 8 * i);
    if (d != 0 && count > UINT64_MAX / d) return Corrupt("ndarray shape overflows");
    count *= d;
    a.shape.push_back(d);
  }
  if (count > UINT64_MAX / item) return Corrupt("ndarray size overflows");
  a.data_offset = hsize;
  a.data_bytes = count * item;
  if (a.data_bytes != v.size() - hsize) {
    return Corrupt("ndarray of " + std::to_string(a.data_bytes) + " data bytes in a value of " +
                   std::to_string(v.size() - hsize));
  }
  return a;
}

}  // namespace weft::rpc
