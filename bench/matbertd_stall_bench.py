#!/usr/bin/python3
"""matbertd's RPC latency with a healthy and with a stalled executor, side by side in one run.

Two daemons, one CPU slot each, each running the same small training job. On the second,
every executor call (start, poll, fit check, ping) then sleeps --delay-ms
(--inject-executor-delay-file), as when Slurm's controller is stopped. Against both, in
turns: GetJob of the running job and SubmitJob of a job that queues behind it. Prints p50/p99
per method and daemon, and the stalled/healthy ratio of each.

Usage: bench/matbertd_stall_bench.py --daemon build/server/matbertd --worker build/worker/matbert-worker
           [--calls 300] [--submits 50] [--delay-ms 5000]
"""
import argparse
import os
import tempfile
import time

import grpc

from matbertd_common import ROOT, generate_stubs, start_daemon

TINY = ["model.hidden_size=32", "model.num_hidden_layers=2", "model.num_attention_heads=2",
        "model.intermediate_size=64", "matrix.m=6", "matrix.n=6", "matrix.r=2",
        "training.warmup_steps=2", "training.log_every=10", "training.eval_every=1000",
        "training.eval_samples=8", "training.threads=1", "checkpoint.every=100000",
        "training.steps=100000"]


def percentile(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * q))]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--daemon", required=True)
    p.add_argument("--worker", required=True)
    p.add_argument("--calls", type=int, default=300, help="GetJob calls per daemon")
    p.add_argument("--submits", type=int, default=50, help="SubmitJob calls per daemon")
    p.add_argument("--delay-ms", type=int, default=5000)
    a = p.parse_args()
    tmp = tempfile.mkdtemp(prefix="matbertd_stall_bench_")
    generate_stubs(tmp)
    from matbert.v1 import job_service_pb2 as js, job_service_pb2_grpc as jsg, job_pb2
    spec = open(os.path.join(ROOT, "configs", "bert_matcomp_cpu.toml")).read()

    daemons = {}
    for name in ("healthy", "stalled"):
        d = os.path.join(tmp, name)
        os.makedirs(d)
        delay = os.path.join(d, "delay-ms")
        process, port = start_daemon(a.daemon, a.worker, d, "--inject-executor-delay-file", delay,
                                     "--executor-stall", "1", "--max-queued", "100000")
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        grpc.channel_ready_future(channel).result(timeout=10)
        stub = jsg.JobServiceStub(channel)
        job = stub.SubmitJob(js.SubmitJobRequest(spec_toml=spec, overrides=TINY)).job_id
        daemons[name] = dict(process=process, stub=stub, job=job, delay=delay)
    for name, d in daemons.items():
        while d["stub"].GetJob(js.GetJobRequest(job_id=d["job"])).state != job_pb2.JOB_STATE_RUNNING:
            time.sleep(0.1)
    with open(daemons["stalled"]["delay"], "w") as f:
        f.write(str(a.delay_ms))
    time.sleep(1.5)  # its first slow call is in flight past --executor-stall

    ms = {(name, method): [] for name in daemons for method in ("GetJob", "SubmitJob")}
    for i in range(max(a.calls, a.submits)):
        for name, d in daemons.items():
            if i < a.calls:
                t0 = time.perf_counter()
                d["stub"].GetJob(js.GetJobRequest(job_id=d["job"]), timeout=30)
                ms[(name, "GetJob")].append((time.perf_counter() - t0) * 1000)
            if i < a.submits:
                t0 = time.perf_counter()
                d["stub"].SubmitJob(js.SubmitJobRequest(spec_toml=spec, overrides=TINY), timeout=60)
                ms[(name, "SubmitJob")].append((time.perf_counter() - t0) * 1000)
    stalled_reason = daemons["stalled"]["stub"].ListJobs(js.ListJobsRequest(
        states=[job_pb2.JOB_STATE_QUEUED], limit=1)).jobs
    for d in daemons.values():
        d["process"].terminate()
        d["process"].wait()

    print(f"executor delay {a.delay_ms} ms a call on the stalled daemon; --executor-stall 1")
    print(f"{'method':<10} {'daemon':<8} {'calls':>5} {'p50 ms':>8} {'p99 ms':>8}")
    for (name, method), xs in sorted(ms.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        print(f"{method:<10} {name:<8} {len(xs):>5} {percentile(xs, 0.5):>8.2f} "
              f"{percentile(xs, 0.99):>8.2f}")
    for method in ("GetJob", "SubmitJob"):
        h, s = ms[("healthy", method)], ms[("stalled", method)]
        print(f"{method}: stalled/healthy p50 {percentile(s, 0.5) / percentile(h, 0.5):.2f}x, "
              f"p99 {percentile(s, 0.99) / percentile(h, 0.99):.2f}x")
    if stalled_reason:
        print(f"a queued job on the stalled daemon says: {stalled_reason[0].reason}")


if __name__ == "__main__":
    main()
