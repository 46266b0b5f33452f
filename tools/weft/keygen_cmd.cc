// `weft keygen`: host keys for connections across machines (weft/net/keys.h).
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>
#include <string>

#include "commands.h"
#include "weft/net/keys.h"
#include "weft/net/tls.h"

namespace weft::cli {

int Keygen(const std::string& out, const std::string& show, const std::string& cert) {
  if (!cert.empty()) {
    auto pem = net::SelfSignedCertificate(cert);
    if (!pem.ok()) {
      std::fprintf(stderr, "weft keygen: %s\n", pem.status().ToString().c_str());
      return 1;
    }
    std::fwrite(pem->data(), 1, pem->size(), stdout);
    return 0;
  }
  if (!show.empty()) {
    auto k = net::KeyPair::Load(show);
    if (!k.ok()) {
      std::fprintf(stderr, "weft keygen: %s\n", k.status().ToString().c_str());
      return 1;
    }
    std::printf("%s\n", k->id().c_str());
    return 0;
  }
  auto k = net::KeyPair::Generate();
  Status s = k.ok() ? k->Save(out) : k.status();
  if (s.ok()) {
    // The id, for peers to pin: public, so an ordinary file.
    const std::string pub = out + ".pub";
    FILE* f = std::fopen(pub.c_str(), "wx");
    if (f == nullptr) {
      s = Status(Code::kAlreadyExists, pub + " exists");
    } else {
      std::fprintf(f, "%s\n", k->id().c_str());
      std::fclose(f);
    }
  }
  if (!s.ok()) {
    std::fprintf(stderr, "weft keygen: %s\n", s.ToString().c_str());
    return 1;
  }
  std::printf("%s\n", k->id().c_str());
  return 0;
}

int Contract(const std::vector<std::string>& args) {
  const char* py = std::getenv("WEFT_PYTHON");
  std::string python = py != nullptr && py[0] != '\0' ? py : "/usr/bin/python3";
  std::vector<std::string> argv = {python, "-m", "weft.contract_tool"};
  argv.insert(argv.end(), args.begin(), args.end());
  std::vector<char*> raw;
  for (std::string& a : argv) raw.push_back(a.data());
  raw.push_back(nullptr);
  ::execv(raw[0], raw.data());
  std::fprintf(stderr, "weft contract: cannot run %s: %s\n", python.c_str(), std::strerror(errno));
  return 1;
}

}  // namespace weft::cli
