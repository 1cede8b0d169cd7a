#!/usr/bin/python3
"""NumPy reference of `matbert-worker generate`, for the benchmark: the same work per matrix
(U, V standard normal; M = U Vᵀ / std; tokens with NaN-aligned values; nuclear norm and
spectral gap from the r×r problem via batched QR; mean, variance, trace, range; aggregated
mean/std/min/max) vectorised over chunks of 1000 matrices, written as raw arrays.

Usage: generate_numpy.py --m 20 --n 20 --r 5 --n-samples 100000 --output FILE [--prec 2]
"""
import argparse
import json
import time

import numpy as np


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--m", type=int, default=20)
    p.add_argument("--n", type=int, default=20)
    p.add_argument("--r", type=int, default=5)
    p.add_argument("--n-samples", type=int, default=100000)
    p.add_argument("--prec", type=int, default=2)
    p.add_argument("--n-sigma", type=int, default=4)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--output", required=True)
    a = p.parse_args()

    start = time.perf_counter()
    rng = np.random.default_rng(a.seed)
    scale = 10.0 ** a.prec
    length = a.m * a.n + 2
    stats = {k: [] for k in ("nuclear_norm", "spectral_gap", "mean", "variance", "trace", "range")}
    with open(a.output, "wb") as out:
        for first in range(0, a.n_samples, 1000):
            b = min(1000, a.n_samples - first)
            u = rng.standard_normal((b, a.m, a.r))
            v = rng.standard_normal((b, a.n, a.r))
            mats = u @ v.transpose(0, 2, 1)                          # (B, m, n)
            std = mats.std(axis=(1, 2), keepdims=True)
            mats /= std
            flat = mats.reshape(b, -1)
            ids = np.empty((b, length), dtype=np.int32)
            ids[:, 0], ids[:, -1] = 2, 3
            ids[:, 1:-1] = 4 + np.round((np.clip(flat, -a.n_sigma, a.n_sigma) + a.n_sigma) * scale)
            values = np.full((b, length), np.nan)
            values[:, 1:-1] = flat
            ru = np.linalg.qr(u, mode="r")                            # (B, r, r)
            rv = np.linalg.qr(v, mode="r")
            s = np.linalg.svd(ru @ rv.transpose(0, 2, 1), compute_uv=False) / std[:, 0]
            stats["nuclear_norm"].append(s.sum(axis=1))
            stats["spectral_gap"].append(s[:, -1])
            stats["mean"].append(flat.mean(axis=1))
            stats["variance"].append(flat.var(axis=1))
            stats["trace"].append(np.trace(mats, axis1=1, axis2=2))
            stats["range"].append(flat.max(axis=1) - flat.min(axis=1))
            ids.tofile(out)
            values.tofile(out)
        out.flush()
        import os
        os.fsync(out.fileno())
    summary = {}
    for k, chunks in stats.items():
        x = np.concatenate(chunks)
        summary[k] = {"mean": x.mean(), "std": x.std(), "min": x.min(), "max": x.max()}
    elapsed = time.perf_counter() - start
    print(json.dumps({"seconds": elapsed, "matrices_per_second": a.n_samples / elapsed,
                      "stats": summary}))


if __name__ == "__main__":
    main()
