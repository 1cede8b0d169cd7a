#!/usr/bin/env python3
"""A hyper-parameter sweep from Python: training.lr × matrix.prec, submitted to matbertd and
watched with a live progress display; each job's final masked RMSE goes into a table
(results.csv) and a plot (results.png); then the best job's checkpoint is downloaded, loaded
with matbert.hf.BertForMatrixRegression, and completes a matrix with missing entries.

    pip install './client/python[hf]' matplotlib
    build/server/matbertd &                      # or any matbertd; MATBERT_ADDR says where
    python examples/sweep.py --lr 1e-3 3e-3 --prec 1 2 --steps 300

Options: --spec (default configs/bert_matcomp_cpu.toml), --lr, --prec, --steps, --out
(default sweep-results/), --tiny (a very small model, for a quick check)."""
import argparse
import csv
import itertools
import os
import sys
import threading
import time

import numpy as np

import matbert

TINY = {"model.hidden_size": 32, "model.num_hidden_layers": 1, "model.num_attention_heads": 2,
        "model.intermediate_size": 64, "matrix.m": 5, "matrix.n": 5, "training.batch_size": 8,
        "training.eval_samples": 32, "training.threads": 1}


class Progress:
    """Per-job state, step and last loss, updated by one watcher thread per job and drawn by
    the main thread: redrawn in place on a terminal, a line per change otherwise."""

    def __init__(self, jobs):
        self.rows = {job.id: {"label": label, "state": job.state, "step": 0, "loss": None,
                              "total": job.total_steps, "eval": None} for label, job in jobs}
        self.lock = threading.Lock()
        self.tty = sys.stdout.isatty()
        self.drawn = 0

    def follow(self, job):
        def on_event(event):
            with self.lock:
                row = self.rows[job.id]
                if isinstance(event, matbert.StateChanged):
                    row["state"] = event.state
                elif isinstance(event, matbert.MetricsReported) and event.kind == "train":
                    row["step"], row["loss"] = event.step, event.values.get("loss")
                elif isinstance(event, matbert.MetricsReported) and event.kind == "eval":
                    row["eval"] = event.values.get("eval_rmse")
        try:
            job.wait(on_event=on_event)
        except (matbert.JobFailed, matbert.JobCancelled) as e:
            with self.lock:
                self.rows[job.id]["state"] = f"{e.job.state}: {e.reason}"

    def draw(self):
        with self.lock:
            lines = []
            for job_id, r in self.rows.items():
                done = r["step"] / max(r["total"], 1)
                bar = "#" * int(20 * done) + "." * (20 - int(20 * done))
                loss = f"{r['loss']:.4f}" if r["loss"] is not None else "-"
                ev = f"{r['eval']:.4f}" if r["eval"] is not None else "-"
                lines.append(f"{job_id}  {r['label']:<22} [{bar}] {r['step']:>6}/{r['total']:<6} "
                             f"loss {loss:<8} eval RMSE {ev:<8} {r['state']}")
        if self.tty:
            if self.drawn:
                sys.stdout.write(f"\x1b[{self.drawn}F")
            sys.stdout.write("".join(f"\x1b[2K{l}\n" for l in lines))
            self.drawn = len(lines)
        elif lines != getattr(self, "_last", None):
            print("\n".join(lines), flush=True)
            self._last = lines


def low_rank(m, n, r, factor_mean, rng):
    """A matrix as the job's data were made: U Vᵀ with N(factor_mean, 1) factors, scaled to
    unit variance."""
    u = rng.standard_normal((m, r)) + factor_mean
    v = rng.standard_normal((n, r)) + factor_mean
    x = u @ v.T
    return x / x.std()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--spec", default=os.path.join(os.path.dirname(__file__), "..", "configs",
                                                  "bert_matcomp_cpu.toml"))
    p.add_argument("--lr", type=float, nargs="+", default=[1e-3, 3e-3])
    p.add_argument("--prec", type=int, nargs="+", default=[1, 2])
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--out", default="sweep-results")
    p.add_argument("--tiny", action="store_true", help="a very small model, for a quick check")
    a = p.parse_args()
    os.makedirs(a.out, exist_ok=True)

    client = matbert.Client()
    jobs = []
    for lr, prec in itertools.product(a.lr, a.prec):
        overrides = {**(TINY if a.tiny else {}), "training.lr": lr, "matrix.prec": prec,
                     "training.steps": a.steps, "training.warmup_ratio": 0.1,
                     "training.log_every": max(1, a.steps // 20),
                     "training.eval_every": a.steps, "checkpoint.every": a.steps}
        job = client.submit(a.spec, overrides=overrides, name=f"sweep-lr{lr:g}-prec{prec}")
        jobs.append(((lr, prec), job))
    print(f"submitted {len(jobs)} jobs to {client.addr}", flush=True)

    progress = Progress([(f"lr={lr:g} prec={prec}", job) for (lr, prec), job in jobs])
    threads = [threading.Thread(target=progress.follow, args=(job,), daemon=True)
               for _, job in jobs]
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        progress.draw()
        time.sleep(0.5)
    progress.draw()

    results = []
    for (lr, prec), job in jobs:
        final = client.get(job.id)
        evals = [e for e in client.watch(job.id)
                 if isinstance(e, matbert.MetricsReported) and e.kind == "eval"]
        rmse = evals[-1].values["eval_rmse"] if evals else float("nan")
        results.append({"job": job.id, "lr": lr, "prec": prec, "state": final.state,
                        "eval_rmse": rmse,
                        "baseline_mean_rmse": evals[-1].values.get("baseline_mean_rmse")
                        if evals else None})
    with open(os.path.join(a.out, "results.csv"), "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(results[0]))
        writer.writeheader()
        writer.writerows(results)
    print(f"\n{'job':<10} {'lr':>8} {'prec':>4}  {'eval RMSE':>9}  state")
    for r in results:
        print(f"{r['job']:<10} {r['lr']:>8g} {r['prec']:>4}  {r['eval_rmse']:>9.4f}  {r['state']}")

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 4))
    for prec in a.prec:
        rows = sorted((r for r in results if r["prec"] == prec), key=lambda r: r["lr"])
        ax.plot([r["lr"] for r in rows], [r["eval_rmse"] for r in rows], "o-",
                label=f"prec {prec}")
    ax.set_xscale("log")
    ax.set_xlabel("training.lr")
    ax.set_ylabel("final masked RMSE (eval)")
    ax.set_title(f"matbert sweep, {a.steps} steps")
    ax.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(a.out, "results.png"), dpi=100)
    print(f"wrote {a.out}/results.csv and {a.out}/results.png")

    ok = [r for r in results if r["state"] == "SUCCEEDED"]
    if not ok:
        print("no job succeeded", file=sys.stderr)
        return 1
    best = min(ok, key=lambda r: r["eval_rmse"])
    print(f"best: job {best['job']} (lr={best['lr']:g}, prec={best['prec']}), "
          f"eval RMSE {best['eval_rmse']:.4f}")
    checkpoint = client.download(best["job"], dest=os.path.join(a.out, "best-checkpoint"),
                                 overwrite=True)
    import transformers
    from matbert.hf import BertForMatrixRegression
    transformers.utils.logging.disable_progress_bar()
    model = BertForMatrixRegression.from_pretrained(checkpoint)
    c = model.config
    import tomllib
    matrix = tomllib.loads(client.get(best["job"]).spec_toml)["matrix"]  # the job's resolved spec
    truth = low_rank(c.matrix_m, c.matrix_n, matrix["r"], matrix["factor_mean"],
                     np.random.default_rng(0))
    observed = truth.copy()
    missing = np.random.default_rng(1).random(truth.shape) < 0.2
    observed[missing] = np.nan
    completed = model.complete(observed)
    err = np.sqrt(np.mean((completed[missing] - truth[missing]) ** 2))
    print(f"completed a {c.matrix_m}x{c.matrix_n} rank-{matrix['r']} matrix with "
          f"{missing.sum()} missing entries: RMSE {err:.4f} on them (the mean of the observed "
          f"entries gives {np.sqrt(np.mean((np.nanmean(observed) - truth[missing]) ** 2)):.4f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
