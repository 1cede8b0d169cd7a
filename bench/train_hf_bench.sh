#!/usr/bin/env bash
# CPU training tokens/s of `matbert-worker train`, built against both LibTorch lines (Debian's
# 1.13 and PyPI's 2.x), against what a user would otherwise run: PyTorch 2.x with
# transformers' BertModel and the same head (bench/reference/train_hf.py), eager and with
# torch.compile. Same model (HuggingFace's architecture: post-LN, absolute positions), batch,
# optimizer, loss and thread count; the four alternate REPEATS times and the best of each is
# reported, with its ratio to the best of the two PyTorch runs.
#
# Usage: bench/train_hf_bench.sh [SPEC] [STEPS]   (default configs/bert_matcomp_cpu.toml, 200)
# Env:   THREADS (2), REPEATS (3), BUILD (build: needs scripts/build.sh -DMATBERT_TORCH2=ON),
#        PYTHON (.venv/bin/python)
set -euo pipefail
cd "$(dirname "$0")/.."
spec=${1:-configs/bert_matcomp_cpu.toml}
steps=${2:-200}
threads=${THREADS:-2}
repeats=${REPEATS:-3}
build=${BUILD:-build}
python=${PYTHON:-.venv/bin/python}
worker=$build/worker/matbert-worker
module2=$build/torch2/worker/libmatbert_train.so
for f in "$worker" "$module2" "$python"; do
  [ -e "$f" ] || { echo "train_hf_bench.sh: $f missing: run scripts/test.sh or scripts/setup-deps.sh --python && scripts/build.sh -DMATBERT_TORCH2=ON" >&2; exit 2; }
done
run=$(mktemp -d /tmp/matbert-train-hf-bench.XXXXXX)
trap 'rm -rf "$run"' EXIT
arch=(--model.layer_norm_position post --model.position_embedding_type absolute)

eager=()
compiled=()
for i in $(seq "$repeats"); do
  for build_name in torch1 torch2; do
    module=$build/worker/libmatbert_train.so
    [ "$build_name" == torch2 ] && module=$module2
    # The second half of each run is the measured window (the first half warms up).
    MATBERT_TRAIN_MODULE=$module "$worker" train --config "$spec" --run-dir "$run/$build_name-$i" \
      --quiet "${arch[@]}" --training.steps "$steps" --training.log_every $((steps / 2)) \
      --training.eval_every 0 --training.warmup_steps $((steps / 10)) \
      --training.threads "$threads" --checkpoint.every 0
  done
  eager+=("$("$python" bench/reference/train_hf.py --spec "$spec" --steps $((steps / 2)) \
    --threads "$threads")")
  compiled+=("$("$python" bench/reference/train_hf.py --spec "$spec" --steps $((steps / 2)) \
    --threads "$threads" --compile 2>/dev/null)")
done

"$python" - "$run" "$steps" "$threads" "${eager[*]}" "${compiled[*]}" <<'PY'
import glob, json, sys
run, steps, threads = sys.argv[1:4]
def best(text):
    return max((json.loads(l) for l in text.replace("} {", "}\n{").splitlines()),
               key=lambda r: r["tokens_per_second"])
def ours(build):
    runs = []
    for path in glob.glob(f"{run}/{build}-*/metrics.jsonl"):
        records = [json.loads(l) for l in open(path)]
        tps = [r for r in records if r["kind"] == "train"][-1]["tokens_per_second"]
        runs.append((tps, [r for r in records if r["kind"] == "summary"][-1]))
    return max(runs, key=lambda r: r[0])
eager, compiled = best(sys.argv[4]), best(sys.argv[5])
ref = max(eager["tokens_per_second"], compiled["tokens_per_second"])
print(f"| run ({steps} steps, {threads} threads, best of {len(glob.glob(run + '/torch1-*'))}) "
      "| tokens/s | ratio to the best PyTorch |")
print("| --- | --- | --- |")
print(f"| PyTorch {eager['torch']} + transformers BertModel, eager | "
      f"{eager['tokens_per_second']:.0f} | {eager['tokens_per_second'] / ref:.2f} |")
print(f"| PyTorch {compiled['torch']} + transformers BertModel, torch.compile | "
      f"{compiled['tokens_per_second']:.0f} | {compiled['tokens_per_second'] / ref:.2f} |")
breakdown = []
for build in ("torch1", "torch2"):
    tps, summary = ours(build)
    print(f"| matbert-worker train, LibTorch {summary['libtorch']} | {tps:.0f} | {tps / ref:.2f} |")
    breakdown.append((summary["libtorch"], summary["seconds_per_step"]))
print()
print("| our step, averaged (ms) | " + " | ".join(f"LibTorch {v}" for v, _ in breakdown) + " |")
print("| --- |" + " --- |" * len(breakdown))
for k in ("data_wait", "forward", "backward", "optimizer"):
    print(f"| {k} | " + " | ".join(f"{s[k] * 1e3:.2f}" for _, s in breakdown) + " |")
PY
