// TLS 1.3 streams through OpenSSL: contexts with this host's key and what it trusts, the
// handshake on a non-blocking socket within a deadline, and the Stream over SSL.
#include "weft/net/tls.h"

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "internal/tls_records.h"
#include "weft/net/keys.h"

namespace weft::net {
namespace {

SSL_CTX* Ctx(void* p) { return static_cast<SSL_CTX*>(p); }

// The last OpenSSL error as text, the queue cleared.
std::string SslError() {
  char buf[256] = {0};
  const unsigned long e = ERR_peek_last_error();
  if (e != 0) ERR_error_string_n(e, buf, sizeof(buf));
  ERR_clear_error();
  return e != 0 ? std::string(buf) : std::string("unknown TLS error");
}

// Whether the last OpenSSL error says the peer's identity was not accepted (by us, or by the
// peer in an alert): then the failure is kUnauthenticated, not a broken connection.
bool IdentityRefused() {
  const unsigned long e = ERR_peek_last_error();
  if (e == 0 || ERR_GET_LIB(e) != ERR_LIB_SSL) return false;
  const int reason = ERR_GET_REASON(e);
  if (reason == SSL_R_CERTIFICATE_VERIFY_FAILED || reason == SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE) return true;
  if (reason < SSL_AD_REASON_OFFSET) return false;
  switch (reason - SSL_AD_REASON_OFFSET) {  // an alert the peer sent
    case SSL_AD_BAD_CERTIFICATE:
    case SSL_AD_UNSUPPORTED_CERTIFICATE:
    case SSL_AD_CERTIFICATE_REVOKED:
    case SSL_AD_CERTIFICATE_EXPIRED:
    case SSL_AD_CERTIFICATE_UNKNOWN:
    case SSL_AD_UNKNOWN_CA:
    case SSL_AD_ACCESS_DENIED:
    case SSL_AD_CERTIFICATE_REQUIRED:
    case SSL_AD_DECRYPT_ERROR:
    case SSL_AD_HANDSHAKE_FAILURE:
      return true;
    default:
      return false;
  }
}

int g_ctx_index = -1;  // SSL_CTX ex_data slot: the TlsContext

// A self-signed certificate for `key`, valid from an hour ago for ten years: it carries the
// key; what peers trust is the key id (pinning).
X509* SelfSigned(EVP_PKEY* key) {
  X509* x = X509_new();
  if (x == nullptr) return nullptr;
  uint8_t serial[16];
  RAND_bytes(serial, sizeof(serial));
  serial[0] &= 0x7F;
  BIGNUM* bn = BN_bin2bn(serial, sizeof(serial), nullptr);
  bool ok = bn != nullptr && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) != nullptr;
  BN_free(bn);
  ok = ok && X509_set_version(x, 2) == 1 && X509_gmtime_adj(X509_getm_notBefore(x), -3600) != nullptr &&
       X509_gmtime_adj(X509_getm_notAfter(x), 10L * 365 * 24 * 3600) != nullptr && X509_set_pubkey(x, key) == 1;
  X509_NAME* name = X509_get_subject_name(x);
  ok = ok && X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("weft host"),
                                        -1, -1, 0) == 1;
  ok = ok && X509_set_issuer_name(x, name) == 1 && X509_sign(x, key, nullptr) > 0;
  if (!ok) {
    X509_free(x);
    return nullptr;
  }
  return x;
}

// The identity a certificate proves: its Ed25519 key's id, else "x509:" and its subject.
std::string Identity(X509* cert) {
  if (cert == nullptr) return "";
  EVP_PKEY* k = X509_get0_pubkey(cert);
  PublicKey raw{};
  size_t len = raw.size();
  if (k != nullptr && EVP_PKEY_id(k) == EVP_PKEY_ED25519 && EVP_PKEY_get_raw_public_key(k, raw.data(), &len) == 1 &&
      len == raw.size()) {
    return KeyId(raw);
  }
  char buf[256] = {0};
  X509_NAME_oneline(X509_get_subject_name(cert), buf, sizeof(buf));
  return std::string("x509:") + buf;
}

// The traffic secrets of one handshake, as OpenSSL's key log callback hands them over.
struct Secrets {
  std::vector<uint8_t> client, server;
  ~Secrets() {
    if (!client.empty()) OPENSSL_cleanse(client.data(), client.size());
    if (!server.empty()) OPENSSL_cleanse(server.data(), server.size());
  }
};

// "CLIENT_TRAFFIC_SECRET_0 <client random> <secret>": the secret's bytes (hex), for the first
// application traffic secrets only.
void KeylogThunk(const SSL* ssl, const char* line) {
  auto* s = static_cast<Secrets*>(SSL_get_app_data(ssl));
  if (s == nullptr) return;
  const std::string_view text(line);
  std::vector<uint8_t>* into = nullptr;
  if (text.starts_with("CLIENT_TRAFFIC_SECRET_0 ")) into = &s->client;
  if (text.starts_with("SERVER_TRAFFIC_SECRET_0 ")) into = &s->server;
  if (into == nullptr) return;
  const size_t at = text.rfind(' ');
  const std::string_view hex = text.substr(at + 1);
  into->clear();
  auto nibble = [](char c) { return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10; };
  for (size_t i = 0; i + 1 < hex.size(); i += 2) into->push_back(static_cast<uint8_t>(nibble(hex[i]) << 4 | nibble(hex[i + 1])));
}

// Why a handshake failed, as a Status.
Status HandshakeFailure(SSL* ssl, const std::string& what, int err) {
  if (err == SSL_ERROR_ZERO_RETURN) return Status(Code::kUnavailable, what + ": the peer closed the connection");
  if (IdentityRefused()) {
    long verify = SSL_get_verify_result(ssl);
    std::string why = SslError();
    if (verify != X509_V_OK) why += " (" + std::string(X509_verify_cert_error_string(verify)) + ")";
    return Status(Code::kUnauthenticated, what + ": identity refused: " + why);
  }
  if (err == SSL_ERROR_SYSCALL && ERR_peek_last_error() == 0) {
    const int e = errno;
    ERR_clear_error();
    return Status(Code::kUnavailable, what + ": " + (e != 0 ? std::strerror(e) : "the peer closed the connection"));
  }
  return Status(Code::kUnavailable, what + ": " + SslError());
}

using internal::RecordLayer;

// A TLS 1.3 connection: OpenSSL's handshake, then records sealed and opened by RecordLayer
// straight between the socket and the caller's memory. Reads take as many bytes as the socket
// holds (many records per system call) and open whole records straight into the caller's
// buffer when they fit; writes seal a frame's small pieces into one record and large values
// into full records, sent 512 KiB at a time (smaller sends measured slower, down to half at 64 KiB).
class TlsStream final : public Stream {
 public:
  explicit TlsStream(int fd) : fd_(fd), peer_(PeerAddress(fd)) {}
  ~TlsStream() override { ::close(fd_); }

  // The handshake within the deadline; `ssl` is freed when it ends.
  Status Handshake(SSL* ssl, bool server, Deadline deadline) {
    Secrets secrets;
    SSL_set_app_data(ssl, &secrets);
    Status st = Agree(ssl, server, deadline, secrets);
    SSL_free(ssl);
    if (!st.ok()) {
      // What the peer sent after the handshake's records would make closing reset the
      // connection, and a reset may destroy the alert saying why before the peer reads it.
      uint8_t sink[16 << 10];
      for (int i = 0; i < 16 && ::recv(fd_, sink, sizeof(sink), MSG_DONTWAIT) > 0; ++i) {
      }
    }
    return st;
  }

  Result<size_t> ReadSome(void* p, size_t n, Deadline deadline) override {
    if (!broken_.ok()) return broken_;
    auto* dst = static_cast<uint8_t*>(p);
    size_t filled = 0;
    for (;;) {
      if (plain_size_ > 0) {
        const size_t k = std::min(n - filled, plain_size_);
        std::memcpy(dst + filled, plain_, k);
        plain_ += k;
        plain_size_ -= k;
        filled += k;
        if (filled == n) return filled;
      }
      const ByteView have(in_.data() + in_begin_, in_end_ - in_begin_);
      auto size = RecordLayer::RecordSize(have);
      if (!size.ok()) return Fail(size.status(), filled);
      if (*size != 0 && *size <= have.size()) {
        uint8_t* rec = in_.data() + in_begin_;
        const size_t room = *size - RecordLayer::kHeader - RecordLayer::kTag;
        uint8_t* out = room <= n - filled ? dst + filled : rec + RecordLayer::kHeader;  // straight to the caller when it fits
        auto c = records_->Open(have.first(*size), out);
        in_begin_ += *size;
        if (!c.ok()) return Fail(c.status(), filled);
        if (c->type == internal::kApplicationData) {
          if (out == dst + filled) {
            filled += c->size;
          } else {
            plain_ = out;
            plain_size_ = c->size;
          }
          continue;
        }
        auto ev = records_->Absorb(c->type, ByteView(out, c->size));
        if (!ev.ok()) return Fail(ev.status(), filled);
        if (*ev == RecordLayer::Event::kClosed) {
          return Fail(Status(Code::kUnavailable, "the peer at " + peer_ + " closed the connection"), filled);
        }
        if (records_->update_due()) {  // a KeyUpdate asked of us: answered now
          Status st = Seal({}, deadline);
          if (!st.ok()) return Fail(st, filled);
        }
        continue;
      }
      if (filled > 0) return filled;
      WEFT_RETURN_IF_ERROR(Receive(deadline));
    }
  }

  Status Write(std::span<const ByteView> pieces, Deadline deadline) override {
    if (!broken_.ok()) return broken_;
    return Seal(pieces, deadline);
  }

  void Shutdown() override { ::shutdown(fd_, SHUT_RDWR); }
  const std::string& peer_identity() const override { return identity_; }
  bool encrypted() const override { return true; }
  bool buffered() const override { return true; }
  int fd() const override { return fd_; }
  const std::string& peer_address() const override { return peer_; }

  // Tests: the sending key is updated after every n records.
  void set_rekey_records(uint64_t n) { records_->set_rekey_records(n); }

 private:
  static constexpr size_t kInBytes = 1024 << 10;
  static constexpr size_t kOutBytes = 512 << 10;  // sealed records sent per system call, at most
  static constexpr size_t kFirstBatch = 32 << 10;

  Status Agree(SSL* ssl, bool server, Deadline deadline, const Secrets& secrets) {
    for (;;) {
      ERR_clear_error();
      const int rc = server ? SSL_accept(ssl) : SSL_connect(ssl);
      if (rc == 1) break;
      const int err = SSL_get_error(ssl, rc);
      if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
        if (!WaitFd(fd_, err == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, deadline)) {
          return Status(Code::kTimeout, "TLS handshake with " + peer_ + ": no answer before the deadline");
        }
        continue;
      }
      return HandshakeFailure(ssl, "TLS handshake with " + peer_, err);
    }
    identity_ = Identity(SSL_get0_peer_certificate(ssl));
    // OpenSSL read record by record (no read-ahead), so the socket holds whatever followed the
    // handshake; a record it already took would be lost to the record layer.
    if (SSL_has_pending(ssl) != 0) return Status(Code::kUnavailable, "TLS handshake with " + peer_ + ": data inside the handshake");
    const SSL_CIPHER* cipher = SSL_get_current_cipher(ssl);
    const uint16_t suite = cipher != nullptr ? SSL_CIPHER_get_protocol_id(cipher) : 0;
    const std::vector<uint8_t>& mine = server ? secrets.server : secrets.client;
    const std::vector<uint8_t>& theirs = server ? secrets.client : secrets.server;
    auto records = RecordLayer::Create(suite, ByteView(theirs.data(), theirs.size()), ByteView(mine.data(), mine.size()));
    if (!records.ok()) return Status(Code::kInternal, "TLS with " + peer_ + ": " + records.status().message());
    records_ = std::move(*records);
    in_ = RawBuffer(kInBytes);
    out_ = RawBuffer(kOutBytes + RecordLayer::kMaxSealed);
    return Status::Ok();
  }

  // The stream is dead from here: a record that fails authentication, a broken socket, a
  // write that did not finish.
  Status Broke(Status st) {
    broken_ = st.code() == Code::kCorrupt ? Status(Code::kUnavailable, "connection to " + peer_ + ": " + st.message()) : st;
    return broken_;
  }

  // A read that ends the stream: the bytes already opened into the caller's buffer are
  // delivered first, the failure on the next read.
  Result<size_t> Fail(Status st, size_t filled) {
    Status broken = Broke(std::move(st));
    if (filled > 0) return filled;
    return broken;
  }

  // Reads what the socket holds after the bytes buffered, polling then sleeping.
  Status Receive(Deadline deadline) {
    if (in_begin_ == in_end_) {
      in_begin_ = in_end_ = 0;
    } else if (in_.size() - in_begin_ < RecordLayer::kMaxRecord) {  // room for a whole record
      std::memmove(in_.data(), in_.data() + in_begin_, in_end_ - in_begin_);
      in_end_ -= in_begin_;
      in_begin_ = 0;
    }
    ssize_t got = -1;
    int err = 0;
    auto attempt = [&] {
      got = ::recv(fd_, in_.data() + in_end_, in_.size() - in_end_, 0);
      err = got < 0 ? errno : 0;
      return got >= 0 || (err != EAGAIN && err != EINTR);
    };
    for (;;) {
      if (attempt() || (!deadline.is_now() && spin_.Spin(deadline, attempt))) {
        if (got > 0) {
          in_end_ += static_cast<size_t>(got);
          return Status::Ok();
        }
        if (got == 0) return Broke(Status(Code::kUnavailable, "the peer at " + peer_ + " closed the connection"));
        return Broke(Status(Code::kUnavailable, "connection to " + peer_ + ": " + std::strerror(err)));
      }
      if (deadline.is_now() || !WaitFd(fd_, POLLIN, deadline)) {
        return Status(Code::kTimeout, "nothing from " + peer_ + " before the deadline");
      }
      spin_.Woke();
    }
  }

  // Seals the pieces into records (a KeyUpdate first when one is due) and sends them.
  Status Seal(std::span<const ByteView> pieces, Deadline deadline) {
    size_t used = 0;
    // A large write after small ones sends its first records early, so that the peer opens them
    // while later ones are sealed; the batches then double up to kOutBytes and stay there
    // while large writes follow each other (a bulk transfer).
    size_t total = 0;
    for (ByteView p : pieces) total += p.size();
    if (total < kFirstBatch) batch_ = kFirstBatch;
    auto room = [&]() -> Status {
      if (used <= batch_) return Status::Ok();
      Status st = Send(used, deadline);
      used = 0;
      batch_ = std::min(2 * batch_, kOutBytes);
      return st;
    };
    auto rekey = [&]() -> Status {
      if (!records_->update_due()) return Status::Ok();
      WEFT_RETURN_IF_ERROR(room());
      used += records_->SealKeyUpdate(false, out_.data() + used);
      return Status::Ok();
    };
    WEFT_RETURN_IF_ERROR(rekey());
    ByteView group[16];
    size_t count = 0, bytes = 0;
    auto seal = [&]() -> Status {
      WEFT_RETURN_IF_ERROR(room());
      used += records_->Seal(internal::kApplicationData, std::span<const ByteView>(group, count), out_.data() + used);
      count = bytes = 0;
      return rekey();
    };
    for (ByteView p : pieces) {
      while (!p.empty()) {
        const size_t take = std::min(p.size(), RecordLayer::kMaxPlain - bytes);
        group[count++] = p.first(take);
        bytes += take;
        p = p.subspan(take);
        if (bytes == RecordLayer::kMaxPlain || count == std::size(group)) WEFT_RETURN_IF_ERROR(seal());
      }
    }
    if (count > 0) WEFT_RETURN_IF_ERROR(seal());
    return Send(used, deadline);
  }

  // Sends out_'s first n bytes.
  Status Send(size_t n, Deadline deadline) {
    size_t off = 0;
    while (off < n) {
      const ssize_t put = ::send(fd_, out_.data() + off, n - off, MSG_NOSIGNAL);
      if (put >= 0) {
        off += static_cast<size_t>(put);
        continue;
      }
      if (errno == EINTR) continue;
      if (errno != EAGAIN) return Broke(Status(Code::kUnavailable, "connection to " + peer_ + ": " + std::strerror(errno)));
      if (!WaitFd(fd_, POLLOUT, deadline)) {
        return Broke(Status(Code::kTimeout, "sending to " + peer_ + ": the deadline passed"));
      }
    }
    return Status::Ok();
  }

  int fd_;
  std::string peer_;
  std::string identity_;
  std::unique_ptr<RecordLayer> records_;
  // Memory never zero-filled: a connection of small calls touches (is backed by) a page or two.
  struct RawBuffer {
    RawBuffer() = default;
    explicit RawBuffer(size_t n) : bytes(new uint8_t[n]), n(n) {}
    uint8_t* data() { return bytes.get(); }
    size_t size() const { return n; }
    std::unique_ptr<uint8_t[]> bytes;
    size_t n = 0;
  };
  RawBuffer in_;  // bytes from the socket: in_[in_begin_, in_end_) not yet opened
  size_t in_begin_ = 0, in_end_ = 0;
  const uint8_t* plain_ = nullptr;  // an opened record's content not yet read (inside in_)
  size_t plain_size_ = 0;
  RawBuffer out_;  // sealed records not yet sent
  size_t batch_ = kFirstBatch;  // sealed bytes that make a send
  Status broken_;
  ReadSpin spin_;
};

}  // namespace

// OpenSSL's verify callback: a peer is accepted if its leaf key is pinned, or if the chain
// verified against the configured CA.
int TlsVerify(int preverify_ok, void* store_ctx) {
  auto* store = static_cast<X509_STORE_CTX*>(store_ctx);
  auto* ssl = static_cast<SSL*>(X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx()));
  auto* self = static_cast<TlsContext*>(SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), g_ctx_index));
  if (self == nullptr) return 0;
  if (preverify_ok == 1 && self->has_ca_) return 1;
  // Pinned: the leaf's key is one of the trusted ids (the chain above it does not matter).
  STACK_OF(X509)* chain = X509_STORE_CTX_get0_untrusted(store);
  X509* leaf = chain != nullptr && sk_X509_num(chain) > 0 ? sk_X509_value(chain, 0) : X509_STORE_CTX_get0_cert(store);
  const std::string id = Identity(leaf);
  if (std::find(self->trusted_.begin(), self->trusted_.end(), id) != self->trusted_.end()) {
    X509_STORE_CTX_set_error(store, X509_V_OK);
    return 1;
  }
  return 0;
}

namespace {
int VerifyThunk(int ok, X509_STORE_CTX* store) { return TlsVerify(ok, store); }
}  // namespace

TlsContext::~TlsContext() { SSL_CTX_free(Ctx(ctx_)); }

Result<std::string> SelfSignedCertificate(const std::string& key_file) {
  auto key = KeyPair::Load(key_file);
  if (!key.ok()) return key.status();
  X509* x = SelfSigned(static_cast<EVP_PKEY*>(key->native()));
  if (x == nullptr) return Status(Code::kInternal, "making a certificate: " + SslError());
  BIO* b = BIO_new(BIO_s_mem());
  const bool ok = b != nullptr && PEM_write_bio_X509(b, x) == 1;
  X509_free(x);
  std::string pem;
  if (ok) {
    char* p = nullptr;
    const long n = BIO_get_mem_data(b, &p);
    pem.assign(p, static_cast<size_t>(n));
  }
  BIO_free(b);
  if (!ok) return Status(Code::kInternal, "writing a certificate: " + SslError());
  return pem;
}

Result<std::unique_ptr<TlsContext>> TlsContext::Create(const TlsConfig& c, bool server) {
  if (c.key_file.empty()) {
    return InvalidArgument("tcp:// with TLS needs this side's host key (make one with `weft keygen --out FILE`), "
                           "or plaintext said explicitly");
  }
  if (c.trusted_keys.empty() && c.ca_file.empty()) {
    return InvalidArgument("tcp:// with TLS needs the peers to trust: their key ids (trusted_keys) or a CA (ca_file)");
  }
  std::unique_ptr<TlsContext> t(new TlsContext());
  for (const std::string& k : c.trusted_keys) {
    auto parsed = ParseKeyId(k);
    if (!parsed.ok()) return parsed.status();
    t->trusted_.push_back(KeyId(*parsed));  // canonical (lower-case) form
  }
  auto key = KeyPair::Load(c.key_file);
  if (!key.ok()) return key.status();
  t->identity_ = key->id();
  SSL_CTX* ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
  if (ctx == nullptr) return Status(Code::kInternal, "SSL_CTX_new: " + SslError());
  t->ctx_ = ctx;
  SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
  // AES-128-GCM first: the fastest AEAD with AES-NI; the others for peers that prefer them.
  SSL_CTX_set_ciphersuites(ctx, "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256");
  SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE);
  // No read-ahead: the handshake must leave every byte after it in the socket, for the record
  // layer (many records per system call are its reads' business).
  SSL_CTX_set_keylog_callback(ctx, KeylogThunk);  // the traffic secrets, for the record layer
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  SSL_CTX_set_num_tickets(ctx, 0);
  auto* pkey = static_cast<EVP_PKEY*>(key->native());
  if (!c.cert_file.empty()) {
    if (SSL_CTX_use_certificate_chain_file(ctx, c.cert_file.c_str()) != 1) {
      return Status(Code::kCorrupt, "certificate " + c.cert_file + ": " + SslError());
    }
  } else {
    X509* x = SelfSigned(pkey);
    if (x == nullptr) return Status(Code::kInternal, "making a certificate: " + SslError());
    const int ok = SSL_CTX_use_certificate(ctx, x);
    X509_free(x);
    if (ok != 1) return Status(Code::kInternal, "SSL_CTX_use_certificate: " + SslError());
  }
  if (SSL_CTX_use_PrivateKey(ctx, pkey) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
    return InvalidArgument("the certificate does not match the key " + c.key_file + ": " + SslError());
  }
  if (!c.ca_file.empty()) {
    if (SSL_CTX_load_verify_locations(ctx, c.ca_file.c_str(), nullptr) != 1) {
      return Status(Code::kCorrupt, "CA file " + c.ca_file + ": " + SslError());
    }
    t->has_ca_ = true;
  }
  static const int index = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  g_ctx_index = index;
  SSL_CTX_set_ex_data(ctx, g_ctx_index, t.get());
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, VerifyThunk);
  return t;
}

Result<std::unique_ptr<Stream>> TlsContext::Handshake(int fd, Deadline deadline, bool server) {
  SSL* ssl = SSL_new(Ctx(ctx_));
  if (ssl == nullptr) {
    ::close(fd);
    return Status(Code::kResourceExhausted, "SSL_new: " + SslError());
  }
  const int flags = ::fcntl(fd, F_GETFL);
  ::fcntl(fd, F_SETFL, flags | O_NONBLOCK);
  // OpenSSL speaks the handshake straight on the socket; the stream keeps the socket after it.
  BIO* sock = BIO_new_socket(fd, BIO_NOCLOSE);
  if (sock == nullptr) {
    SSL_free(ssl);
    ::close(fd);
    return Status(Code::kResourceExhausted, "BIO_new: " + SslError());
  }
  SSL_set_bio(ssl, sock, sock);  // the same BIO both ways: the SSL takes its one reference
  auto s = std::make_unique<TlsStream>(fd);  // owns the socket from here
  WEFT_RETURN_IF_ERROR(s->Handshake(ssl, server, deadline));
  return std::unique_ptr<Stream>(std::move(s));
}

void internal::SetRekeyRecords(Stream& tls_stream, uint64_t n) { dynamic_cast<TlsStream&>(tls_stream).set_rekey_records(n); }

Result<std::unique_ptr<Stream>> TlsContext::Accept(int fd, Deadline deadline) { return Handshake(fd, deadline, true); }
Result<std::unique_ptr<Stream>> TlsContext::Connect(int fd, Deadline deadline) { return Handshake(fd, deadline, false); }

}  // namespace weft::net
