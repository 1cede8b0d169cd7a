#!/usr/bin/env python3
"""The Python package `matbert` (client/python, installed by the build into build/python)
against a real matbertd: submit → watch → wait → checkpoints → download with the bytes of the
run directory; logs equal the log files; watch resumed across a SIGKILL and restart of matbertd
yields every stored event exactly once; a download with one byte flipped raises
ChecksumMismatch and leaves nothing; every exception type from its real cause; the sweep
example end to end.

Usage: test_python_client.py --daemon D --worker W --configs DIR --examples DIR
(runs on .venv's Python with PYTHONPATH=build/python)
"""
import argparse
import hashlib
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest


sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import matbertd_harness as harness  # noqa: E402
import matbert  # noqa: E402
from matbert.v1 import job_service_pb2  # noqa: E402

ARGS = None
TINY = {"model.hidden_size": 32, "model.num_hidden_layers": 1, "model.num_attention_heads": 2,
        "model.intermediate_size": 64, "matrix.m": 5, "matrix.n": 5, "training.batch_size": 8,
        "training.warmup_steps": 2, "training.log_every": 2, "training.eval_every": 0,
        "training.eval_samples": 16, "training.threads": 1}


def spec_path():
    return os.path.join(ARGS.configs, "bert_matcomp_cpu.toml")


class PythonClientTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="matbert_py_")
        self.daemons = []

    def tearDown(self):
        for d in self.daemons:
            d.stop()
        self.tmp.cleanup()

    def daemon(self, *extra, name="state"):
        d = harness.Daemon(os.path.join(self.tmp.name, name), harness.free_port(), *extra).start()
        self.daemons.append(d)
        return d

    def client(self, d, **kw):
        return matbert.Client(addr=f"127.0.0.1:{d.port}", **kw)

    def test_submit_watch_wait_checkpoints_download_logs(self):
        d = self.daemon()
        c = self.client(d)
        job = c.submit(spec_path(), overrides={**TINY, "training.steps": 8, "checkpoint.every": 4},
                       name="py-basic", priority=3)
        self.assertEqual((job.name, job.priority, job.kind), ("py-basic", 3, "train"))
        events = []
        final = job.wait(on_event=events.append)
        self.assertEqual(final.state, "SUCCEEDED")
        self.assertEqual(final.step, 8)
        seqs = [e.seq for e in events]
        self.assertEqual(seqs, list(range(1, len(seqs) + 1)))
        states = [e.state for e in events if isinstance(e, matbert.StateChanged)]
        self.assertEqual(states[0], "QUEUED")
        self.assertEqual(states[-3:], ["STARTING", "RUNNING", "SUCCEEDED"])
        train = [e for e in events if isinstance(e, matbert.MetricsReported) and e.kind == "train"]
        self.assertEqual([e.step for e in train], [2, 4, 6, 8])
        self.assertTrue(all("loss" in e.values and "grad_norm" in e.values for e in train))
        saved = [e.step for e in events if isinstance(e, matbert.CheckpointSaved)]
        self.assertEqual(saved, [4, 8])
        self.assertEqual([cp["step"] for cp in c.checkpoints(job.id)], [4, 8])
        self.assertIn(job.id, [j.id for j in c.list(states=["SUCCEEDED"])])

        dest = c.download(job.id, dest=os.path.join(self.tmp.name, "dl"))
        src = os.path.join(final.run_dir, "checkpoints", "step-0000008")
        self.assertEqual(sorted(os.listdir(dest)), sorted(os.listdir(src)))
        for f in os.listdir(src):
            with open(os.path.join(src, f), "rb") as a, open(os.path.join(dest, f), "rb") as b:
                self.assertEqual(hashlib.sha256(a.read()).digest(),
                                 hashlib.sha256(b.read()).digest(), f)
        with self.assertRaises(FileExistsError):
            c.download(job.id, dest=dest)
        self.assertEqual(c.download(job.id, step=4, dest=dest, overwrite=True), dest)

        lines = list(c.logs(job.id, rank=0))
        with open(os.path.join(final.run_dir, "logs", "rank-0.log")) as f:
            self.assertEqual([t for _, t in lines], f.read().splitlines())
        self.assertEqual({r for r, _ in lines}, {0})
        self.assertEqual(len(list(c.logs(job.id, tail=2))), 2)
        cluster = c.cluster()
        self.assertEqual(cluster["device_kind"], "cpu")
        self.assertEqual(len(cluster["devices"]), 2)

    def test_dict_spec_and_typed_overrides(self):
        d = self.daemon()
        c = self.client(d)
        import tomllib
        with open(spec_path(), "rb") as f:
            spec = tomllib.load(f)
        spec["job"]["name"] = "from-a-dict"
        job = c.submit(spec, overrides={**TINY, "training.steps": 2, "checkpoint.every": 0,
                                        "matrix.loss_masked_only": False,
                                        "training.schedule": "linear", "training.lr": 3e-4})
        final = job.wait()
        self.assertEqual(final.name, "from-a-dict")
        resolved = tomllib.loads(c.get(job.id).spec_toml)
        self.assertEqual(resolved["training"]["schedule"], "linear")
        self.assertEqual(resolved["training"]["lr"], 3e-4)
        self.assertIs(resolved["matrix"]["loss_masked_only"], False)
        self.assertEqual(resolved["model"]["hidden_size"], 32)

    def test_watch_resumes_across_a_daemon_restart_exactly_once(self):
        d = self.daemon("--heartbeat-timeout", "60")
        c = self.client(d)
        job = c.submit(spec_path(), overrides={**TINY, "training.steps": 400,
                                               "training.log_every": 5, "checkpoint.every": 100})
        got = []
        killed = threading.Event()

        def kill_and_restart():
            d.kill()
            time.sleep(1.0)
            d.start()
            killed.set()

        for event in c.watch(job.id):
            got.append(event)
            if (not killed.is_set() and isinstance(event, matbert.MetricsReported)
                    and event.step >= 50 and not hasattr(self, "_restarting")):
                self._restarting = threading.Thread(target=kill_and_restart)
                self._restarting.start()
        self._restarting.join()
        self.assertTrue(killed.is_set())
        seqs = [e.seq for e in got]
        self.assertEqual(seqs, list(range(1, len(seqs) + 1)), "gaps or repeats")
        self.assertEqual(got[-1].state, "SUCCEEDED")
        # The same events, all of them, as a fresh watch of the finished job reports them.
        again = list(c.watch(job.id))
        self.assertEqual(again, got)
        self.assertTrue(any(isinstance(e, matbert.MetricsReported) and e.step == 400
                            for e in got))

    def test_a_flipped_byte_in_a_download_raises_and_leaves_nothing(self):
        d = self.daemon()
        c = self.client(d)
        job = c.submit(spec_path(), overrides={**TINY, "training.steps": 2})
        job.wait()
        with harness.CorruptingDownloadProxy(d.port, job_service_pb2.CheckpointChunk) as proxy:
            dest = os.path.join(self.tmp.name, "corrupt")
            with self.assertRaises(matbert.ChecksumMismatch) as cm:
                matbert.Client(addr=f"127.0.0.1:{proxy.port}").download(job.id, dest=dest)
            self.assertIn("SHA-256", str(cm.exception))
            self.assertFalse(os.path.exists(dest))
            self.assertEqual([f for f in os.listdir(self.tmp.name) if "corrupt" in f], [])
            self.assertEqual(c.download(job.id, dest=dest), dest)  # straight from matbertd

    def test_every_exception_from_its_real_cause(self):
        tokens_file = os.path.join(self.tmp.name, "tokens")
        with open(tokens_file, "w") as f:
            f.write("s3cret-0123456789ab ops admin\nalice-0123456789abc alice user\n")
        d = self.daemon("--tokens-file", tokens_file, "--max-queued", "1", "--grace-period", "2")
        c = self.client(d, token="s3cret-0123456789ab")
        with self.assertRaises(matbert.JobNotFound) as cm:
            c.get("nosuchjob")
        self.assertIn("nosuchjob", str(cm.exception))
        with self.assertRaises(matbert.InvalidSpec) as cm:
            c.submit(spec_path(), overrides={"training.lr": 50})
        self.assertEqual(cm.exception.key, "training.lr")
        with self.assertRaises(matbert.InvalidSpec) as cm:
            c.submit(spec_path(), overrides={"training.no_such_key": 1})
        self.assertEqual(cm.exception.key, "training.no_such_key")
        with self.assertRaises(matbert.Unauthenticated):
            self.client(d).list()
        with self.assertRaises(matbert.Unauthenticated):
            self.client(d, token="wrong").list()
        closed = harness.free_port()
        with self.assertRaises(matbert.Unavailable) as cm:
            matbert.Client(addr=f"127.0.0.1:{closed}", timeout=2).list()
        self.assertEqual(cm.exception.addr, f"127.0.0.1:{closed}")
        self.assertIn("(from addr=)", str(cm.exception))
        self.assertNotIsInstance(cm.exception, matbert.DeadlineExceeded)
        # A daemon that is there but does not answer (stopped) is told apart from none.
        os.kill(d.proc.pid, signal.SIGSTOP)
        try:
            with self.assertRaises(matbert.DeadlineExceeded) as cm:
                matbert.Client(addr=f"127.0.0.1:{d.port}", timeout=1.5).list()
        finally:
            os.kill(d.proc.pid, signal.SIGCONT)
        self.assertIn(f"matbertd at 127.0.0.1:{d.port} (from addr=) did not answer within 1.5 s",
                      str(cm.exception))
        self.assertEqual(cm.exception.timeout, 1.5)
        os.environ["MATBERT_ADDR"] = f"127.0.0.1:{closed}"
        try:
            with self.assertRaises(matbert.Unavailable) as cm:
                matbert.Client(timeout=2).list()
            self.assertIn("(from MATBERT_ADDR)", str(cm.exception))
        finally:
            del os.environ["MATBERT_ADDR"]

        # Two slots: a 2-rank job holds both, the next waits, one more is past --max-queued 1.
        long = {**TINY, "training.steps": 100000, "checkpoint.every": 0}
        running = c.submit(spec_path(), overrides={**long, "job.max_restarts": 0}, gpus=2)
        queued = c.submit(spec_path(), overrides=long)
        with self.assertRaises(matbert.ResourceExhausted):
            c.submit(spec_path(), overrides=long)
        c.cancel(queued.id)
        with self.assertRaises(matbert.JobCancelled) as cm:
            queued.wait()
        self.assertEqual(cm.exception.job.state, "CANCELLED")
        for _ in range(600):
            if c.get(running.id).state == "RUNNING" and c.get(running.id).step > 0:
                break
            time.sleep(0.1)
        ranks = dict((rank, pid) for pid, rank in harness.job_processes(running.id))
        self.assertEqual(sorted(ranks), [0, 1])
        os.kill(ranks[1], signal.SIGKILL)
        with self.assertRaises(matbert.JobFailed) as cm:
            running.wait()
        self.assertEqual(cm.exception.job.state, "FAILED")
        self.assertIn("rank 1", cm.exception.reason)
        self.assertIsInstance(cm.exception, matbert.MatbertError)
        # Another user's job: alice sees it (owned by ops) but may not act on it.
        alice = self.client(d, token="alice-0123456789abc")
        self.assertEqual(alice.get(running.id).owner, "ops")
        self.assertEqual(alice.list(mine=True), [])
        with self.assertRaises(matbert.PermissionDenied) as cm:
            alice.cancel(running.id)
        self.assertIn(f"job {running.id} belongs to ops; user alice", str(cm.exception))

    def test_sweep_example_end_to_end(self):
        d = self.daemon()
        out = os.path.join(self.tmp.name, "sweep")
        env = dict(os.environ, MATBERT_ADDR=f"127.0.0.1:{d.port}")
        r = subprocess.run([sys.executable, os.path.join(ARGS.examples, "sweep.py"),
                            "--spec", spec_path(), "--lr", "1e-3", "3e-3", "--prec", "1", "2",
                            "--steps", "20", "--tiny", "--out", out],
                           env=env, capture_output=True, text=True, timeout=900)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        import csv
        with open(os.path.join(out, "results.csv")) as f:
            rows = list(csv.DictReader(f))
        self.assertEqual(sorted((float(r["lr"]), int(r["prec"])) for r in rows),
                         [(1e-3, 1), (1e-3, 2), (3e-3, 1), (3e-3, 2)])
        for row in rows:
            self.assertEqual(row["state"], "SUCCEEDED", row)
            self.assertGreater(float(row["eval_rmse"]), 0)
        with open(os.path.join(out, "results.png"), "rb") as f:
            self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n")
        best = [line for line in r.stdout.splitlines() if line.startswith("best:")]
        self.assertEqual(len(best), 1, r.stdout)
        self.assertIn("completed", r.stdout)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--daemon", required=True)
    parser.add_argument("--worker", required=True)
    parser.add_argument("--configs", required=True)
    parser.add_argument("--examples", required=True)
    ARGS, rest = parser.parse_known_args()
    harness.Daemon.binary, harness.Daemon.worker = ARGS.daemon, ARGS.worker
    harness.Daemon.spec_root = ARGS.configs
    unittest.main(argv=[sys.argv[0]] + rest, verbosity=2)
