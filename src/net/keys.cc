#include "weft/net/keys.h"

#include <fcntl.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace weft::net {

namespace {

EVP_PKEY* Pkey(void* p) { return static_cast<EVP_PKEY*>(p); }

// The raw public key of an Ed25519 EVP_PKEY; false if it is not one.
bool RawPublic(EVP_PKEY* k, PublicKey* out) {
  if (k == nullptr || EVP_PKEY_id(k) != EVP_PKEY_ED25519) return false;
  size_t len = out->size();
  return EVP_PKEY_get_raw_public_key(k, out->data(), &len) == 1 && len == out->size();
}

int Hex(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

std::string KeyId(const PublicKey& key) {
  static const char* kDigits = "0123456789abcdef";
  std::string out = "ed25519:";
  for (uint8_t b : key) {
    out.push_back(kDigits[b >> 4]);
    out.push_back(kDigits[b & 15]);
  }
  return out;
}

Result<PublicKey> ParseKeyId(std::string_view id) {
  constexpr std::string_view kPrefix = "ed25519:";
  auto bad = [&] {
    return InvalidArgument("'" + std::string(id.substr(0, 80)) + "' is not a key id (ed25519: and 64 hex digits)");
  };
  if (id.size() != kPrefix.size() + 64 || id.substr(0, kPrefix.size()) != kPrefix) return bad();
  PublicKey key;
  for (size_t i = 0; i < key.size(); ++i) {
    const int hi = Hex(id[kPrefix.size() + 2 * i]), lo = Hex(id[kPrefix.size() + 2 * i + 1]);
    if (hi < 0 || lo < 0) return bad();
    key[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  return key;
}

KeyPair::KeyPair() = default;
KeyPair::~KeyPair() { EVP_PKEY_free(Pkey(pkey_)); }
KeyPair::KeyPair(KeyPair&& o) noexcept : pkey_(o.pkey_), public_key_(o.public_key_) { o.pkey_ = nullptr; }
KeyPair& KeyPair::operator=(KeyPair&& o) noexcept {
  if (this != &o) {
    EVP_PKEY_free(Pkey(pkey_));
    pkey_ = o.pkey_;
    public_key_ = o.public_key_;
    o.pkey_ = nullptr;
  }
  return *this;
}

Result<KeyPair> KeyPair::Generate() {
  EVP_PKEY* k = nullptr;
  EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, nullptr);
  const bool ok = ctx != nullptr && EVP_PKEY_keygen_init(ctx) == 1 && EVP_PKEY_keygen(ctx, &k) == 1;
  EVP_PKEY_CTX_free(ctx);
  KeyPair out;
  out.pkey_ = k;
  if (!ok || !RawPublic(k, &out.public_key_)) return Status(Code::kInternal, "Ed25519 key generation failed (OpenSSL)");
  return out;
}

Result<KeyPair> KeyPair::FromPem(ByteView pem) {
  if (pem.size() > (1 << 16)) return Status(Code::kCorrupt, "a key file of " + std::to_string(pem.size()) + " bytes is not a key");
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  if (bio == nullptr) return Status(Code::kInternal, "out of memory");
  // No password callback: an encrypted key is refused rather than prompting.
  EVP_PKEY* k = PEM_read_bio_PrivateKey(bio, nullptr, [](char*, int, int, void*) { return 0; }, nullptr);
  BIO_free(bio);
  KeyPair out;
  out.pkey_ = k;
  if (k == nullptr) return Status(Code::kCorrupt, "not a private key in PEM (or an encrypted one)");
  if (!RawPublic(k, &out.public_key_)) return Status(Code::kCorrupt, "a private key, but not an Ed25519 one");
  return out;
}

Result<KeyPair> KeyPair::Load(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return ErrnoStatus(errno, "open " + path);
  struct stat st;
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return Status(Code::kCorrupt, path + " is not a regular file");
  }
  if (st.st_uid != ::geteuid() || (st.st_mode & 077) != 0) {
    ::close(fd);
    char mode[8];
    std::snprintf(mode, sizeof(mode), "%04o", static_cast<unsigned>(st.st_mode & 07777));
    return Status(Code::kPermissionDenied, path + ": a private key must belong to this user (uid " +
                                               std::to_string(::geteuid()) + ") and be readable by nobody else; it is uid " +
                                               std::to_string(st.st_uid) + ", mode " + mode + " (chmod 600)");
  }
  std::string bytes(static_cast<size_t>(std::min<off_t>(st.st_size, 1 << 16) + 1), '\0');
  const ssize_t n = ::read(fd, bytes.data(), bytes.size());
  ::close(fd);
  if (n < 0) return ErrnoStatus(errno, "read " + path);
  bytes.resize(static_cast<size_t>(n));
  Result<KeyPair> k = FromPem(AsBytes(bytes));
  std::memset(bytes.data(), 0, bytes.size());
  if (!k.ok()) return Status(k.status().code(), path + ": " + k.status().message());
  return k;
}

Status KeyPair::Save(const std::string& path) const {
  if (pkey_ == nullptr) return InvalidArgument("no key to save");
  BIO* bio = BIO_new(BIO_s_mem());
  if (bio == nullptr || PEM_write_bio_PrivateKey(bio, Pkey(pkey_), nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    BIO_free(bio);
    return Status(Code::kInternal, "writing the key as PEM failed (OpenSSL)");
  }
  char* data = nullptr;
  const long len = BIO_get_mem_data(bio, &data);
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) {
    const int err = errno;
    BIO_free(bio);
    if (err == EEXIST) return Status(Code::kAlreadyExists, path + " exists: a key is never overwritten");
    return ErrnoStatus(err, "create " + path);
  }
  ::fchmod(fd, 0600);  // whatever the umask
  bool ok = true;
  for (long done = 0; ok && done < len;) {
    const ssize_t w = ::write(fd, data + done, static_cast<size_t>(len - done));
    if (w < 0 && errno == EINTR) continue;
    ok = w > 0;
    if (ok) done += w;
  }
  ok = ok && ::fsync(fd) == 0;
  const int err = errno;
  ::close(fd);
  BIO_free(bio);
  if (!ok) {
    ::unlink(path.c_str());
    return ErrnoStatus(err, "write " + path);
  }
  return Status::Ok();
}

Result<std::vector<uint8_t>> KeyPair::Sign(ByteView message) const {
  if (pkey_ == nullptr) return InvalidArgument("no key");
  std::vector<uint8_t> sig(64);
  size_t len = sig.size();
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  const bool ok = ctx != nullptr && EVP_DigestSignInit(ctx, nullptr, nullptr, nullptr, Pkey(pkey_)) == 1 &&
                  EVP_DigestSign(ctx, sig.data(), &len, message.data(), message.size()) == 1 && len == 64;
  EVP_MD_CTX_free(ctx);
  if (!ok) return Status(Code::kInternal, "signing failed (OpenSSL)");
  return sig;
}

bool KeyPair::Verify(const PublicKey& key, ByteView message, ByteView signature) {
  if (signature.size() != 64) return false;
  EVP_PKEY* k = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nullptr, key.data(), key.size());
  if (k == nullptr) return false;
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  const bool ok = ctx != nullptr && EVP_DigestVerifyInit(ctx, nullptr, nullptr, nullptr, k) == 1 &&
                  EVP_DigestVerify(ctx, signature.data(), signature.size(), message.data(), message.size()) == 1;
  EVP_MD_CTX_free(ctx);
  EVP_PKEY_free(k);
  return ok;
}

}  // namespace weft::net
