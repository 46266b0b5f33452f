// The RPC wire format, version 2 (docs/formats/rpc-wire.md): frames carried as channel records
// between a client and a server, their value lists, and the builtin codecs. Everything here
// reads bytes a peer wrote, so every decoder checks every length and is fuzzed
// (tests/fuzz/fuzz_rpc_wire.cc). Internal to rpc.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "weft/core/bytes.h"
#include "weft/core/status.h"
#include "weft/rpc/codec.h"

namespace weft::rpc::internal {

inline constexpr uint32_t kFrameMagic = 0x43505257;  // "WRPC" little-endian
inline constexpr uint8_t kWireVersion = 2;
inline constexpr uint32_t kMaxValues = 65;           // 64 parameters, or one result
inline constexpr uint32_t kMaxInline = 1u << 30;     // a value larger than this goes by block

enum class FrameType : uint8_t {
  kCall = 1,    // client -> server: resource, method, call id, deadline, arguments
  kReply = 2,   // server -> client: the result
  kError = 3,   // server -> client: code and message instead of a result
  kCancel = 4,  // client -> server: stop call `call_id` (a reply or error still follows)
  kChunk = 5,   // server -> client: one chunk of a streaming result
  kEnd = 6,     // server -> client: the stream ended
  kCredit = 7,  // client -> server: may send this many more chunks of call `call_id`
  kData = 8,    // tcp: the next bytes of a value that follows its frame (placement 2)
  kHello = 9,   // tcp: the client's handshake
  kAnswer = 10, // tcp: the server's answer to it
};
inline constexpr uint8_t kLastFrameType = 10;
inline constexpr size_t kChunkBytes = size_t{1} << 20;  // a following value's bytes per data frame

enum FrameFlags : uint16_t {
  kFlagHold = 1,  // call: the client will hold the reply's blocks (zero-copy result)
};

struct FrameHeader {
  uint32_t magic;
  uint8_t version;
  uint8_t type;
  uint16_t flags;
  uint32_t resource;     // the id the server gave the resource at connect
  uint32_t method;       // index into the contract's sorted methods
  uint64_t call_id;      // chosen by the client, unique per connection
  int64_t deadline_ns;   // call: time left, in ns, when it was sent (0: none)
  uint32_t payload;      // bytes after the header
  uint32_t reserved;     // 0
};
static_assert(sizeof(FrameHeader) == 40 && std::is_trivially_copyable_v<FrameHeader>);

struct Frame {
  FrameHeader header{};
  ByteView payload;  // borrowed from the record
  FrameType type() const { return static_cast<FrameType>(header.type); }
};

// Checks a received record: magic, version, known type and flags, payload length.
Result<Frame> DecodeFrame(ByteView record);
// The same checks on a header alone (a stream reads the payload after it).
Status CheckHeader(const FrameHeader& h);
// Writes the header for `payload` bytes into out[0..40).
void EncodeHeader(FrameType type, uint16_t flags, uint32_t resource, uint32_t method, uint64_t call_id,
                  int64_t deadline_ns, uint32_t payload, uint8_t* out);

// One value of a call or reply: its bytes inline in the frame, a block of the pool (ipc), or
// bytes that follow the frame in data frames (tcp).
struct Value {
  bool in_block = false;
  bool follows = false;  // sent: `bytes` go in data frames after the frame; received: they came so
  ByteView bytes;        // inline (or following)
  uint64_t block = 0;    // in a block: the pool block id
  uint64_t length = 0;   // in a block or following: bytes
};

// A value list: u32 count, u32 reserved, then each value: u8 where (0 inline, 1 block,
// 2 follows), 7 bytes reserved, u64 length, then the bytes padded to 8 (inline), a u64 block
// id (block), or nothing (follows).
size_t ValuesSize(const std::vector<Value>& values);
// Encodes into out (ValuesSize bytes).
void EncodeValues(const std::vector<Value>& values, uint8_t* out);
Result<std::vector<Value>> DecodeValues(ByteView payload);

// Error frames: u32 code, u32 message length, the message.
std::string EncodeError(const Status& s);
Status DecodeError(ByteView payload);

// ---- builtin codecs: the bytes of one value of a codec -----------------------------------------

// Scalars and UTF-8 checks: weft/rpc/codec.h (public); str and bytes are their own bytes.
using weft::rpc::CheckUtf8;
using weft::rpc::DecodeBool;
using weft::rpc::DecodeF64;
using weft::rpc::DecodeI64;
using weft::rpc::EncodeBool;
using weft::rpc::EncodeF64;
using weft::rpc::EncodeI64;

using weft::rpc::ArrayHeader;
using weft::rpc::DecodeArrayHeader;
using weft::rpc::DtypeItemSize;
using weft::rpc::EncodeArrayHeader;

}  // namespace weft::rpc::internal
