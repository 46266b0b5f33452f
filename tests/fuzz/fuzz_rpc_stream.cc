// Fuzzes what a tcp:// peer sends after the handshake: arbitrary bytes, in pieces of arbitrary
// sizes, read as frames and the values that follow them (src/rpc/tcp_conn.cc). Every frame read
// must decode, every value list must parse or be refused, and memory stays within the value
// limit however large the lengths claimed.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

#include "rpc/internal/transports.h"

namespace {

// A stream that hands out the input in pieces whose sizes the input also chooses.
class FuzzStream final : public weft::net::Stream {
 public:
  FuzzStream(const uint8_t* data, size_t size) : data_(data), size_(size) {}
  weft::Result<size_t> ReadSome(void* p, size_t n, weft::Deadline) override {
    if (pos_ >= size_) return weft::Status(weft::Code::kUnavailable, "end of input");
    size_t piece = 1 + data_[pos_] % 97;  // the first byte of each piece picks its length
    ++pos_;
    piece = std::min({piece * 37, n, size_ - pos_});
    if (piece == 0) return weft::Status(weft::Code::kUnavailable, "end of input");
    std::memcpy(p, data_ + pos_, piece);
    pos_ += piece;
    return piece;
  }
  weft::Status Write(std::span<const weft::ByteView>, weft::Deadline) override { return weft::Status::Ok(); }
  void Shutdown() override {}
  const std::string& peer_identity() const override { return none_; }
  bool encrypted() const override { return false; }
  int fd() const override { return -1; }
  const std::string& peer_address() const override { return none_; }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
  std::string none_;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace weft::rpc::internal;
  auto conn = StreamConn(std::make_unique<FuzzStream>(data, size), uint64_t{1} << 20);
  for (int frames = 0; frames < 64; ++frames) {
    auto f = conn->Read(weft::Deadline::Now());
    if (!f.ok()) break;
    auto again = DecodeFrame(weft::ByteView(reinterpret_cast<const uint8_t*>(&f->header), sizeof(FrameHeader)));
    (void)again;
    auto values = conn->Values(*f);
    if (values.ok()) {
      for (const Value& v : *values) {
        if (v.in_block) __builtin_trap();  // a stream never carries pool blocks
        if (v.follows && v.bytes.size() != v.length) __builtin_trap();  // read whole before the frame is given
        if (f->type() == FrameType::kReply) {
          auto r = conn->Adopt(v, false);
          if (r.ok() && r->bytes().size() != v.length && v.follows) __builtin_trap();
        }
      }
    }
    conn->Release();
  }
  return 0;
}
