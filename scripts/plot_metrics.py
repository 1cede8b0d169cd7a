#!/usr/bin/env python3
"""Draws a run's metrics.jsonl as a PNG: the training loss (log scale) and, below it, the
model's masked RMSE at each evaluation beside the baselines' (mean, ALS, soft-impute; the
EMA weights' too when the run kept them). Several runs can share the figure.

Usage: scripts/plot_metrics.py RUN_DIR [RUN_DIR ...] --out FIGURE.png [--title TEXT]
(uses the repository's .venv: .venv/bin/python scripts/plot_metrics.py ...)
"""
import argparse
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def read(run_dir):
    path = os.path.join(run_dir, "metrics.jsonl")
    try:
        with open(path) as f:
            return [json.loads(line) for line in f if line.strip()]
    except OSError as e:
        sys.exit(f"plot_metrics: cannot read {path}: {e.strerror}")
    except json.JSONDecodeError as e:
        sys.exit(f"plot_metrics: {path}: not JSON lines ({e})")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", metavar="RUN_DIR")
    parser.add_argument("--out", required=True, help="PNG file to write")
    parser.add_argument("--title", default="")
    args = parser.parse_args()
    fig, (loss_ax, eval_ax) = plt.subplots(2, 1, figsize=(8, 7), sharex=True)
    baselines_drawn = False
    for run in args.runs:
        records = read(run)
        name = os.path.basename(os.path.normpath(run))
        train = [r for r in records if r.get("kind") == "train"]
        evals = [r for r in records if r.get("kind") == "eval"]
        if not train:
            sys.exit(f"plot_metrics: {run}/metrics.jsonl has no train records")
        loss_ax.plot([r["step"] for r in train], [r["loss"] for r in train], label=name)
        steps = [r["step"] for r in evals]
        eval_ax.plot(steps, [r["eval_rmse"] for r in evals], marker=".", label=f"{name}: model")
        if any("eval_rmse_ema" in r for r in evals):
            eval_ax.plot(steps, [r.get("eval_rmse_ema") for r in evals], linestyle=":",
                         label=f"{name}: EMA weights")
        if evals and not baselines_drawn:
            for key, label in (("baseline_mean_rmse", "observed mean"),
                               ("baseline_als_rmse", "rank-r ALS"),
                               ("baseline_soft_impute_rmse", "soft-impute")):
                if key in evals[-1]:
                    eval_ax.axhline(evals[-1][key], linestyle="--", linewidth=1, color="gray")
                    eval_ax.annotate(label, (steps[0], evals[-1][key]), fontsize=8,
                                     color="dimgray", va="bottom")
            baselines_drawn = True
    loss_ax.set_yscale("log")
    loss_ax.set_ylabel("training loss (MSE)")
    loss_ax.legend(fontsize=8)
    eval_ax.set_ylabel("masked RMSE (held-out)")
    eval_ax.set_xlabel("step")
    eval_ax.legend(fontsize=8)
    if args.title:
        fig.suptitle(args.title)
    fig.tight_layout()
    tmp = args.out + ".tmp.png"
    fig.savefig(tmp, dpi=100)
    os.replace(tmp, args.out)
    print(args.out)


if __name__ == "__main__":
    main()
