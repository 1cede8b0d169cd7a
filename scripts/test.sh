#!/usr/bin/env bash
# Installs dependencies, builds, and runs every test through ctest. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-deps.sh --python
# TORCH2: the trainer again against PyPI's LibTorch 2.x; SANITIZE: the unit tests again under
# ASan + UBSan (clang), and the fuzz targets, into build/sanitize/.
scripts/build.sh -DMATBERT_TORCH2=ON -DMATBERT_SANITIZE=ON
cd "${MATBERT_BUILD_DIR:-build}"
# --no-tests=error: a run that executes no test is a failure.
ctest --output-on-failure --no-tests=error -j "$(nproc)" "$@"
