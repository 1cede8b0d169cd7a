#!/usr/bin/python3
"""RPC latency of matbertd with and without --metrics-addr (the RPC-counting interceptor):
two daemons side by side, GetJob calls alternated between them in blocks, per-call latency
median and p99 for each. Also runs the /metrics scrape benchmark (100 running jobs).

Usage: bench/metrics_bench.py --daemon build/server/matbertd --worker build/worker/matbert-worker
           --scrape-bench build/server/metrics/metrics_bench [--calls 5000]
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time

import grpc

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))
from matbertd_harness import Daemon, free_port, generate_stubs, v1  # noqa: E402


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--daemon", required=True)
    p.add_argument("--worker", required=True)
    p.add_argument("--scrape-bench", required=True)
    p.add_argument("--calls", type=int, default=5000)
    a = p.parse_args()
    root = os.path.dirname(HERE)
    Daemon.binary, Daemon.worker, Daemon.spec_root = a.daemon, a.worker, os.path.join(root, "configs")
    with tempfile.TemporaryDirectory(prefix="matbert_metrics_bench_") as tmp:
        generate_stubs(os.path.join(root, "proto"), os.path.join(tmp, "stubs"))
        plain = Daemon(os.path.join(tmp, "plain"), free_port()).start()
        metered = Daemon(os.path.join(tmp, "metered"), free_port(), "--metrics-addr",
                         f"127.0.0.1:{free_port()}").start()
        spec = open(os.path.join(root, "configs", "bert_matcomp_cpu.toml")).read()
        ids = {}
        for name, d in (("without metrics", plain), ("with metrics", metered)):
            ids[name] = d.jobs.SubmitJob(v1["js"].SubmitJobRequest(
                spec_toml=spec, overrides=["job.kind=generate", "generate.n_samples=10"])).job_id
        samples = {name: [] for name in ids}
        block = 250
        for _ in range(max(1, a.calls // block)):
            for name, d in (("without metrics", plain), ("with metrics", metered)):
                request = v1["js"].GetJobRequest(job_id=ids[name])
                for _ in range(block):
                    t0 = time.perf_counter()
                    d.jobs.GetJob(request)
                    samples[name].append((time.perf_counter() - t0) * 1e6)
        print("| daemon | GetJob median | p99 | calls |\n| --- | --- | --- | --- |")
        for name, xs in samples.items():
            xs.sort()
            print(f"| {name} | {xs[len(xs) // 2]:.0f} µs | {xs[int(len(xs) * 0.99)]:.0f} µs | {len(xs)} |")
        plain.stop()
        metered.stop()
    print()
    sys.stdout.flush()
    subprocess.run([a.scrape_bench, "100", "500"], check=True)


if __name__ == "__main__":
    main()
