#!/usr/bin/env bash
# Benchmark of `matbert-worker train` against the Python reference of the same model and
# step (bench/reference/train_torch.py on Debian's python3-torch: same LibTorch, threads
# and batch), side by side in one run; plus our step-time breakdown from metrics.jsonl.
#
# The two alternate REPEATS times and the best of each is reported: this VM's neighbours
# move single runs by ±20%.
#
# Usage: bench/train_bench.sh [SPEC] [STEPS]   (default configs/bert_matcomp_cpu.toml, 200)
# Env:   WORKER (default build/worker/matbert-worker), THREADS (default 2), REPEATS (3)
set -euo pipefail
cd "$(dirname "$0")/.."
spec=${1:-configs/bert_matcomp_cpu.toml}
steps=${2:-200}
threads=${THREADS:-2}
repeats=${REPEATS:-3}
worker=${WORKER:-build/worker/matbert-worker}
run=$(mktemp -d /tmp/matbert-train-bench.XXXXXX)
trap 'rm -rf "$run"' EXIT

refs=()
tuned=()
for i in $(seq "$repeats"); do
  # Ours: the second half of each run is the measured window (the first half warms up).
  "$worker" train --config "$spec" --run-dir "$run/$i" --quiet --training.steps "$steps" \
    --training.log_every $((steps / 2)) --training.eval_every 0 --training.threads "$threads" \
    --checkpoint.every 0 2>/dev/null
  refs+=("$(/usr/bin/python3 bench/reference/train_torch.py --spec "$spec" \
    --steps $((steps / 2)) --threads "$threads")")
  # The reference again with glibc tuned the way matbert-worker tunes itself (mallopt).
  tuned+=("$(MALLOC_MMAP_THRESHOLD_=33554432 MALLOC_TRIM_THRESHOLD_=1073741824 \
    /usr/bin/python3 bench/reference/train_torch.py --spec "$spec" --steps $((steps / 2)) \
    --threads "$threads")")
done

/usr/bin/python3 - "$run" "$steps" "$threads" "${refs[*]}" "${tuned[*]}" <<'PY'
import glob, json, sys
def best(text):
    return max((json.loads(l) for l in text.replace("} {", "}\n{").splitlines()),
               key=lambda r: r["tokens_per_second"])
runs = []
for path in glob.glob(sys.argv[1] + "/*/metrics.jsonl"):
    records = [json.loads(l) for l in open(path)]
    tps = [r for r in records if r["kind"] == "train"][-1]["tokens_per_second"]
    runs.append((tps, [r for r in records if r["kind"] == "summary"][-1]["seconds_per_step"]))
ours, summary = max(runs, key=lambda r: r[0])
ref, tuned = best(sys.argv[4]), best(sys.argv[5])
step = summary["data_wait"] + summary["forward"] + summary["backward"] + summary["optimizer"]
print(f"| run ({sys.argv[2]} steps, {sys.argv[3]} threads, best of {len(runs)}) | tokens/s | ratio |")
print("| --- | --- | --- |")
print(f"| Python reference (python3-torch, same model and step) | {ref['tokens_per_second']:.0f} | 1.00 |")
print(f"| Python reference, glibc malloc tuned as matbert does | {tuned['tokens_per_second']:.0f} | "
      f"{tuned['tokens_per_second'] / ref['tokens_per_second']:.2f} |")
print(f"| matbert-worker train | {ours:.0f} | {ours / ref['tokens_per_second']:.2f} x reference |")
print()
print("| our step, averaged | ms | share |")
print("| --- | --- | --- |")
for k in ("data_wait", "forward", "backward", "optimizer"):
    print(f"| {k} | {summary[k] * 1e3:.2f} | {summary[k] / step * 100:.1f}% |")
print(f"| data_produce (background thread, overlapped) | {summary['data_produce'] * 1e3:.2f} | "
      f"{summary['data_produce'] / step * 100:.1f}% of step time |")
PY
