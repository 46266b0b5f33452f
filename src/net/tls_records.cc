// TLS 1.3 record protection after the handshake (internal/tls_records.h).
#include "internal/tls_records.h"

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/ssl.h>

#include <cstring>

namespace weft::net::internal {
namespace {

EVP_CIPHER_CTX* Ctx(void* p) { return static_cast<EVP_CIPHER_CTX*>(p); }

constexpr uint8_t kKeyUpdate = 24;
constexpr uint8_t kNewSessionTicket = 4;
constexpr size_t kMaxHandshakeMessage = 64 << 10;

const EVP_MD* Hash(uint16_t suite) { return suite == kAes256GcmSha384 ? EVP_sha384() : EVP_sha256(); }

const EVP_CIPHER* Cipher(uint16_t suite) {
  switch (suite) {
    case kAes128GcmSha256:
      return EVP_aes_128_gcm();
    case kAes256GcmSha384:
      return EVP_aes_256_gcm();
    default:
      return EVP_chacha20_poly1305();
  }
}

// HKDF-Expand-Label(secret, label, "", length) for a length of at most the hash's (one HMAC
// block of HKDF-Expand): HMAC(secret, HkdfLabel || 0x01).
bool ExpandLabel(const EVP_MD* md, ByteView secret, const char* label, size_t length, uint8_t* out) {
  uint8_t info[2 + 1 + 255 + 1 + 1];
  const size_t label_len = std::strlen(label);
  size_t n = 0;
  info[n++] = static_cast<uint8_t>(length >> 8);
  info[n++] = static_cast<uint8_t>(length);
  info[n++] = static_cast<uint8_t>(6 + label_len);
  std::memcpy(info + n, "tls13 ", 6);
  n += 6;
  std::memcpy(info + n, label, label_len);
  n += label_len;
  info[n++] = 0;  // no context
  info[n++] = 1;  // the first (only) block
  uint8_t block[EVP_MAX_MD_SIZE];
  unsigned int got = 0;
  if (HMAC(md, secret.data(), static_cast<int>(secret.size()), info, n, block, &got) == nullptr || got < length) {
    return false;
  }
  std::memcpy(out, block, length);
  OPENSSL_cleanse(block, sizeof(block));
  return true;
}

}  // namespace

Result<std::unique_ptr<RecordLayer>> RecordLayer::Create(uint16_t suite, ByteView read_secret,
                                                         ByteView write_secret) {
  if (suite != kAes128GcmSha256 && suite != kAes256GcmSha384 && suite != kChaCha20Poly1305Sha256) {
    return InvalidArgument("TLS 1.3 cipher suite " + std::to_string(suite) + " is not one Weft keys itself");
  }
  std::unique_ptr<RecordLayer> r(new RecordLayer());
  r->suite_ = suite;
  r->hash_len_ = static_cast<size_t>(EVP_MD_get_size(Hash(suite)));
  r->key_len_ = suite == kAes128GcmSha256 ? 16 : 32;
  if (read_secret.size() != r->hash_len_ || write_secret.size() != r->hash_len_) {
    return InvalidArgument("a traffic secret of " + std::to_string(read_secret.size()) + " bytes for a hash of " +
                           std::to_string(r->hash_len_));
  }
  WEFT_RETURN_IF_ERROR(r->Key(r->read_, read_secret, false));
  WEFT_RETURN_IF_ERROR(r->Key(r->write_, write_secret, true));
  return r;
}

RecordLayer::~RecordLayer() {
  for (Direction* d : {&read_, &write_}) {
    EVP_CIPHER_CTX_free(Ctx(d->ctx));
    OPENSSL_cleanse(d->secret, sizeof(d->secret));
    OPENSSL_cleanse(d->iv, sizeof(d->iv));
  }
}

Status RecordLayer::Key(Direction& d, ByteView secret, bool encrypt) {
  const EVP_MD* md = Hash(suite_);
  uint8_t key[32];
  std::memcpy(d.secret, secret.data(), hash_len_);
  if (!ExpandLabel(md, ByteView(d.secret, hash_len_), "key", key_len_, key) ||
      !ExpandLabel(md, ByteView(d.secret, hash_len_), "iv", sizeof(d.iv), d.iv)) {
    return Status(Code::kInternal, "deriving TLS traffic keys failed");
  }
  if (d.ctx == nullptr) d.ctx = EVP_CIPHER_CTX_new();
  const bool ok = d.ctx != nullptr && EVP_CipherInit_ex(Ctx(d.ctx), Cipher(suite_), nullptr, key, nullptr, encrypt) == 1;
  OPENSSL_cleanse(key, sizeof(key));
  if (!ok) {
    ERR_clear_error();
    return Status(Code::kInternal, "keying the TLS record cipher failed");
  }
  d.seq = 0;
  return Status::Ok();
}

Status RecordLayer::Update(Direction& d, bool encrypt) {
  uint8_t next[48];
  if (!ExpandLabel(Hash(suite_), ByteView(d.secret, hash_len_), "traffic upd", hash_len_, next)) {
    return Status(Code::kInternal, "updating a TLS traffic secret failed");
  }
  Status st = Key(d, ByteView(next, hash_len_), encrypt);
  OPENSSL_cleanse(next, sizeof(next));
  return st;
}

// The per-record nonce: the static iv XOR the 64-bit sequence number, left-padded.
void RecordLayer::Nonce(const Direction& d, uint8_t nonce[12]) const {
  std::memcpy(nonce, d.iv, 12);
  for (int i = 0; i < 8; ++i) nonce[11 - i] ^= static_cast<uint8_t>(d.seq >> (8 * i));
}

size_t RecordLayer::Seal(uint8_t type, std::span<const ByteView> pieces, uint8_t* out) {
  size_t plain = 0;
  for (ByteView p : pieces) plain += p.size();
  const size_t len = plain + 1 + kTag;
  out[0] = kApplicationData;  // every protected record looks like application data
  out[1] = 3;
  out[2] = 3;
  out[3] = static_cast<uint8_t>(len >> 8);
  out[4] = static_cast<uint8_t>(len);
  uint8_t nonce[12];
  Nonce(write_, nonce);
  EVP_CIPHER_CTX* c = Ctx(write_.ctx);
  int l = 0;
  EVP_CipherInit_ex(c, nullptr, nullptr, nullptr, nonce, 1);
  EVP_CipherUpdate(c, nullptr, &l, out, kHeader);  // the header is the additional data
  uint8_t* p = out + kHeader;
  for (ByteView piece : pieces) {
    if (piece.empty()) continue;
    EVP_CipherUpdate(c, p, &l, piece.data(), static_cast<int>(piece.size()));
    p += l;
  }
  EVP_CipherUpdate(c, p, &l, &type, 1);
  p += l;
  EVP_CipherFinal_ex(c, p, &l);
  p += l;
  EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_GET_TAG, kTag, p);
  p += kTag;
  ++write_.seq;
  return static_cast<size_t>(p - out);
}

size_t RecordLayer::SealKeyUpdate(bool request, uint8_t* out) {
  const uint8_t msg[5] = {kKeyUpdate, 0, 0, 1, static_cast<uint8_t>(request ? 1 : 0)};
  const ByteView piece(msg, sizeof(msg));
  const size_t n = Seal(kHandshake, {&piece, 1}, out);
  // A failure here (an HMAC that cannot run) leaves the old key: the peer then fails the next
  // record's authentication, so nothing is sent under a key the two sides disagree on unseen.
  Update(write_, true).IgnoreError();
  peer_asked_ = false;
  return n;
}

Result<size_t> RecordLayer::RecordSize(ByteView in) {
  if (in.size() < kHeader) return size_t{0};
  if (in[0] != kApplicationData) {
    return Corrupt("a TLS record of type " + std::to_string(in[0]) + " after the handshake (all are sealed, type 23)");
  }
  if (in[1] != 3 || in[2] != 3) return Corrupt("a TLS record of version " + std::to_string(in[1]) + "." + std::to_string(in[2]));
  const size_t len = (size_t{in[3]} << 8) | in[4];
  if (len < 1 + kTag || len > kMaxRecord - kHeader) {
    return Corrupt("a TLS record of " + std::to_string(len) + " bytes (a sealed record holds " +
                   std::to_string(1 + kTag) + " to " + std::to_string(kMaxRecord - kHeader) + ")");
  }
  return kHeader + len;
}

Result<RecordLayer::Content> RecordLayer::Open(ByteView rec, uint8_t* dst) {
  auto size = RecordSize(rec);
  if (!size.ok()) return size.status();
  if (*size != rec.size()) return InvalidArgument("Open takes one whole record");
  if (read_.seq == UINT64_MAX) return Corrupt("the peer's TLS records ran out of sequence numbers");
  const size_t sealed = rec.size() - kHeader - kTag;
  uint8_t nonce[12], tag[kTag];
  Nonce(read_, nonce);
  std::memcpy(tag, rec.data() + rec.size() - kTag, kTag);  // before an in-place open writes near it
  EVP_CIPHER_CTX* c = Ctx(read_.ctx);
  int l = 0, tail = 0;
  EVP_CipherInit_ex(c, nullptr, nullptr, nullptr, nonce, 0);
  EVP_CipherUpdate(c, nullptr, &l, rec.data(), kHeader);
  EVP_CipherUpdate(c, dst, &l, rec.data() + kHeader, static_cast<int>(sealed));
  EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_SET_TAG, kTag, tag);
  if (EVP_CipherFinal_ex(c, dst + l, &tail) != 1) {
    ERR_clear_error();
    return Corrupt("a TLS record failed authentication (forged, reordered, replayed or under another key)");
  }
  ++read_.seq;
  size_t n = sealed;
  while (n > 0 && dst[n - 1] == 0) --n;  // the padding
  if (n == 0) return Corrupt("a TLS record with no content type");
  Content out{dst[n - 1], n - 1};
  if (out.size > kMaxPlain) return Corrupt("a TLS record of " + std::to_string(out.size) + " bytes of content (2^14 at most)");
  return out;
}

Result<RecordLayer::Event> RecordLayer::Absorb(uint8_t type, ByteView content) {
  if (type == kAlert) {
    if (content.size() != 2) return Corrupt("a TLS alert of " + std::to_string(content.size()) + " bytes");
    if (content[1] == 0) return Event::kClosed;   // close_notify
    if (content[1] == 90) return Event::kNone;    // user_canceled: a close_notify follows
    const std::string name = SSL_alert_desc_string_long(content[1]);
    switch (content[1]) {  // the peer refused this side's certificate (it checks it after its own Finished)
      case 40: case 42: case 43: case 44: case 45: case 46: case 48: case 49: case 51: case 116:
        return Status(Code::kUnauthenticated, "identity refused by the peer (TLS alert: " + name + ")");
      default:
        return Status(Code::kUnavailable, "the peer ended the connection (TLS alert: " + name + ")");
    }
  }
  if (type != kHandshake) {
    if (type == kApplicationData) return InvalidArgument("application data is the reader's");
    return Corrupt("a TLS record of content type " + std::to_string(type) + " after the handshake");
  }
  if (content.empty()) return Corrupt("an empty TLS handshake record");
  if (handshake_.size() + content.size() > kMaxHandshakeMessage + 4) {
    return Corrupt("a TLS handshake message of over " + std::to_string(kMaxHandshakeMessage) + " bytes after the handshake");
  }
  handshake_.insert(handshake_.end(), content.begin(), content.end());
  size_t at = 0;
  while (handshake_.size() - at >= 4) {
    const uint8_t* m = handshake_.data() + at;
    const size_t len = (size_t{m[1]} << 16) | (size_t{m[2]} << 8) | m[3];
    if (len > kMaxHandshakeMessage) {
      return Corrupt("a TLS handshake message of " + std::to_string(len) + " bytes after the handshake");
    }
    if (handshake_.size() - at - 4 < len) break;  // the rest comes in the next record
    if (m[0] == kKeyUpdate) {
      if (len != 1 || m[4] > 1) return Corrupt("a malformed TLS KeyUpdate");
      if (at + 5 != handshake_.size()) return Corrupt("a TLS KeyUpdate not at the end of its record");
      const bool requested = m[4] == 1;
      handshake_.clear();
      WEFT_RETURN_IF_ERROR(Update(read_, false));
      if (requested) peer_asked_ = true;  // answered before our next record
      return Event::kNone;
    }
    if (m[0] != kNewSessionTicket) {  // tickets are of no use here (no resumption); anything else is
      return Corrupt("a TLS handshake message of type " + std::to_string(m[0]) + " after the handshake");
    }
    at += 4 + len;
  }
  handshake_.erase(handshake_.begin(), handshake_.begin() + static_cast<ptrdiff_t>(at));
  return Event::kNone;
}

}  // namespace weft::net::internal
