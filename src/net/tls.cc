// TLS 1.3 streams through OpenSSL: contexts with this host's key and what it trusts, the
// handshake on a non-blocking socket within a deadline, and the Stream over SSL.
#include "weft/net/tls.h"

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

class TlsStream final : public Stream {
 public:
  TlsStream(int fd, SSL* ssl) : fd_(fd), ssl_(ssl), peer_(PeerAddress(fd)) {}
  ~TlsStream() override {
    SSL_free(ssl_);
    ::close(fd_);
  }

  // The handshake, within the deadline.
  Status Handshake(bool server, Deadline deadline) {
    for (;;) {
      ERR_clear_error();
      const int rc = server ? SSL_accept(ssl_) : SSL_connect(ssl_);
      WEFT_RETURN_IF_ERROR(Flush(deadline));
      if (rc == 1) break;
      const int err = SSL_get_error(ssl_, rc);
      if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
        if (!WaitFd(fd_, err == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, deadline)) {
          return Status(Code::kTimeout, "TLS handshake with " + peer_ + ": no answer before the deadline");
        }
        continue;
      }
      return Failure("TLS handshake with " + peer_, err);
    }
    identity_ = Identity(SSL_get0_peer_certificate(ssl_));
    return Status::Ok();
  }

  Result<size_t> ReadSome(void* p, size_t n, Deadline deadline) override {
    size_t got = 0;
    int rc = 0, err = 0;
    auto attempt = [&] {
      ERR_clear_error();
      rc = SSL_read_ex(ssl_, p, n, &got);
      err = rc == 1 ? SSL_ERROR_NONE : SSL_get_error(ssl_, rc);
      return err != SSL_ERROR_WANT_READ;
    };
    for (;;) {
      const bool done = attempt() || (!deadline.is_now() && spin_.Spin(deadline, attempt));
      if (BIO_wpending(SSL_get_wbio(ssl_)) > 0) WEFT_RETURN_IF_ERROR(Flush(deadline));  // a key update's answer
      if (done) {
        if (rc == 1) return got;
        if (err != SSL_ERROR_WANT_WRITE) return Failure("connection to " + peer_, err);
      }
      if (deadline.is_now() || !WaitFd(fd_, err == SSL_ERROR_WANT_WRITE ? POLLOUT : POLLIN, deadline)) {
        return Status(Code::kTimeout, "nothing from " + peer_ + " before the deadline");
      }
      spin_.Woke();
    }
  }

  Status Write(std::span<const ByteView> pieces, Deadline deadline) override {
    size_t total = 0;
    for (ByteView p : pieces) total += p.size();
    if (pieces.size() > 1 && total <= kCoalesce) {  // small pieces: one TLS record
      scratch_.clear();
      for (ByteView p : pieces) scratch_.insert(scratch_.end(), p.begin(), p.end());
      WEFT_RETURN_IF_ERROR(WriteOne(ByteView(scratch_.data(), scratch_.size()), deadline));
      return Flush(deadline);
    }
    for (ByteView p : pieces) WEFT_RETURN_IF_ERROR(WriteOne(p, deadline));
    return Flush(deadline);
  }

  void Shutdown() override { ::shutdown(fd_, SHUT_RDWR); }
  const std::string& peer_identity() const override { return identity_; }
  bool encrypted() const override { return true; }
  int fd() const override { return fd_; }
  const std::string& peer_address() const override { return peer_; }

 private:
  static constexpr size_t kCoalesce = 16 << 10;

  Status WriteOne(ByteView p, Deadline deadline) {
    size_t off = 0;
    while (off < p.size()) {
      ERR_clear_error();
      size_t put = 0;
      const int rc = SSL_write_ex(ssl_, p.data() + off, p.size() - off, &put);
      if (rc == 1) {
        off += put;
        continue;
      }
      const int err = SSL_get_error(ssl_, rc);
      if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
        if (!WaitFd(fd_, err == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, deadline)) {
          return Status(Code::kTimeout, "sending to " + peer_ + ": the deadline passed");
        }
        continue;
      }
      return Failure("connection to " + peer_, err);
    }
    return Status::Ok();
  }

  // Sends what the write buffer holds.
  Status Flush(Deadline deadline) {
    BIO* w = SSL_get_wbio(ssl_);
    while (BIO_wpending(w) > 0) {
      ERR_clear_error();
      if (BIO_flush(w) == 1) break;
      if (!BIO_should_retry(w)) return Status(Code::kUnavailable, "connection to " + peer_ + ": " + SslError());
      if (!WaitFd(fd_, POLLOUT, deadline)) return Status(Code::kTimeout, "sending to " + peer_ + ": the deadline passed");
    }
    return Status::Ok();
  }

  Status Failure(const std::string& what, int err) {
    if (err == SSL_ERROR_ZERO_RETURN) return Status(Code::kUnavailable, what + ": the peer closed the connection");
    if (IdentityRefused()) {
      long verify = SSL_get_verify_result(ssl_);
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

  int fd_;
  SSL* ssl_;
  std::string peer_;
  std::string identity_;
  std::vector<uint8_t> scratch_;
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
  // Read many records per system call, not a record header and then its body.
  SSL_CTX_set_read_ahead(ctx, 1);
  SSL_CTX_set_default_read_buffer_len(ctx, 256 << 10);
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
  // Reads straight from the socket; writes through a buffer flushed once per Write, so that a
  // large value goes out in large sends, not a system call (and a TCP push) per 16 KiB record.
  // Records go straight to the socket: a frame's small pieces are one record already (Write
  // coalesces them), and a buffering BIO in between cost a small call about 0.5 us.
  BIO* sock = BIO_new_socket(fd, BIO_NOCLOSE);
  if (sock == nullptr) {
    SSL_free(ssl);
    ::close(fd);
    return Status(Code::kResourceExhausted, "BIO_new: " + SslError());
  }
  SSL_set_bio(ssl, sock, sock);  // the same BIO both ways: the SSL takes its one reference
  auto s = std::make_unique<TlsStream>(fd, ssl);  // owns both from here
  WEFT_RETURN_IF_ERROR(s->Handshake(server, deadline));
  return std::unique_ptr<Stream>(std::move(s));
}

Result<std::unique_ptr<Stream>> TlsContext::Accept(int fd, Deadline deadline) { return Handshake(fd, deadline, true); }
Result<std::unique_ptr<Stream>> TlsContext::Connect(int fd, Deadline deadline) { return Handshake(fd, deadline, false); }

}  // namespace weft::net
