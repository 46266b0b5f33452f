// Host keys for tests across hosts: a new Ed25519 key (weft/net/keys.h) saved as `name` in a
// test's directory (mode 0600); its file and id.
#pragma once

#include <gtest/gtest.h>

#include <string>

#include "support/temp_dir.h"
#include "weft/net/keys.h"

namespace weft::testing {

inline void MakeHostKey(const TempDir& dir, const std::string& name, std::string* file, std::string* id) {
  auto k = net::KeyPair::Generate().value();
  *file = dir / name;
  EXPECT_TRUE(k.Save(*file).ok());
  *id = k.id();
}

}  // namespace weft::testing
