#!/usr/bin/python3
"""matbertd never waits on what it drives, end to end: a real matbertd whose executor is made
slow (--inject-executor-delay-file: every start, poll, fit check and ping sleeps, as with a
stopped Slurm controller), real worker processes, real gRPC from Python (Debian's grpcio,
stubs generated at test time) and the real matbertctl.

While every executor call sleeps: GetJob, ListJobs and GetCluster answer within 100 ms (p99
of 200 calls), a submission is accepted at once and waits QUEUED naming the executor, the
running job's rank heartbeats and reports, and no "did not run" warning is logged. Once the
executor answers again both jobs run to SUCCEEDED, each with one attempt. matbertctl tells a
daemon that does not answer (SIGSTOPped) from an address where nothing listens.

Usage: test_executor_stall.py --daemon PATH --worker PATH --ctl PATH --proto-dir DIR --configs DIR
"""
import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
import unittest

from matbertd_harness import Daemon, free_port, run_tests, v1

ARGS = None

TINY = ["model.hidden_size=32", "model.num_hidden_layers=2", "model.num_attention_heads=2",
        "model.intermediate_size=64", "matrix.m=6", "matrix.n=6", "matrix.r=2",
        "training.warmup_steps=2", "training.log_every=1", "training.eval_every=10",
        "training.eval_samples=8", "training.threads=1", "checkpoint.every=10",
        "job.max_restarts=0"]


def spec_text():
    with open(os.path.join(ARGS.configs, "bert_matcomp_cpu.toml")) as f:
        return f.read()


def timed(call):
    start = time.monotonic()
    result = call()
    return result, (time.monotonic() - start) * 1000


class ExecutorStallTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="matbertd_stall_")
        self.state = os.path.join(self.tmp.name, "state")
        self.daemon = None

    def tearDown(self):
        if self.daemon:
            os.kill(self.daemon.proc.pid, signal.SIGCONT)
            self.daemon.stop()
        self.tmp.cleanup()

    def submit(self, *overrides):
        request = v1["js"].SubmitJobRequest(spec_toml=spec_text(), overrides=TINY + list(overrides),
                                            source_name="bert_matcomp_cpu.toml")
        return self.daemon.jobs.SubmitJob(request, timeout=30).job_id

    def get(self, job_id):
        return self.daemon.jobs.GetJob(v1["js"].GetJobRequest(job_id=job_id), timeout=10)

    def wait_state(self, job_id, *states, timeout=180):
        names = [getattr(v1["job"], f"JOB_STATE_{s}") for s in states]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = self.get(job_id)
            if job.state in names:
                return job
            time.sleep(0.1)
        self.fail(f"job {job_id} is {v1['job'].JobState.Name(self.get(job_id).state)}, "
                  f"not {states}, after {timeout} s")

    def test_reads_submissions_and_ranks_go_on_while_every_executor_call_sleeps(self):
        delay = os.path.join(self.tmp.name, "executor-delay-ms")
        self.daemon = Daemon(self.state, free_port(), "--inject-executor-delay-file", delay,
                             "--executor-stall", "1", "--heartbeat-timeout", "20").start()
        first = self.submit(f"training.steps={ARGS.steps}", "job.name=first")
        running = self.wait_state(first, "RUNNING", timeout=120)
        self.assertEqual(len(running.attempts), 1)
        # From now on every call takes 4 s against a 1 s stall: the executor thread sleeps.
        with open(delay, "w") as f:
            f.write("4000")
        time.sleep(1.5)  # the first slow call has been in flight for longer than the stall

        latencies, second = {"GetJob": [], "ListJobs": [], "GetCluster": []}, None
        for i in range(200):
            _, ms = timed(lambda: self.get(first))
            latencies["GetJob"].append(ms)
            _, ms = timed(lambda: self.daemon.jobs.ListJobs(v1["js"].ListJobsRequest(), timeout=10))
            latencies["ListJobs"].append(ms)
            cluster, ms = timed(lambda: v1["csg"].ClusterServiceStub(
                self.daemon.channel).GetCluster(v1["cs"].GetClusterRequest(), timeout=10))
            latencies["GetCluster"].append(ms)
            if i == 20:
                second, ms = timed(lambda: self.submit("training.steps=10", "job.name=second"))
                self.assertLess(ms, 1000, "the submission waited for the stalled executor")
                queued = self.get(second)
                self.assertEqual(queued.state, v1["job"].JOB_STATE_QUEUED)
                self.assertIn("waits for the local executor, which has not answered for",
                              queued.reason)
                self.assertIn("not answered", cluster.executor_trouble)
            time.sleep(0.02)
        for method, ms in latencies.items():
            ms.sort()
            self.assertLess(ms[197], 100, f"p99 of {method} while the executor sleeps: {ms[-5:]}")

        # The rank kept heartbeating and reporting throughout: its steps arrived.
        self.assertGreater(self.get(first).step, 0)
        self.assertEqual(self.get(second).state, v1["job"].JOB_STATE_QUEUED,
                         "nothing starts while the executor does not answer")
        with open(delay, "w") as f:
            f.write("0")
        # Both end once the executor's answers (late as they are) come in; nothing twice.
        done = self.wait_state(first, "SUCCEEDED", "FAILED", timeout=300)
        self.assertEqual(v1["job"].JobState.Name(done.state), "JOB_STATE_SUCCEEDED", done.failure)
        self.assertEqual(len(done.attempts), 1)
        done = self.wait_state(second, "SUCCEEDED", "FAILED", timeout=300)
        self.assertEqual(v1["job"].JobState.Name(done.state), "JOB_STATE_SUCCEEDED", done.failure)
        self.assertEqual(len(done.attempts), 1)
        with open(os.path.join(self.state, "matbertd.out")) as f:
            log = f.read()
        self.assertNotIn("did not run for", log, "a slow executor is not matbertd not running")
        self.assertIn("local executor is slow or does not answer", log)

    def test_matbertctl_tells_a_daemon_that_does_not_answer_from_no_daemon(self):
        self.daemon = Daemon(self.state, free_port()).start()
        addr = f"127.0.0.1:{self.daemon.port}"
        os.kill(self.daemon.proc.pid, signal.SIGSTOP)
        start = time.monotonic()
        r = subprocess.run([ARGS.ctl, "--addr", addr, "status"], capture_output=True, text=True)
        waited = time.monotonic() - start
        os.kill(self.daemon.proc.pid, signal.SIGCONT)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn(f"matbertd at {addr} (from --addr) did not answer within 10 s", r.stderr)
        self.assertGreater(waited, 9)
        self.assertLess(waited, 20)

        nobody = f"127.0.0.1:{free_port()}"
        r = subprocess.run([ARGS.ctl, "--addr", nobody, "status"], capture_output=True, text=True)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn(f"cannot reach matbertd at {nobody}", r.stderr)
        self.assertNotIn("did not answer", r.stderr)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    for flag in ("--daemon", "--worker", "--ctl", "--proto-dir", "--configs"):
        parser.add_argument(flag, required=True)
    parser.add_argument("--steps", type=int, default=400, help="of the job that runs throughout")
    ARGS, rest = parser.parse_known_args()
    run_tests(ARGS, rest)
