// TLS 1.3 record protection (RFC 8446 sections 5 and 7) for the application traffic after
// OpenSSL's handshake: the record layer of a TlsStream. OpenSSL proves the peer and agrees the
// traffic secrets; from then on records are sealed and opened here with one AEAD context per
// direction, kept keyed, so that a record costs the cipher and little else (OpenSSL 3's own
// record layer spends about three times the AEAD's time on a small record in generic
// parameter plumbing). The bytes on the wire are standard TLS 1.3: any TLS stack is the peer.
//
// Format: docs/formats/tls-records.md. Fuzzed: tests/fuzz/fuzz_net_tls_records.cc.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "weft/core/bytes.h"
#include "weft/core/status.h"

namespace weft::net {
class Stream;
}

namespace weft::net::internal {

// The TLS 1.3 cipher suites (their protocol ids).
constexpr uint16_t kAes128GcmSha256 = 0x1301;
constexpr uint16_t kAes256GcmSha384 = 0x1302;
constexpr uint16_t kChaCha20Poly1305Sha256 = 0x1303;

// Content types.
constexpr uint8_t kAlert = 21;
constexpr uint8_t kHandshake = 22;
constexpr uint8_t kApplicationData = 23;

class RecordLayer {
 public:
  static constexpr size_t kHeader = 5;
  static constexpr size_t kTag = 16;
  static constexpr size_t kMaxPlain = 16384;                      // content per record (2^14)
  static constexpr size_t kMaxRecord = kHeader + kMaxPlain + 256;  // the largest record accepted
  static constexpr size_t kMaxSealed = kHeader + kMaxPlain + 1 + kTag;  // the largest record sealed
  // Records sealed under one key before it is updated: far below AES-GCM's limit of 2^24.5
  // full records per key (RFC 8446 section 5.5).
  static constexpr uint64_t kRekeyRecords = uint64_t{1} << 23;

  // Keys for `suite` from the two directions' traffic secrets (each the suite's hash long).
  // kInvalidArgument for another suite or a secret of the wrong length.
  static Result<std::unique_ptr<RecordLayer>> Create(uint16_t suite, ByteView read_secret, ByteView write_secret);
  ~RecordLayer();
  RecordLayer(const RecordLayer&) = delete;
  RecordLayer& operator=(const RecordLayer&) = delete;

  // --- sending ---
  // Seals one record of content `type` carrying the pieces (at most kMaxPlain bytes in all)
  // into `out`, which has room for their size + 1 + kHeader + kTag; returns the record's size.
  size_t Seal(uint8_t type, std::span<const ByteView> pieces, uint8_t* out);
  // Seals a KeyUpdate (update_requested when `request`) and moves the sending side to the next
  // key; returns the record's size (out: room for kMaxSealed).
  size_t SealKeyUpdate(bool request, uint8_t* out);
  // Whether the sending key is due for an update (kRekeyRecords sealed, or the peer asked).
  bool update_due() const { return write_.seq >= rekey_records_ || peer_asked_; }
  uint64_t sealed() const { return write_.seq; }
  void set_rekey_records(uint64_t n) { rekey_records_ = n; }  // tests: updates after n records

  // --- receiving ---
  // The size of the record at the head of `in` (header included), or 0 if its header is not
  // all there; kCorrupt for a header no TLS 1.3 peer sends (type, version, length).
  static Result<size_t> RecordSize(ByteView in);
  struct Content {
    uint8_t type = 0;
    size_t size = 0;  // the content's bytes, at the start of dst
  };
  // Opens the whole record `rec` (RecordSize long) into dst, which has room for rec.size() -
  // kHeader - kTag bytes and may be rec.data() + kHeader (in place). kCorrupt if it fails
  // authentication (forged, reordered, replayed, or under another key) or holds no content
  // type, or more than kMaxPlain bytes.
  Result<Content> Open(ByteView rec, uint8_t* dst);

  // What an opened record that is not application data means for the reader.
  enum class Event { kNone, kClosed };
  // Takes an opened record of type alert or handshake: a KeyUpdate moves the receiving side to
  // the next key (and, if asked, makes update_due()); a NewSessionTicket is ignored; a
  // close_notify is kClosed. Another alert is kUnavailable naming it; any other handshake
  // message, a KeyUpdate not at the end of its record or a handshake message longer than
  // 64 KiB, kCorrupt; application data is not for here (kInvalidArgument).
  Result<Event> Absorb(uint8_t type, ByteView content);

 private:
  struct Direction {
    void* ctx = nullptr;  // EVP_CIPHER_CTX, keyed
    uint8_t iv[12] = {};
    uint8_t secret[48] = {};
    uint64_t seq = 0;
  };
  RecordLayer() = default;
  Status Key(Direction& d, ByteView secret, bool encrypt);
  Status Update(Direction& d, bool encrypt);
  void Nonce(const Direction& d, uint8_t nonce[12]) const;

  uint16_t suite_ = 0;
  size_t key_len_ = 0;
  size_t hash_len_ = 0;
  Direction read_, write_;
  uint64_t rekey_records_ = kRekeyRecords;
  bool peer_asked_ = false;
  std::vector<uint8_t> handshake_;  // a handshake message split across records, so far
};

// Tests: a TLS stream (TlsContext's) updates its sending key after every n records.
void SetRekeyRecords(Stream& tls_stream, uint64_t n);

}  // namespace weft::net::internal
