#!/usr/bin/python3
"""Data-parallel training with real ranks (real processes, Gloo over loopback): 2 ranks x
batch B end equal to 1 rank x batch 2B; a SIGKILLed rank makes the other exit non-zero
naming it; SIGTERM to one rank gives one checkpoint and exit 0 on every rank, and the run
continues on 1 rank; a rank that never arrives is named; scripts/train_bert.sh trains.

Usage: test_distributed.py --worker PATH --configs DIR --launcher scripts/train_bert.sh
"""
import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "reference"))
import bert_reference  # noqa: E402

ARGS = None
TINY = ["--model.hidden_size", "32", "--model.num_hidden_layers", "2",
        "--model.num_attention_heads", "2", "--model.intermediate_size", "64",
        "--matrix.m", "6", "--matrix.n", "6", "--matrix.r", "2", "--training.warmup_steps", "2",
        "--training.log_every", "1", "--training.eval_every", "0", "--training.eval_samples", "8",
        "--training.threads", "1", "--training.collective_timeout", "20",
        "--training.bucket_mb", "0.01"]  # several buckets even for this tiny model


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_ranks(run_dir, world, *extra, ranks=None, port=None):
    port = port or free_port()
    procs = []
    for rank in (range(world) if ranks is None else ranks):
        env = dict(os.environ, RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world),
                   LOCAL_WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
        procs.append(subprocess.Popen(
            [ARGS.worker, "train", "--config", os.path.join(ARGS.configs, "bert_matcomp_cpu.toml"),
             "--run-dir", run_dir, "--quiet", *TINY, *extra],
            env=env, stderr=subprocess.PIPE, text=True))
    return procs


def train_alone(run_dir, *extra):
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE")}
    subprocess.run([ARGS.worker, "train", "--config", os.path.join(ARGS.configs,
                    "bert_matcomp_cpu.toml"), "--run-dir", run_dir, "--quiet", *TINY, *extra],
                   env=env, check=True, capture_output=True, timeout=300)


def records(run_dir, kind):
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        return [r for r in map(json.loads, f) if r["kind"] == kind]


def wait_for_first_step(run_dir, timeout=60):
    """Returns once rank 0 has logged a training step (or the timeout passed)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if os.path.exists(os.path.join(run_dir, "metrics.jsonl")) and records(run_dir, "train"):
            return
        time.sleep(0.1)


def weights(run_dir, step):
    path = os.path.join(run_dir, "checkpoints", f"step-{step:07d}", "model.safetensors")
    return bert_reference.read_safetensors(path)[0]


class DistributedTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.root = self.tmp.name

    def tearDown(self):
        self.tmp.cleanup()

    def wait_all(self, procs, timeout=300):
        out = []
        for p in procs:
            _, err = p.communicate(timeout=timeout)
            out.append((p.returncode, err))
        return out

    def test_two_ranks_equal_one_rank_with_twice_the_batch(self):
        one = os.path.join(self.root, "one")
        two = os.path.join(self.root, "two")
        train_alone(one, "--training.batch_size", "16", "--training.steps", "6")
        for rc, err in self.wait_all(start_ranks(two, 2, "--training.batch_size", "8",
                                                 "--training.steps", "6")):
            self.assertEqual(rc, 0, err)
        a, b = weights(one, 6), weights(two, 6)
        self.assertEqual(set(a), set(b))
        moved = 0
        for name in a:
            if name.endswith("attention.self.key.bias"):
                # Softmax ignores a shift of the scores, so this bias's gradient is zero up to
                # rounding, and Adam turns that noise into steps: it only has to stay ~0.
                self.assertLess(np.abs(b[name]).max(), 1e-6, name)
                continue
            scale = max(np.abs(a[name]).max(), 1e-12)
            self.assertLessEqual(np.abs(a[name] - b[name]).max() / scale, 1e-5, name)
            moved += np.abs(a[name]).sum()
        self.assertGreater(moved, 0)
        la = [r["loss"] for r in records(one, "train")]
        lb = [r["loss"] for r in records(two, "train")]
        np.testing.assert_allclose(la, lb, rtol=1e-5)
        self.assertEqual(records(two, "train")[0]["world_size"], 2)

    def test_sigkill_of_a_rank_stops_the_other_naming_it(self):
        run = os.path.join(self.root, "run")
        procs = start_ranks(run, 2, "--training.steps", "100000")
        wait_for_first_step(run)
        procs[1].send_signal(signal.SIGKILL)
        start = time.time()
        _, err = procs[0].communicate(timeout=60)
        procs[1].communicate()
        self.assertNotEqual(procs[0].returncode, 0)
        self.assertLess(time.time() - start, 25)  # within the 20 s collective timeout
        self.assertIn("rank 1", err)
        self.assertIn("at step", err)

    def test_sigterm_on_one_rank_stops_all_with_one_checkpoint(self):
        run = os.path.join(self.root, "run")
        procs = start_ranks(run, 2, "--training.steps", "100000", "--checkpoint.every", "0")
        wait_for_first_step(run)
        procs[1].send_signal(signal.SIGTERM)
        for rc, err in self.wait_all(procs, timeout=60):
            self.assertEqual(rc, 0, err)
        stopped = records(run, "train")[-1]["step"]
        self.assertEqual(os.listdir(os.path.join(run, "checkpoints")), [f"step-{stopped:07d}"])
        # The checkpoint written by 2 ranks resumes on 1.
        train_alone(run, "--training.steps", str(stopped + 2), "--checkpoint.load_step", "-1")
        steps = [r["step"] for r in records(run, "train")]
        self.assertEqual(steps[-2:], [stopped + 1, stopped + 2])
        self.assertEqual(records(run, "train")[-1]["world_size"], 1)

    def test_missing_rank_is_named(self):
        procs = start_ranks(os.path.join(self.root, "run"), 2, "--training.collective_timeout",
                            "2", ranks=[0])
        (rc, err), = self.wait_all(procs, timeout=60)
        self.assertNotEqual(rc, 0)
        self.assertIn("rank(s) 1 of 2 never arrived", err)

    def test_launcher_trains_the_cpu_config(self):
        run = os.path.join(self.root, "launched")
        env = dict(os.environ, NGPU="2", RUN_DIR=run, WORKER=os.path.abspath(ARGS.worker),
                   CONFIG_FILE=os.path.join(ARGS.configs, "bert_matcomp_cpu.toml"))
        result = subprocess.run([ARGS.launcher, "--training.steps", "20", "--training.warmup_steps",
                                 "5", "--training.eval_every", "20", "--quiet"], env=env,
                                capture_output=True, text=True, timeout=300)
        self.assertEqual(result.returncode, 0, result.stderr)
        train = records(run, "train")
        self.assertEqual(train[-1]["step"], 20)
        self.assertEqual(train[-1]["world_size"], 2)
        self.assertEqual(len(records(run, "eval")), 1)
        self.assertTrue(os.path.isdir(os.path.join(run, "checkpoints", "step-0000020")))
        # --run-dir among the arguments names the run directory (no clash with the launcher's
        # own): here it resumes the run above for 4 more steps on both ranks.
        del env["RUN_DIR"]
        result = subprocess.run([ARGS.launcher, "--run-dir", run, "--training.steps", "24",
                                 "--training.warmup_steps", "5", "--training.eval_every", "0",
                                 "--training.log_every", "1",
                                 "--checkpoint.load_step", "-1", "--quiet"], env=env,
                                capture_output=True, text=True, timeout=300)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual([r["step"] for r in records(run, "train")][-4:], [21, 22, 23, 24])


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--worker", required=True)
    parser.add_argument("--configs", required=True)
    parser.add_argument("--launcher", required=True)
    ARGS, rest = parser.parse_known_args()
    unittest.main(argv=[sys.argv[0]] + rest, verbosity=2)
