// Host keys (weft/net/keys.h): made, saved with mode 0600 and never over a file, loaded back
// with the same id; a key file others may read, or another user's, is refused; anything but an
// Ed25519 private key is Corrupt; ids parse strictly; signatures check; `weft keygen`.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "support/temp_dir.h"
#include "weft/net/keys.h"

namespace weft::net {
namespace {

using TempDir = weft::testing::TempDir;

void Write(const std::string& path, const std::string& text, mode_t mode) {
  FILE* f = std::fopen(path.c_str(), "w");
  ASSERT_NE(f, nullptr);
  std::fputs(text.c_str(), f);
  std::fclose(f);
  ASSERT_EQ(::chmod(path.c_str(), mode), 0);
}

TEST(KeysTest, AKeySavedIsLoadedBackWithItsIdAndModeAndNeverOverwritten) {
  TempDir d;
  auto k = KeyPair::Generate();
  ASSERT_TRUE(k.ok()) << k.status().ToString();
  const std::string path = d.path + "/host.key";
  ::umask(022);
  ASSERT_TRUE(k->Save(path).ok());
  struct stat st;
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto back = KeyPair::Load(path);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->id(), k->id());
  EXPECT_EQ(back->id().substr(0, 8), "ed25519:");
  auto other = KeyPair::Generate();
  ASSERT_TRUE(other.ok());
  EXPECT_NE(other->id(), k->id());
  EXPECT_EQ(other->Save(path).code(), Code::kAlreadyExists);  // the first key is still there
  auto still = KeyPair::Load(path);
  ASSERT_TRUE(still.ok());
  EXPECT_EQ(still->id(), k->id());
}

TEST(KeysTest, AKeyFileOthersCanReadOrAnotherUsersIsRefused) {
  TempDir d;
  auto k = KeyPair::Generate();
  ASSERT_TRUE(k.ok());
  const std::string path = d.path + "/host.key";
  ASSERT_TRUE(k->Save(path).ok());
  ASSERT_EQ(::chmod(path.c_str(), 0644), 0);
  auto loose = KeyPair::Load(path);
  EXPECT_EQ(loose.status().code(), Code::kPermissionDenied);
  EXPECT_NE(loose.status().message().find("0644"), std::string::npos) << loose.status().ToString();
  ASSERT_EQ(::chmod(path.c_str(), 0600), 0);
  EXPECT_TRUE(KeyPair::Load(path).ok());  // control: the same file, private again
  if (::geteuid() == 0) {
    ASSERT_EQ(::chown(path.c_str(), 65534, 65534), 0);  // nobody's
    EXPECT_EQ(KeyPair::Load(path).status().code(), Code::kPermissionDenied);
  }
  const std::string link = d.path + "/link.key";
  ASSERT_EQ(::symlink(path.c_str(), link.c_str()), 0);
  EXPECT_FALSE(KeyPair::Load(link).ok());  // a link is not followed
}

TEST(KeysTest, AnythingButAnEd25519PrivateKeyIsCorrupt) {
  TempDir d;
  EXPECT_EQ(KeyPair::FromPem(AsBytes(std::string("not a key"))).status().code(), Code::kCorrupt);
  EXPECT_EQ(KeyPair::FromPem(AsBytes(std::string())).status().code(), Code::kCorrupt);
  // An RSA key made by openssl: a private key, not an Ed25519 one.
  const std::string rsa = d.path + "/rsa.key";
  ASSERT_EQ(std::system(("openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:1024 -out " + rsa + " 2>/dev/null").c_str()), 0);
  ASSERT_EQ(::chmod(rsa.c_str(), 0600), 0);
  auto r = KeyPair::Load(rsa);
  EXPECT_EQ(r.status().code(), Code::kCorrupt);
  EXPECT_NE(r.status().message().find("not an Ed25519"), std::string::npos) << r.status().ToString();
  // An encrypted key is refused, never prompted for.
  const std::string enc = d.path + "/enc.key";
  ASSERT_EQ(std::system(("openssl genpkey -algorithm ED25519 -aes256 -pass pass:x -out " + enc + " 2>/dev/null").c_str()), 0);
  ASSERT_EQ(::chmod(enc.c_str(), 0600), 0);
  EXPECT_EQ(KeyPair::Load(enc).status().code(), Code::kCorrupt);
  // One openssl made itself loads, with the id openssl gives for its public key.
  const std::string ed = d.path + "/ed.key";
  ASSERT_EQ(std::system(("openssl genpkey -algorithm ED25519 -out " + ed + " 2>/dev/null").c_str()), 0);
  ASSERT_EQ(::chmod(ed.c_str(), 0600), 0);
  EXPECT_TRUE(KeyPair::Load(ed).ok());
  Write(d.path + "/big.key", std::string(100'000, 'A'), 0600);
  EXPECT_EQ(KeyPair::Load(d.path + "/big.key").status().code(), Code::kCorrupt);
}

TEST(KeysTest, IdsParseStrictlyAndSignaturesCheck) {
  auto k = KeyPair::Generate();
  ASSERT_TRUE(k.ok());
  auto pk = ParseKeyId(k->id());
  ASSERT_TRUE(pk.ok());
  EXPECT_EQ(*pk, k->public_key());
  std::string upper = k->id();
  for (size_t i = 8; i < upper.size(); ++i) upper[i] = static_cast<char>(std::toupper(upper[i]));
  EXPECT_TRUE(ParseKeyId(upper).ok());
  for (const std::string& bad : {std::string(""), std::string("ed25519:"), k->id().substr(0, 71), k->id() + "0",
                                 "rsa:" + k->id().substr(8), k->id().substr(0, 70) + "zz"}) {
    EXPECT_EQ(ParseKeyId(bad).status().code(), Code::kInvalidArgument) << bad;
  }
  const std::string msg = "call 17";
  auto sig = k->Sign(AsBytes(msg));
  ASSERT_TRUE(sig.ok());
  EXPECT_TRUE(KeyPair::Verify(k->public_key(), AsBytes(msg), ByteView(sig->data(), sig->size())));
  EXPECT_FALSE(KeyPair::Verify(k->public_key(), AsBytes(std::string("call 18")), ByteView(sig->data(), sig->size())));
  auto other = KeyPair::Generate();
  ASSERT_TRUE(other.ok());
  EXPECT_FALSE(KeyPair::Verify(other->public_key(), AsBytes(msg), ByteView(sig->data(), sig->size())));
}

#ifdef WEFT_CLI
TEST(KeysTest, WeftKeygenMakesAKeyAndShowsItsId) {
  TempDir d;
  const std::string key = d.path + "/host.key";
  FILE* f = ::popen((std::string(WEFT_CLI) + " keygen --out " + key + " 2>&1").c_str(), "r");
  char line[256] = {};
  ASSERT_NE(std::fgets(line, sizeof(line), f), nullptr);
  EXPECT_EQ(::pclose(f), 0);
  const std::string id = std::string(line).substr(0, std::string(line).size() - 1);
  auto loaded = KeyPair::Load(key);
  ASSERT_TRUE(loaded.ok());
  EXPECT_EQ(loaded->id(), id);
  FILE* pub = std::fopen((key + ".pub").c_str(), "r");
  ASSERT_NE(pub, nullptr);
  char pline[256] = {};
  ASSERT_NE(std::fgets(pline, sizeof(pline), pub), nullptr);
  std::fclose(pub);
  EXPECT_EQ(std::string(pline), id + "\n");
  f = ::popen((std::string(WEFT_CLI) + " keygen --show " + key + " 2>&1").c_str(), "r");
  ASSERT_NE(std::fgets(line, sizeof(line), f), nullptr);
  EXPECT_EQ(::pclose(f), 0);
  EXPECT_EQ(std::string(line), id + "\n");
  // Never over an existing key.
  EXPECT_NE(std::system((std::string(WEFT_CLI) + " keygen --out " + key + " > /dev/null 2>&1").c_str()), 0);
}
#endif

}  // namespace
}  // namespace weft::net
