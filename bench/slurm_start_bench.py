"""Submit → every rank running, for a 2-node × 1-rank job on a real Slurm cluster (the test
cluster of tests/slurm_cluster.py: two slurmd nodes in network namespaces on this machine):
through `matbertd --backend slurm`, against the same ranks started with a bare `sbatch`
whose script runs `srun matbert-worker train`. A rank counts as running when its
matbert-worker process exists; both sides are timed the same way, alternately, and the
ratio of the medians is matbertd's overhead. Needs root.

Usage: bench/slurm_start_bench.py --daemon build/server/matbertd --worker build/worker/matbert-worker [--runs 7] [--settle 3]
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))
import matbertd_harness as harness  # noqa: E402
from slurm_cluster import SlurmCluster  # noqa: E402

TINY = ["model.hidden_size=32", "model.num_hidden_layers=2", "model.num_attention_heads=2",
        "model.intermediate_size=64", "matrix.m=6", "matrix.n=6", "matrix.r=2",
        "training.warmup_steps=2", "training.threads=1", "training.steps=100000",
        "training.log_every=1000", "training.eval_every=0", "checkpoint.every=100000"]


def workers_with(key, value):
    """pids of matbert-worker processes whose environment has key=value."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                if "(matbert-worker)" not in f.read():
                    continue
            with open(f"/proc/{pid}/environ", "rb") as f:
                if f"{key}={value}".encode() in f.read().split(b"\0"):
                    found.append(int(pid))
        except OSError:
            pass
    return found


def until_running(key, value, ranks=2, timeout=120):
    deadline = time.time() + timeout
    while len(workers_with(key, value)) < ranks:
        if time.time() > deadline:
            raise RuntimeError(f"ranks with {key}={value} did not start")
        time.sleep(0.005)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--daemon", required=True)
    parser.add_argument("--worker", required=True)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--settle", type=float, default=3.0,
                        help="seconds between runs, so that the nodes are idle again")
    args = parser.parse_args()
    root = os.path.join(HERE, "..")
    harness.Daemon.binary = os.path.abspath(args.daemon)
    harness.Daemon.worker = os.path.abspath(args.worker)
    harness.Daemon.spec_root = os.path.join(root, "configs")
    stubs = tempfile.mkdtemp(prefix="matbert_stubs_")
    harness.generate_stubs(os.path.join(root, "proto"), stubs)
    v1 = harness.v1
    with open(os.path.join(root, "configs", "bert_matcomp_cpu.toml")) as f:
        spec = f.read()
    tmp = tempfile.mkdtemp(prefix="matbert_slurm_bench_")
    with SlurmCluster(nodes=2) as cluster:
        daemon = harness.Daemon(os.path.join(tmp, "state"), harness.free_port(), "--backend",
                                "slurm", "--advertise-host", cluster.host_addr,
                                "--grace-period", "1", listen_host="0.0.0.0",
                                env=cluster.env).start()
        ours, bare = [], []
        try:
            for run in range(args.runs):
                # matbertd: SubmitJob → both ranks exist.
                start = time.perf_counter()
                job_id = daemon.jobs.SubmitJob(v1["js"].SubmitJobRequest(
                    spec_toml=spec, overrides=TINY + ["job.nodes=2", "job.gpus=1"],
                    source_name="bench.toml"), timeout=30).job_id
                until_running("MATBERT_JOB_ID", job_id)
                ours.append(time.perf_counter() - start)
                daemon.jobs.CancelJob(v1["js"].CancelJobRequest(job_id=job_id, force=True))
                # Bare Slurm: sbatch of a script that srun's the same worker.
                run_dir = os.path.join(tmp, f"bare{run}")
                os.makedirs(run_dir)
                script = os.path.join(run_dir, "job.sbatch")
                with open(script, "w") as f:
                    f.write("#!/bin/sh\nexec srun " + os.path.abspath(args.worker) +
                            " train --config " + os.path.join(root, "configs",
                                                              "bert_matcomp_cpu.toml") +
                            " --run-dir " + run_dir + " --quiet " +
                            " ".join("--" + o.replace("=", " ") for o in TINY) + "\n")
                os.chmod(script, 0o755)
                env = dict(cluster.env, BENCH_TAG=f"bare{run}")
                start = time.perf_counter()
                slurm_id = subprocess.run(
                    ["sbatch", "--parsable", "--nodes=2", "--ntasks-per-node=1",
                     f"--output={run_dir}/out.log", script],
                    env=env, check=True, capture_output=True, text=True).stdout.strip()
                until_running("BENCH_TAG", f"bare{run}")
                bare.append(time.perf_counter() - start)
                subprocess.run(["scancel", slurm_id], env=cluster.env)
                # Let both jobs leave the nodes before the next run.
                deadline = time.time() + 60
                while (workers_with("MATBERT_JOB_ID", job_id) or
                       workers_with("BENCH_TAG", f"bare{run}")) and time.time() < deadline:
                    time.sleep(0.1)
                time.sleep(args.settle)
        finally:
            daemon.stop()
    m_ours, m_bare = statistics.median(ours), statistics.median(bare)
    print("| path | submit → 2 ranks running, median of %d (s) | runs (s) |" % args.runs)
    print("| --- | --- | --- |")
    print("| bare `sbatch` + `srun` | %.3f | %s |" % (m_bare, " ".join("%.3f" % x for x in bare)))
    print("| matbertd `--backend slurm` | %.3f | %s |" % (m_ours, " ".join("%.3f" % x for x in ours)))
    print("\nratio matbertd / bare: %.2f× (target ≤ 1.1×)" % (m_ours / m_bare))


if __name__ == "__main__":
    main()
