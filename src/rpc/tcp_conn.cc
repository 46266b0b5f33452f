// tcp:// (and any byte stream): frames back to back on the stream, values above 64 KiB after
// their frame in data frames of up to 1 MiB, read straight into the value's own buffer and
// sent straight from the caller's memory (docs/formats/rpc-wire.md, "Over a stream").
#include <sys/mman.h>

#include <algorithm>
#include <cstring>
#include <deque>
#include <new>

#include "internal/transports.h"

namespace weft::rpc::internal {
namespace {

constexpr uint32_t kHandshakeMagic = 0x43505257;   // "WRPC"
constexpr size_t kMaxFramePayload = size_t{8} << 20;  // 65 inline values of 64 KiB and their headers fit
constexpr size_t kBufferBytes = 256 << 10;
constexpr size_t kDirectRead = 64 << 10;  // reads at least this large go straight to their destination

// Reads exactly n bytes (the handshake, before any buffering).
Status ReadExact(net::Stream& s, uint8_t* p, size_t n, Deadline d) {
  while (n > 0) {
    auto got = s.ReadSome(p, n, d);
    if (!got.ok()) return got.status();
    p += *got;
    n -= *got;
  }
  return Status::Ok();
}

class StreamConnImpl final : public Conn {
 public:
  StreamConnImpl(std::unique_ptr<net::Stream> s, uint64_t max_value)
      : s_(std::move(s)), max_value_(max_value), buf_(kBufferBytes) {}

  Status Send(const FrameOut& f, const std::vector<Value>& values, Deadline d) override {
    const size_t vsize = ValuesSize(values);
    if (vsize > kMaxFramePayload) return TooLarge("an rpc frame of " + std::to_string(vsize) + " bytes");
    out_.resize(sizeof(FrameHeader) + vsize);
    EncodeHeader(f.type, f.flags, f.resource, f.method, f.call, f.deadline_ns, static_cast<uint32_t>(vsize), out_.data());
    EncodeValues(values, out_.data() + sizeof(FrameHeader));
    const ByteView head(out_.data(), out_.size());
    WEFT_RETURN_IF_ERROR(Broken(s_->Write({&head, 1}, d)));
    uint8_t hdr[sizeof(FrameHeader)];
    for (const Value& v : values) {
      if (!v.follows) continue;
      for (size_t off = 0; off < v.bytes.size(); off += kChunkBytes) {
        const size_t n = std::min(kChunkBytes, v.bytes.size() - off);
        EncodeHeader(FrameType::kData, 0, 0, 0, f.call, 0, static_cast<uint32_t>(n), hdr);
        const ByteView pieces[2] = {ByteView(hdr, sizeof(hdr)), v.bytes.subspan(off, n)};
        WEFT_RETURN_IF_ERROR(Broken(s_->Write(pieces, d)));
      }
    }
    return Status::Ok();
  }

  Status SendPayload(const FrameOut& f, ByteView payload, Deadline d) override {
    uint8_t hdr[sizeof(FrameHeader)];
    EncodeHeader(f.type, f.flags, f.resource, f.method, f.call, 0, static_cast<uint32_t>(payload.size()), hdr);
    const ByteView pieces[2] = {ByteView(hdr, sizeof(hdr)), payload};
    return Broken(s_->Write(pieces, d));
  }

  Result<Frame> Read(Deadline d) override {
    if (next_ == frames_.size()) {
      if (!broken_.ok()) return broken_;
      Status st = Advance(d);
      if (!st.ok()) {
        if (st.code() != Code::kTimeout) broken_ = st;
        return st;
      }
      frames_.push_back(std::move(part_));  // the record's bytes stay where they are: its frame still views them
      part_ = Incoming{};
      stage_ = Stage::kHeader;
      done_ = 0;
    }
    return frames_[next_++].frame;
  }

  Result<std::vector<Value>> Values(const Frame& f) override {
    Incoming* in = Find(f);
    if (in == nullptr) return Status(Code::kInternal, "values of a frame not read here");
    auto v = DecodeValues(f.payload);
    if (!v.ok()) return v;
    size_t k = 0;
    for (Value& x : *v) {
      if (x.in_block) return Corrupt("a stream carries no pool blocks");
      if (!x.follows) continue;
      if (k >= in->big.size()) return Status(Code::kInternal, "a following value that was not read");
      const std::shared_ptr<Buffer>& b = in->big[k++];
      x.bytes = b != nullptr ? b->bytes() : ByteView();  // a following value of 0 bytes has none
    }
    return v;
  }

  void Release(size_t n) override {
    for (; n > 0 && next_ > 0; --n, --next_) frames_.pop_front();
  }
  void Unread() override {
    if (next_ > 0) --next_;
  }

  Result<Value> Lend(ByteView bytes, const std::shared_ptr<Held>&, std::vector<std::shared_ptr<Held>>*) override {
    if (bytes.size() > max_value_) {
      return TooLarge("a value of " + std::to_string(bytes.size()) + " bytes is above this connection's limit of " +
                      std::to_string(max_value_));
    }
    Value v;
    v.bytes = bytes;
    v.follows = bytes.size() > kInlineMax;
    v.length = bytes.size();
    return v;
  }

  Result<ByteView> Take(const Value& v, std::shared_ptr<Held>*) override { return v.bytes; }

  Result<Reply> Adopt(const Value& v, bool) override {
    Reply r;
    if (v.follows) {  // the buffer it was read into becomes the reply's: no copy
      for (size_t i = 0; i < next_; ++i) {
        for (std::shared_ptr<Buffer>& b : frames_[i].big) {
          if (b != nullptr && b->data() == v.bytes.data()) {
            r.buffer = std::move(b);
            return r;
          }
        }
      }
    }
    r.inline_bytes.assign(reinterpret_cast<const char*>(v.bytes.data()), v.bytes.size());
    return r;
  }

  void Interrupt() override { s_->Shutdown(); }
  std::string peer_identity() const override { return s_->peer_identity(); }
  std::string peer_address() const override { return s_->peer_address(); }

 private:
  struct Incoming {
    std::string record;             // header and payload
    Frame frame;                    // decoded from record once, when it arrived
    std::vector<std::shared_ptr<Buffer>> big;  // the bytes of each following value, in order
  };
  enum class Stage { kHeader, kPayload, kDataHeader, kData };

  // A failed write leaves the stream unusable: reads fail the same way from then on.
  Status Broken(Status s) {
    if (!s.ok() && broken_.ok()) broken_ = s;
    return s;
  }

  Incoming* Find(const Frame& f) {
    for (size_t i = 0; i < next_; ++i) {
      if (reinterpret_cast<const uint8_t*>(frames_[i].record.data()) + sizeof(FrameHeader) == f.payload.data()) {
        return &frames_[i];
      }
    }
    return nullptr;
  }

  // Moves up to n bytes to dst from the buffer, or from the stream (straight into dst when the
  // rest is large or the stream buffers itself, as TLS does; through the buffer otherwise,
  // which may then hold the next frames too).
  Status Fill(uint8_t* dst, size_t n, size_t* done, Deadline d) {
    while (*done < n) {
      if (begin_ == end_) {
        const size_t want = n - *done;
        if (want >= kDirectRead || s_->buffered()) {
          auto got = s_->ReadSome(dst + *done, want, d);
          if (!got.ok()) return got.status();
          *done += *got;
          continue;
        }
        begin_ = end_ = 0;
        auto got = s_->ReadSome(buf_.data(), buf_.size(), d);
        if (!got.ok()) return got.status();
        end_ = *got;
      }
      const size_t take = std::min(end_ - begin_, n - *done);
      std::memcpy(dst + *done, buf_.data() + begin_, take);
      begin_ += take;
      *done += take;
    }
    return Status::Ok();
  }

  // Reads the next frame and the values that follow it into part_; resumable after kTimeout.
  Status Advance(Deadline d) {
    for (;;) {
      switch (stage_) {
        case Stage::kHeader: {
          WEFT_RETURN_IF_ERROR(Fill(hdr_, sizeof(hdr_), &done_, d));
          FrameHeader h;
          std::memcpy(&h, hdr_, sizeof(h));
          WEFT_RETURN_IF_ERROR(CheckHeader(h));
          if (h.type == static_cast<uint8_t>(FrameType::kData)) return Corrupt("a data frame without a value to fill");
          if (h.payload > kMaxFramePayload) {
            return TooLarge("an rpc frame of " + std::to_string(h.payload) + " bytes (at most " +
                            std::to_string(kMaxFramePayload) + ")");
          }
          call_ = h.call_id;
          part_.record.resize(sizeof(FrameHeader) + h.payload);
          std::memcpy(part_.record.data(), hdr_, sizeof(hdr_));
          stage_ = Stage::kPayload;
          done_ = sizeof(FrameHeader);
          break;
        }
        case Stage::kPayload: {
          WEFT_RETURN_IF_ERROR(Fill(reinterpret_cast<uint8_t*>(part_.record.data()), part_.record.size(), &done_, d));
          auto f = DecodeFrame(AsBytes(part_.record));
          if (!f.ok()) return f.status();
          part_.frame = *f;
          const FrameType t = f->type();
          lengths_.clear();
          if (t == FrameType::kCall || t == FrameType::kReply || t == FrameType::kChunk || t == FrameType::kEnd) {
            auto values = DecodeValues(f->payload);
            if (!values.ok()) return values.status();
            uint64_t total = 0;
            for (const Value& v : *values) {
              if (v.in_block) return Corrupt("a stream carries no pool blocks");
              if (!v.follows) continue;
              if (v.length > max_value_ - total) {
                return TooLarge("a value of " + std::to_string(v.length) + " bytes is above this connection's limit of " +
                                std::to_string(max_value_));
              }
              total += v.length;
              lengths_.push_back(v.length);
            }
          }
          part_.big.resize(lengths_.size());
          value_ = 0;
          if (!Next()) return Status::Ok();
          break;
        }
        case Stage::kDataHeader: {
          WEFT_RETURN_IF_ERROR(Fill(hdr_, sizeof(hdr_), &done_, d));
          FrameHeader h;
          std::memcpy(&h, hdr_, sizeof(h));
          WEFT_RETURN_IF_ERROR(CheckHeader(h));
          std::shared_ptr<Buffer>& big = part_.big[value_];
          // Memory is taken only as bytes arrive: a peer that claims a huge value and sends
          // nothing costs address space, no memory.
          if (big == nullptr) big = Buffer::Reserve(lengths_[value_]);
          if (big == nullptr) {
            return Status(Code::kResourceExhausted, "no room for a value of " + std::to_string(lengths_[value_]) + " bytes");
          }
          const uint64_t left = lengths_[value_] - big->size();
          if (h.type != static_cast<uint8_t>(FrameType::kData) || h.call_id != call_ || h.payload == 0 ||
              h.payload > left) {
            return Corrupt("expected a data frame of call " + std::to_string(call_) + " with at most " +
                           std::to_string(left) + " bytes");
          }
          chunk_start_ = big->size();
          big->Resize(chunk_start_ + h.payload);
          stage_ = Stage::kData;
          done_ = 0;
          break;
        }
        case Stage::kData: {
          Buffer& big = *part_.big[value_];
          WEFT_RETURN_IF_ERROR(Fill(big.data() + chunk_start_, big.size() - chunk_start_, &done_, d));
          if (big.size() == lengths_[value_]) ++value_;
          if (!Next()) return Status::Ok();
          break;
        }
      }
    }
  }

  // Moves to the next data frame, if a following value still misses bytes.
  bool Next() {
    while (value_ < lengths_.size() && lengths_[value_] == 0) ++value_;
    if (value_ == lengths_.size()) return false;
    stage_ = Stage::kDataHeader;
    done_ = 0;
    return true;
  }

  std::unique_ptr<net::Stream> s_;
  uint64_t max_value_;
  std::vector<uint8_t> buf_;
  size_t begin_ = 0, end_ = 0;  // unread bytes in buf_
  std::vector<uint8_t> out_;     // the frame being sent
  std::deque<Incoming> frames_;  // [0, next_) read and not released; [next_, ...) not yet read
  size_t next_ = 0;
  Status broken_;
  // The frame being read.
  Stage stage_ = Stage::kHeader;
  size_t done_ = 0;
  uint8_t hdr_[sizeof(FrameHeader)] = {};
  Incoming part_;
  uint64_t call_ = 0;
  std::vector<uint64_t> lengths_;  // of its following values
  size_t value_ = 0;               // the one being filled
  size_t chunk_start_ = 0;         // where the current data frame's bytes go in it
};

}  // namespace

Status WriteHandshake(net::Stream& s, std::string_view text, Deadline deadline) {
  if (text.size() > kMaxHandshakeBytes) return TooLarge("a handshake message above 1 MiB");
  uint8_t head[8];
  const uint32_t len = static_cast<uint32_t>(text.size());
  std::memcpy(head, &kHandshakeMagic, 4);
  std::memcpy(head + 4, &len, 4);
  const ByteView pieces[2] = {ByteView(head, 8), AsBytes(text)};
  return s.Write(pieces, deadline);
}

Result<std::string> ReadHandshake(net::Stream& s, Deadline deadline) {
  uint8_t head[8];
  WEFT_RETURN_IF_ERROR(ReadExact(s, head, 8, deadline));
  uint32_t magic = 0, len = 0;
  std::memcpy(&magic, head, 4);
  std::memcpy(&len, head + 4, 4);
  if (magic != kHandshakeMagic) return Corrupt("handshake: not a weft rpc peer (bad magic)");
  if (len > kMaxHandshakeBytes) return TooLarge("handshake: a message of " + std::to_string(len) + " bytes");
  std::string text(len, '\0');
  WEFT_RETURN_IF_ERROR(ReadExact(s, reinterpret_cast<uint8_t*>(text.data()), len, deadline));
  return text;
}

}  // namespace weft::rpc::internal

namespace weft::rpc {

std::shared_ptr<Buffer> Buffer::Reserve(size_t capacity) {
  constexpr size_t kHuge = size_t{2} << 20;
  const size_t mapped = std::max(kHuge, (capacity + kHuge - 1) & ~(kHuge - 1));
  void* p = ::mmap(nullptr, mapped, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) return nullptr;
  ::madvise(p, mapped, MADV_HUGEPAGE);  // 512 times fewer page faults where the kernel has huge pages
  return std::shared_ptr<Buffer>(new (std::nothrow) Buffer(static_cast<uint8_t*>(p), capacity, mapped));
}

Buffer::~Buffer() { ::munmap(data_, mapped_); }

}  // namespace weft::rpc

namespace weft::rpc::internal {

std::unique_ptr<Conn> StreamConn(std::unique_ptr<net::Stream> stream, uint64_t max_value) {
  return std::make_unique<StreamConnImpl>(std::move(stream), max_value);
}

}  // namespace weft::rpc::internal
