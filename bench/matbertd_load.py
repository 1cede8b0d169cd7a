#!/usr/bin/python3
"""matbertd under load: N concurrent clients (default 1000) for D seconds, each looping over a
mix of SubmitJob (10%), GetJob (40%), ListJobs (30%, limit 50) and WatchJob (20%: replay the
job's stored events, then up to 1 s of following). Reports per method the calls, p50 / p99 /
max latency and every error by status code, and the daemon's RSS (start, peak, end) and CPU.
RESOURCE_EXHAUSTED past --max-queued is the only error a healthy daemon may return.

Usage: bench/matbertd_load.py --daemon build/server/matbertd --worker build/worker/matbert-worker
           [--clients 1000] [--seconds 60] [--channels 100] [--max-queued 2000]
The daemon has one CPU slot, held by a small training job for the whole run (so submitted
jobs queue, as on a busy cluster); that rank trains on one core beside the daemon and this
client. Clients share --channels HTTP/2 connections (gRPC multiplexes their calls).
"""
import argparse
import asyncio
import collections
import os
import random
import sys
import tempfile
import time

import grpc

from matbertd_common import ROOT, generate_stubs, start_daemon

TINY = ["model.hidden_size=32", "model.num_hidden_layers=2", "model.num_attention_heads=2",
        "model.intermediate_size=64", "matrix.m=6", "matrix.n=6", "matrix.r=2",
        "training.log_every=5", "training.eval_every=0", "training.threads=1",
        "training.steps=10000000", "checkpoint.every=0"]


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmRSS")) / 1024


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * q))] if xs else float("nan")


async def run(a, js, jsg, port, daemon):
    spec = open(os.path.join(ROOT, "configs", "bert_matcomp_cpu.toml")).read()
    gen = ["job.kind=generate", "generate.n_samples=10", "matrix.m=6", "matrix.n=6",
           "matrix.r=2"]
    channels = [grpc.aio.insecure_channel(f"127.0.0.1:{port}") for _ in range(a.channels)]
    for c in channels:
        await asyncio.wait_for(c.channel_ready(), 10)
    stubs = [jsg.JobServiceStub(c) for c in channels]
    blocker = (await stubs[0].SubmitJob(js.SubmitJobRequest(spec_toml=spec, overrides=TINY))).job_id
    known = [blocker]
    latency = collections.defaultdict(list)
    errors = collections.Counter()
    deadline = time.monotonic() + a.seconds

    async def call(method, coro):
        t0 = time.perf_counter()
        try:
            result = await coro
            latency[method].append((time.perf_counter() - t0) * 1000)
            return result
        except grpc.aio.AioRpcError as e:
            errors[(method, e.code().name)] += 1
            return None

    async def watch(stub, job_id):
        # Replays the stored events, then follows for at most a second.
        stream = stub.WatchJob(js.WatchJobRequest(job_id=job_id), timeout=1.0)
        first = True
        t0 = time.perf_counter()
        try:
            async for _ in stream:
                if first:
                    latency["WatchJob (first event)"].append((time.perf_counter() - t0) * 1000)
                    first = False
        except grpc.aio.AioRpcError as e:
            if e.code() != grpc.StatusCode.DEADLINE_EXCEEDED:
                errors[("WatchJob", e.code().name)] += 1

    async def client(i):
        rng = random.Random(i)
        stub = stubs[i % len(stubs)]
        while time.monotonic() < deadline:
            r = rng.random()
            if r < 0.1:
                response = await call("SubmitJob", stub.SubmitJob(
                    js.SubmitJobRequest(spec_toml=spec, overrides=gen), timeout=30))
                if response is not None:
                    known.append(response.job_id)
            elif r < 0.5:
                await call("GetJob", stub.GetJob(js.GetJobRequest(job_id=rng.choice(known)),
                                                 timeout=30))
            elif r < 0.8:
                await call("ListJobs", stub.ListJobs(js.ListJobsRequest(limit=50), timeout=30))
            else:
                await watch(stub, rng.choice(known))

    rss = [rss_mb(daemon.pid)]
    cpu0 = cpu_seconds(daemon.pid)

    async def sample():
        while time.monotonic() < deadline:
            rss.append(rss_mb(daemon.pid))
            await asyncio.sleep(1)

    t0 = time.monotonic()
    await asyncio.gather(sample(), *[client(i) for i in range(a.clients)])
    elapsed = time.monotonic() - t0
    daemon_cpu = cpu_seconds(daemon.pid) - cpu0
    rss.append(rss_mb(daemon.pid))
    await stubs[0].CancelJob(js.CancelJobRequest(job_id=blocker, force=True))
    for c in channels:
        await c.close()

    total = sum(len(v) for v in latency.values() if "first event" not in v)
    print(f"{a.clients} clients over {a.channels} channels for {elapsed:.0f} s: "
          f"{sum(len(v) for k, v in latency.items() if 'first' not in k) / elapsed:.0f} "
          f"completed unary calls/s; daemon CPU {daemon_cpu / elapsed:.2f} cores; "
          f"daemon RSS start {rss[0]:.0f} MB, peak {max(rss):.0f} MB, end {rss[-1]:.0f} MB; "
          f"{len(known) - 1} jobs submitted")
    print(f"{'method':<24} {'calls':>8} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for method in sorted(latency):
        xs = latency[method]
        print(f"{method:<24} {len(xs):>8} {percentile(xs, 0.5):>8.1f} {percentile(xs, 0.99):>8.1f} "
              f"{max(xs):>8.1f}")
    print("errors:", dict(errors) if errors else "none")
    unexpected = {k: v for k, v in errors.items() if k[1] != "RESOURCE_EXHAUSTED"}
    return 1 if unexpected else 0


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--daemon", required=True)
    p.add_argument("--worker", required=True)
    p.add_argument("--clients", type=int, default=1000)
    p.add_argument("--channels", type=int, default=100)
    p.add_argument("--seconds", type=float, default=60)
    p.add_argument("--max-queued", type=int, default=2000)
    a = p.parse_args()
    tmp = tempfile.mkdtemp(prefix="matbertd_load_")
    generate_stubs(tmp)
    from matbert.v1 import job_service_pb2 as js, job_service_pb2_grpc as jsg
    daemon, port = start_daemon(a.daemon, a.worker, tmp, "--max-queued", str(a.max_queued),
                                "--log-level", "warn")
    try:
        code = asyncio.run(run(a, js, jsg, port, daemon))
    finally:
        daemon.terminate()
        daemon.wait()
    sys.exit(code)


if __name__ == "__main__":
    main()
