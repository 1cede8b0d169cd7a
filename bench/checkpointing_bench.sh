#!/usr/bin/env bash
# Gradient checkpointing (training.gradient_checkpointing): the peak memory (max RSS) and the
# step time of `matbert-worker train` with and without it, same spec and batch, side by side.
# The activations a layer keeps for backward grow with batch × sequence × hidden, so the
# saving shows with a deep model and a large batch: the defaults below.
#
# Usage: bench/checkpointing_bench.sh [SPEC] [BATCH] [STEPS]
#        (default configs/bert_matcomp_cpu.toml, 256, 6)
# Env:   WORKER (default build/worker/matbert-worker), THREADS (default 2)
set -euo pipefail
cd "$(dirname "$0")/.."
spec=${1:-configs/bert_matcomp_cpu.toml}
batch=${2:-256}
steps=${3:-6}
threads=${THREADS:-2}
worker=${WORKER:-build/worker/matbert-worker}
run=$(mktemp -d /tmp/matbert-ckpt-bench.XXXXXX)
trap 'rm -rf "$run"' EXIT

measure() {  # $1 = true|false → "max_rss_kb seconds_per_step"
  local start end
  start=$(date +%s.%N)
  /usr/bin/time -f "%M" -o "$run/rss_$1" "$worker" train --config "$spec" --run-dir "$run/$1" \
    --quiet --training.steps "$steps" --training.batch_size "$batch" --training.eval_every 0 \
    --training.threads "$threads" --checkpoint.every 0 \
    --training.gradient_checkpointing "$1" 2>/dev/null
  end=$(date +%s.%N)
  echo "$(cat "$run/rss_$1") $(echo "($end - $start) / $steps" | bc -l)"
}

read -r plain_kb plain_s <<<"$(measure false)"
read -r recomputed_kb recomputed_s <<<"$(measure true)"
printf 'spec %s, batch %d, %d steps, %d threads\n' "$spec" "$batch" "$steps" "$threads"
printf '%-28s %10s %12s\n' "" "max RSS" "s/step"
printf '%-28s %7.0f MB %12.3f\n' "plain" "$(echo "$plain_kb / 1024" | bc -l)" "$plain_s"
printf '%-28s %7.0f MB %12.3f\n' "gradient_checkpointing" "$(echo "$recomputed_kb / 1024" | bc -l)" \
  "$recomputed_s"
printf 'memory ratio %.2f, time ratio %.2f (checkpointing / plain)\n' \
  "$(echo "$recomputed_kb / $plain_kb" | bc -l)" "$(echo "$recomputed_s / $plain_s" | bc -l)"
