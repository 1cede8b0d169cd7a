#!/usr/bin/env bash
# Configures and builds matbert with CMake + Ninja (+ ccache) into build/.
# Usage: scripts/build.sh [-DVAR=VALUE ...] [--target T ...]
#   -D...      configure options (they stick in build/CMakeCache.txt), e.g. -DMATBERT_TORCH2=ON
#              to also build the trainer against PyPI's LibTorch 2.x (scripts/test.sh does)
#   --target   build only these targets (and what they need); default: everything
# Configuring runs when build/ is new or options are given; otherwise Ninja re-runs it when a
# CMakeLists.txt changed.
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${MATBERT_BUILD_DIR:-build}
configure=()
targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    -D*) configure+=("$1") ;;
    --target)
      [ $# -ge 2 ] || { echo "build.sh: --target needs a target name" >&2; exit 2; }
      targets+=(--target "$2")
      shift ;;
    *) echo "build.sh: unknown argument '$1' (allowed: -DVAR=VALUE, --target T)" >&2; exit 2 ;;
  esac
  shift
done
if [ ! -f "$build_dir/build.ninja" ] || [ ${#configure[@]} -gt 0 ]; then
  cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release "${configure[@]}"
fi
cmake --build "$build_dir" -j "$(nproc)" "${targets[@]}"
