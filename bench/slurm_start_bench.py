"""Submit → every rank running, for a 2-node × 1-rank job on a real Slurm cluster (the test
cluster of tests/slurm_cluster.py: two slurmd nodes in network namespaces on this machine):
through `matbertd --backend slurm`, against the same ranks started with a bare `sbatch`
whose script runs `srun matbert-worker train`. A rank counts as running when its
matbert-worker process exists.

Both sides start from the same state: before each measured submission the cluster is idle
(no job of either side left in squeue) and has been for --settle seconds, and the two sides
take turns going first. This matters: slurmctld starts a job submitted to an idle cluster at
its next scheduling pass (0–4 s later here), but one submitted just before another job's
epilog completes at once, in the pass that completion triggers; an earlier version of this
benchmark submitted the bare job right after cancelling matbertd's and so timed the two
sides under different conditions. Each sample is also split into the time the job waited in
Slurm's queue (PENDING in squeue, Slurm's scheduler) and the rest (everything matbertd or
sbatch/srun do), so that the scheduler's phase, shared by both sides, does not hide the
overhead. Needs root.

Usage: bench/slurm_start_bench.py --daemon build/server/matbertd --worker build/worker/matbert-worker [--runs 10] [--settle 3]
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


def squeue_states(env):
    """{job name: state} of the jobs in Slurm's queue."""
    out = subprocess.run(["squeue", "-h", "-o", "%j %T"], env=env, capture_output=True,
                         text=True).stdout
    return dict(line.split() for line in out.splitlines() if len(line.split()) == 2)


def until_running(key, value, slurm_name, env, start, ranks=2, timeout=120):
    """Seconds from `start` until the ranks run, and of them the seconds the Slurm job named
    `slurm_name` was seen PENDING."""
    deadline = time.time() + timeout
    first_pending = last_pending = None
    while len(workers_with(key, value)) < ranks:
        if time.time() > deadline:
            raise RuntimeError(f"ranks with {key}={value} did not start")
        state = squeue_states(env).get(slurm_name)
        now = time.perf_counter()
        if state == "PENDING":
            first_pending = first_pending or now
            last_pending = now
    total = time.perf_counter() - start
    return total, (last_pending - first_pending) if first_pending else 0.0


def until_idle(env, settle):
    deadline = time.time() + 60
    while squeue_states(env) and time.time() < deadline:
        time.sleep(0.1)
    time.sleep(settle)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--daemon", required=True)
    parser.add_argument("--worker", required=True)
    parser.add_argument("--runs", type=int, default=10)
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
    worker = os.path.abspath(args.worker)
    config = os.path.join(root, "configs", "bert_matcomp_cpu.toml")
    samples = {"matbertd": [], "bare": []}
    with SlurmCluster(nodes=2) as cluster:
        daemon = harness.Daemon(os.path.join(tmp, "state"), harness.free_port(), "--backend",
                                "slurm", "--advertise-host", cluster.host_addr,
                                "--grace-period", "1", "--insecure-allow-network-without-auth",
                                listen_host="0.0.0.0",
                                env=cluster.env).start()

        def through_matbertd():
            start = time.perf_counter()
            job_id = daemon.jobs.SubmitJob(v1["js"].SubmitJobRequest(
                spec_toml=spec, overrides=TINY + ["job.nodes=2", "job.gpus=1"],
                source_name="bench.toml"), timeout=30).job_id
            sample = until_running("MATBERT_JOB_ID", job_id, f"matbert-{job_id}-1",
                                   cluster.env, start)
            daemon.jobs.CancelJob(v1["js"].CancelJobRequest(job_id=job_id, force=True))
            return sample

        def bare(run):
            run_dir = os.path.join(tmp, f"bare{run}")
            os.makedirs(run_dir)
            script = os.path.join(run_dir, "job.sbatch")
            with open(script, "w") as f:
                f.write(f"#!/bin/sh\nexec srun {worker} train --config {config} --run-dir "
                        f"{run_dir} --quiet " +
                        " ".join("--" + o.replace("=", " ") for o in TINY) + "\n")
            os.chmod(script, 0o755)
            env = dict(cluster.env, BENCH_TAG=f"bare{run}")
            start = time.perf_counter()
            slurm_id = subprocess.run(
                ["sbatch", "--parsable", "--nodes=2", "--ntasks-per-node=1",
                 f"--job-name=bare{run}", f"--output={run_dir}/out.log", script],
                env=env, check=True, capture_output=True, text=True).stdout.strip()
            sample = until_running("BENCH_TAG", f"bare{run}", f"bare{run}", cluster.env, start)
            subprocess.run(["scancel", slurm_id], env=cluster.env)
            return sample

        try:
            for run in range(args.runs):
                order = ["matbertd", "bare"] if run % 2 == 0 else ["bare", "matbertd"]
                for side in order:
                    until_idle(cluster.env, args.settle)
                    sample = through_matbertd() if side == "matbertd" else bare(run)
                    samples[side].append(sample)
                    print(f"run {run} {side}: {sample[0]:.3f} s, of it {sample[1]:.3f} s "
                          "PENDING in Slurm", file=sys.stderr, flush=True)
        finally:
            daemon.stop()

    def medians(side):
        totals = [t for t, _ in samples[side]]
        rest = [t - p for t, p in samples[side]]
        return statistics.median(totals), statistics.median(rest), totals

    print(f"| path | submit → 2 ranks running, median of {args.runs} (s) | of it outside "
          "Slurm's queue, median (s) | runs (s) |")
    print("| --- | --- | --- | --- |")
    for side, label in (("bare", "bare `sbatch` + `srun`"),
                        ("matbertd", "matbertd `--backend slurm`")):
        total, rest, totals = medians(side)
        print(f"| {label} | {total:.3f} | {rest:.3f} | {' '.join(f'{x:.3f}' for x in totals)} |")
    ours, bare_ = medians("matbertd"), medians("bare")
    print(f"\nratio matbertd / bare, submit → running: {ours[0] / bare_[0]:.2f}× "
          f"(target ≤ 1.1×); outside Slurm's queue: {ours[1] / bare_[1]:.2f}× "
          f"(+{1000 * (ours[1] - bare_[1]):.0f} ms)")


if __name__ == "__main__":
    main()
