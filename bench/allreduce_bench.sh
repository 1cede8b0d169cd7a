#!/usr/bin/env bash
# Exposed (not overlapped) gradient all-reduce time as a share of the step, for 2 CPU ranks
# of SPEC launched by scripts/train_bert.sh, for several bucket sizes. "Exposed" is the time
# a rank waits for its buckets after its own backward has finished (metrics.jsonl summary,
# seconds_per_step.allreduce_exposed), so communication hidden behind backward is not counted.
#
# Usage: bench/allreduce_bench.sh [SPEC] [STEPS]   (default configs/bert_matcomp_cpu.toml, 60)
# Env:   BUCKETS (default "0.25 1 4 32"), NGPU (2)
set -euo pipefail
cd "$(dirname "$0")/.."
spec=${1:-configs/bert_matcomp_cpu.toml}
steps=${2:-60}
buckets=${BUCKETS:-0.25 1 4 32}
tmp=$(mktemp -d /tmp/matbert-allreduce-bench.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

echo "| bucket_mb | step ms | exposed all-reduce ms | exposed share | tokens/s (2 ranks) |"
echo "| --- | --- | --- | --- | --- |"
for mb in $buckets; do
  NGPU=${NGPU:-2} RUN_DIR="$tmp/$mb" CONFIG_FILE="$spec" scripts/train_bert.sh --quiet \
    --training.steps "$steps" --training.warmup_steps 10 --training.log_every "$steps" \
    --training.eval_every 0 --checkpoint.every 0 --training.bucket_mb "$mb" 2>/dev/null
  /usr/bin/python3 - "$tmp/$mb/metrics.jsonl" "$mb" <<'PY'
import json, sys
records = [json.loads(l) for l in open(sys.argv[1])]
s = [r for r in records if r["kind"] == "summary"][-1]["seconds_per_step"]
tps = [r for r in records if r["kind"] == "train"][-1]["tokens_per_second"]
step = s["data_wait"] + s["forward"] + s["backward"] + s["allreduce_exposed"] + s["optimizer"]
print(f"| {sys.argv[2]} | {step * 1e3:.1f} | {s['allreduce_exposed'] * 1e3:.2f} | "
      f"{s['allreduce_exposed'] / step * 100:.1f}% | {tps:.0f} |")
PY
done
