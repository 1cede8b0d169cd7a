#!/usr/bin/env bash
# Installs every Debian package matbert builds, tests and benchmarks with, and the npm
# packages its tests use. Idempotent: a second run installs nothing and takes a second.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  # toolchain
  build-essential cmake ninja-build ccache pkg-config clang-format git
  # libraries (DESIGN.md section 10)
  libtorch-dev libgloo-dev
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libabsl-dev libspdlog-dev libfmt-dev prometheus-cpp-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libtomlplusplus-dev nlohmann-json3-dev libcli11-dev libsqlite3-dev sqlite3 libssl-dev
  flatbuffers-compiler libflatbuffers-dev
  liblapacke-dev libopenblas0-openmp
  # independent implementations the tests compare against
  python3-numpy python3-torch python3-toml python3-grpcio python3-grpc-tools python3-protobuf prometheus
)
# Node.js 20 and npm come with the machine image; Debian's npm package conflicts with it.
if ! command -v npm >/dev/null; then packages+=(nodejs npm); fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -gt 0 ]; then
  echo "setup-deps: installing ${missing[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# LibTorch and NumPy reach BLAS through the libblas.so.3 alternative; the reference BLAS
# is about 8x slower than OpenBLAS, so make sure OpenBLAS is the one selected.
blas_alt=$(update-alternatives --list "libblas.so.3-$(dpkg-architecture -qDEB_HOST_MULTIARCH)" 2>/dev/null |
  grep -m1 openblas || true)
if [ -n "$blas_alt" ]; then
  current=$(readlink -f "/etc/alternatives/libblas.so.3-$(dpkg-architecture -qDEB_HOST_MULTIARCH)" || true)
  if [ "$current" != "$(readlink -f "$blas_alt")" ]; then
    ${sudo:-} update-alternatives --set "libblas.so.3-$(dpkg-architecture -qDEB_HOST_MULTIARCH)" "$blas_alt"
  fi
fi

# npm packages used by the tests as independent readers (pinned in tests/js/package-lock.json).
if [ ! -d tests/js/node_modules/apache-arrow ]; then
  echo "setup-deps: installing npm test packages"
  (cd tests/js && npm ci --no-audit --no-fund --loglevel=error)
fi
