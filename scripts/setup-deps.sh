#!/usr/bin/env bash
# Installs every Debian package matbert builds, tests and benchmarks with; with --python also
# the pinned PyPI packages of requirements.txt into .venv/ (the tests' independent readers,
# and PyPI's torch wheel, whose LibTorch 2.x the second trainer build uses). The quickstart
# needs only the Debian part. Idempotent: a second run installs nothing and takes a second.
# Usage: scripts/setup-deps.sh [--python]
set -euo pipefail
cd "$(dirname "$0")/.."
with_python=0
for arg in "$@"; do
  case "$arg" in
    --python) with_python=1 ;;
    *) echo "setup-deps.sh: unknown argument '$arg' (allowed: --python)" >&2; exit 2 ;;
  esac
done

packages=(
  # toolchain
  build-essential cmake ninja-build ccache pkg-config clang-format git
  # the sanitizer build and the fuzz targets (ASan, UBSan, libFuzzer: fuzz/README.md)
  clang-14 libclang-rt-14-dev
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
  # the Slurm executor's clients, and the real cluster its tests bring up (tests/slurm_cluster.py)
  slurm-client slurmctld slurmd munge iproute2 util-linux
  # the virtual environment of --python
  python3-venv
)

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

[ "$with_python" == 1 ] || exit 0

# PyPI packages (requirements.txt is a lock: the whole closure, installed with --no-deps) in
# .venv/, on Debian's interpreter. A stamp holding the lock's hash makes a second run a no-op;
# a changed lock rebuilds the environment from scratch so nothing stale survives.
venv=.venv
want=$(sha256sum requirements.txt | cut -d' ' -f1)
if [ "$(cat "$venv/.requirements.sha256" 2>/dev/null)" != "$want" ]; then
  echo "setup-deps: creating $venv from requirements.txt (about 2.9 GB from PyPI)"
  start=$SECONDS
  rm -rf "$venv"
  /usr/bin/python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
    -r requirements.txt
  echo "$want" >"$venv/.requirements.sha256"
  echo "setup-deps: $venv ready in $((SECONDS - start)) s ($(du -sh "$venv" | cut -f1))"
fi
