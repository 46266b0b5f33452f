// `weft keygen`: host keys for connections across machines (weft/net/keys.h).
#include <cstdio>
#include <string>

#include "commands.h"
#include "weft/net/keys.h"

namespace weft::cli {

int Keygen(const std::string& out, const std::string& show) {
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

}  // namespace weft::cli
