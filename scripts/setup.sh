#!/usr/bin/env bash
# Installs the Debian packages Weft needs to build and test, if any is missing.
set -euo pipefail
pkgs=(cmake ninja-build g++ make clang libclang-rt-14-dev googletest libgtest-dev libgmock-dev
      libbenchmark-dev libzmq3-dev python3-dev python3-pybind11 python3-numpy python3-pytest
      python3-pip python3-rx libcli11-dev procps libsqlite3-dev redis-server libhiredis-dev libsodium-dev
      libgrpc++-dev libprotobuf-dev protobuf-compiler protobuf-compiler-grpc python3-grpcio pkg-config
      libconcurrentqueue-dev nats-server libnats-dev redis-tools openssl libssl-dev iproute2)
# The TypeScript client's packages (npm registry), pinned by clients/typescript/package-lock.json.
if ! [ -d clients/typescript/node_modules/nats ]; then
  command -v npm > /dev/null || { echo "setup: npm is needed for the TypeScript client's tests"; exit 1; }
  (cd clients/typescript && npm ci --no-audit --no-fund --silent)
fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then exit 0; fi
echo "setup: installing ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
