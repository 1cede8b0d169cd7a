#!/usr/bin/env bash
# First contact with matbert: installs dependencies, builds, generates a small matrix
# dataset and validates it, then trains the CPU-sized model for a few hundred steps,
# printing loss and the masked RMSE against its baselines. (Once the coordinator lands,
# this starts matbertd and submits the job instead.) Idempotent: outputs are replaced.
# Env: QUICKSTART_SAMPLES (10000), QUICKSTART_STEPS (300).
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
echo
steps=${QUICKSTART_STEPS:-300}
run=runs/quickstart
rm -rf "$run"
build/worker/matbert-worker train --config configs/bert_matcomp_cpu.toml --run-dir "$run" \
  --training.steps "$steps" --training.warmup_steps $((steps / 10)) \
  --training.eval_every $((steps / 3)) --checkpoint.every 0
echo
echo "Run directory: $run (config.toml, metrics.jsonl, checkpoints/). The checkpoint's"
echo "model.safetensors uses HuggingFace BERT parameter names; see docs/training.md."
