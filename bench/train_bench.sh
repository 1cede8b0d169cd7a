#!/usr/bin/env bash
# Benchmark of `matbert-worker train` against the Python reference of the same model and
# step (bench/reference/train_torch.py on Debian's python3-torch: same LibTorch, threads
# and batch), side by side in one run; plus our step-time breakdown from metrics.jsonl.
#
# Usage: bench/train_bench.sh [SPEC] [STEPS]   (default configs/bert_matcomp_cpu.toml, 200)
# Env:   WORKER (default build/worker/matbert-worker), THREADS (default 2)
set -euo pipefail
cd "$(dirname "$0")/.."
spec=${1:-configs/bert_matcomp_cpu.toml}
steps=${2:-200}
threads=${THREADS:-2}
worker=${WORKER:-build/worker/matbert-worker}
run=$(mktemp -d /tmp/matbert-train-bench.XXXXXX)
trap 'rm -rf "$run"' EXIT

# Ours: the second half of the run is the measured window (the first half warms up).
"$worker" train --config "$spec" --run-dir "$run" --quiet --training.steps "$steps" \
  --training.log_every $((steps / 2)) --training.eval_every 0 --training.threads "$threads" \
  --checkpoint.every 0 2>/dev/null
ref=$(/usr/bin/python3 bench/reference/train_torch.py --spec "$spec" --steps $((steps / 2)) \
  --threads "$threads")

/usr/bin/python3 - "$run/metrics.jsonl" "$ref" "$steps" "$threads" <<'PY'
import json, sys
records = [json.loads(l) for l in open(sys.argv[1])]
ref = json.loads(sys.argv[2])
ours = [r for r in records if r["kind"] == "train"][-1]["tokens_per_second"]
summary = [r for r in records if r["kind"] == "summary"][-1]["seconds_per_step"]
step = summary["data_wait"] + summary["forward"] + summary["backward"] + summary["optimizer"]
print(f"| run ({sys.argv[3]} steps, {sys.argv[4]} threads) | tokens/s | ratio |")
print("| --- | --- | --- |")
print(f"| Python reference (python3-torch, same model and step) | {ref['tokens_per_second']:.0f} | 1.00 |")
print(f"| matbert-worker train | {ours:.0f} | {ours / ref['tokens_per_second']:.2f} x reference |")
print()
print("| our step, averaged | ms | share |")
print("| --- | --- | --- |")
for k in ("data_wait", "forward", "backward", "optimizer"):
    print(f"| {k} | {summary[k] * 1e3:.2f} | {summary[k] / step * 100:.1f}% |")
print(f"| data_produce (background thread, overlapped) | {summary['data_produce'] * 1e3:.2f} | "
      f"{summary['data_produce'] / step * 100:.1f}% of step time |")
PY
