#!/usr/bin/python3
"""matbertd benchmark: submit-to-start latency (median, p99) of small generate jobs, and the
daemon's RSS and submit rate with N jobs queued behind a running one.

Usage: bench/matbertd_bench.py --daemon build/server/matbertd --worker build/worker/matbert-worker
           [--latency-jobs 30] [--queued 10000]
Latency is measured by the daemon's own clock: the STARTING event (every rank spawned) and
the RUNNING event (every rank registered over gRPC) against the job's submit time.
"""
import argparse
import os
import tempfile
import threading
import time

import grpc

from matbertd_common import ROOT, generate_stubs, start_daemon


def ms(ts):
    return ts.seconds * 1000 + ts.nanos / 1e6


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--daemon", required=True)
    p.add_argument("--worker", required=True)
    p.add_argument("--latency-jobs", type=int, default=30)
    p.add_argument("--queued", type=int, default=10000)
    p.add_argument("--watchers", type=int, default=100)
    a = p.parse_args()
    tmp = tempfile.mkdtemp(prefix="matbertd_bench_")
    generate_stubs(tmp)
    from matbert.v1 import job_service_pb2 as js, job_service_pb2_grpc as jsg, job_pb2
    daemon, port = start_daemon(a.daemon, a.worker, tmp, "--max-queued", str(a.queued + 10))
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    grpc.channel_ready_future(channel).result(timeout=10)
    jobs = jsg.JobServiceStub(channel)
    spec = open(os.path.join(ROOT, "configs", "bert_matcomp_cpu.toml")).read()
    gen = ["job.kind=generate", "generate.n_samples=10", "matrix.m=6", "matrix.n=6", "matrix.r=2"]

    started, running = [], []
    for _ in range(a.latency_jobs):
        r = jobs.SubmitJob(js.SubmitJobRequest(spec_toml=spec, overrides=gen))
        submit = ms(r.job.submit_time)
        for e in jobs.WatchJob(js.WatchJobRequest(job_id=r.job_id)):
            if e.WhichOneof("event") != "state_change":
                continue
            if e.state_change.state == job_pb2.JOB_STATE_STARTING:
                started.append(ms(e.time) - submit)
            if e.state_change.state == job_pb2.JOB_STATE_RUNNING:
                running.append(ms(e.time) - submit)
    def stats(xs):
        xs = sorted(xs)
        return f"median {xs[len(xs) // 2]:.0f} ms, p99 {xs[min(len(xs) - 1, int(len(xs) * 0.99))]:.0f} ms"
    print(f"submit -> all ranks started (STARTING): {stats(started)}  [{len(started)} jobs]")
    print(f"submit -> all ranks registered (RUNNING): {stats(running)}  [{len(running)} jobs]")

    # WatchJob fan-out: a training job reporting every step, followed by 1 and then by
    # `--watchers` streams; latency = receipt on the client - the event's stored time.
    tiny = ["model.hidden_size=32", "model.num_hidden_layers=2", "model.num_attention_heads=2",
            "model.intermediate_size=64", "matrix.m=6", "matrix.n=6", "matrix.r=2",
            "training.warmup_steps=2", "training.log_every=5", "training.eval_every=0",
            "training.eval_samples=8", "training.threads=1", "training.steps=100000"]
    trainer = jobs.SubmitJob(js.SubmitJobRequest(spec_toml=spec, overrides=tiny)).job_id
    for e in jobs.WatchJob(js.WatchJobRequest(job_id=trainer)):
        if e.WhichOneof("event") == "metrics":
            last_seq = e.seq
            break

    def follow(n, seconds=8.0):
        """Delivery delays of new metrics events to each of n watchers over `seconds`."""
        delays, streams, threads = [], [], []
        lock = threading.Lock()
        opened = time.time() * 1000 + 500  # events stored after all streams are open

        def run(stream):
            try:
                for e in stream:
                    now = time.time() * 1000
                    if e.WhichOneof("event") == "metrics" and ms(e.time) > opened:
                        with lock:
                            delays.append(now - ms(e.time))
            except grpc.RpcError:
                pass
        for _ in range(n):
            stream = jobs.WatchJob(js.WatchJobRequest(job_id=trainer, after_seq=last_seq))
            streams.append(stream)
            threads.append(threading.Thread(target=run, args=(stream,), daemon=True))
        for t in threads:
            t.start()
        time.sleep(seconds)
        for st in streams:
            st.cancel()
        for t in threads:
            t.join()
        return delays

    def cpu_seconds(pid):
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    for n in (1, a.watchers):
        daemon_cpu, client_cpu = cpu_seconds(daemon.pid), time.process_time()
        d = follow(n)
        daemon_cpu = cpu_seconds(daemon.pid) - daemon_cpu
        client_cpu = time.process_time() - client_cpu
        print(f"WatchJob with {n} watcher(s): event delivery {stats(d)}  [{len(d)} deliveries; "
              f"CPU s: daemon {daemon_cpu:.1f}, this client {client_cpu:.1f}]")
    jobs.CancelJob(js.CancelJobRequest(job_id=trainer, force=True))

    blocker = jobs.SubmitJob(js.SubmitJobRequest(spec_toml=spec, overrides=["training.steps=100000"])).job_id
    t0 = time.time()
    for _ in range(a.queued):
        jobs.SubmitJob(js.SubmitJobRequest(spec_toml=spec, overrides=gen))
    dt = time.time() - t0
    with open(f"/proc/{daemon.pid}/status") as f:
        rss = next(int(l.split()[1]) for l in f if l.startswith("VmRSS")) / 1024
    t0 = time.time()
    listed = len(jobs.ListJobs(js.ListJobsRequest(states=[job_pb2.JOB_STATE_QUEUED])).jobs)
    list_s = time.time() - t0
    print(f"{a.queued} jobs queued: {a.queued / dt:.0f} submits/s; daemon RSS {rss:.0f} MB; "
          f"ListJobs(QUEUED) of {listed} in {list_s * 1000:.0f} ms")
    jobs.CancelJob(js.CancelJobRequest(job_id=blocker, force=True))
    daemon.terminate()
    daemon.wait()


if __name__ == "__main__":
    main()
