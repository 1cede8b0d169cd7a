#!/usr/bin/env bash
# First contact with matbert: installs dependencies, builds, generates a small matrix
# dataset and prints its summary. (Once the coordinator lands, this starts matbertd and
# trains the CPU-sized job instead.) Idempotent: the dataset is regenerated in place.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-deps.sh
scripts/build.sh
out=data/generated/quickstart_m20_n20_r5
build/worker/matbert-worker generate --m 20 --n 20 --r 5 --n-samples "${QUICKSTART_SAMPLES:-10000}" \
  --output-dir "$out" --overwrite
build/worker/matbert-worker inspect "$out"
echo
echo "Dataset ready in $out (HuggingFace save_to_disk layout; Arrow IPC stream shards)."
