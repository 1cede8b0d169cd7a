#!/usr/bin/python3
"""matbert-worker generate as a user meets it: errors and exit codes for bad input, refusal
to overwrite, byte-identical output for any --threads, nothing complete-looking after a
SIGKILL, and peak memory that does not grow with --n-samples.

Usage: test_generate_cli.py --worker PATH
"""
import argparse
import filecmp
import os
import signal
import subprocess
import sys
import tempfile
import time
import unittest

ARGS = None


def run(*args, cwd=None):
    return subprocess.run([ARGS.worker, *args], capture_output=True, text=True, cwd=cwd)


def tree_bytes(root):
    """{relative path: bytes} of every file under root."""
    out = {}
    for dirpath, _, files in os.walk(root):
        for name in files:
            path = os.path.join(dirpath, name)
            with open(path, "rb") as f:
                out[os.path.relpath(path, root)] = f.read()
    return out


class GenerateCliTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.root = self.tmp.name

    def tearDown(self):
        self.tmp.cleanup()

    def assertUsageError(self, result, *fragments):
        self.assertEqual(result.returncode, 2, result.stderr)
        lines = result.stderr.strip().splitlines()
        self.assertEqual(len(lines), 1, result.stderr)
        for fragment in fragments:
            self.assertIn(fragment, lines[0])

    def test_bad_input_names_the_flag_and_range(self):
        out = os.path.join(self.root, "x")
        cases = [
            (["--r", "0"], "--r must be in 1..min(m, n) = 20, got 0"),
            (["--r", "21"], "--r must be in 1..min(m, n) = 20, got 21"),
            (["--m", "4", "--r", "5"], "--r must be in 1..min(m, n) = 4, got 5"),
            (["--m", "0"], "--m must be in 1..4096, got 0"),
            (["--m", "5000", "--r", "2"], "--m must be in 1..4096, got 5000"),
            (["--n", "-3"], "--n must be in 1..4096, got -3"),
            (["--prec", "7"], "--prec must be in 0..6, got 7"),
            (["--prec", "-1"], "--prec must be in 0..6, got -1"),
            (["--n-samples", "0"], "--n-samples must be >= 1, got 0"),
            (["--n-sigma", "0"], "--n-sigma must be in 1..100, got 0"),
            (["--shards", "0"], "--shards must be in 1..n-samples = 1000, got 0"),
            (["--threads", "0"], "--threads must be in 1..1024, got 0"),
            (["--m", "abc"], "--m"),
            (["--bogus"], "--bogus"),
        ]
        for flags, message in cases:
            with self.subTest(flags=flags):
                self.assertUsageError(run("generate", "--output-dir", out, *flags), message)
        self.assertFalse(os.path.exists(out))

    def test_unwritable_output_directory(self):
        blocker = os.path.join(self.root, "file")
        with open(blocker, "w") as f:
            f.write("not a directory")
        self.assertUsageError(run("generate", "--n-samples", "5", "--output-dir",
                                  os.path.join(blocker, "ds")), "--output-dir", blocker)
        if os.path.isdir("/proc/self"):  # writable by nobody, root included
            self.assertUsageError(run("generate", "--n-samples", "5", "--output-dir",
                                      "/proc/matbert_ds"), "--output-dir", "/proc")

    def test_existing_output_needs_overwrite(self):
        out = os.path.join(self.root, "ds")
        self.assertEqual(run("generate", "--n-samples", "5", "--output-dir", out, "-q").returncode, 0)
        before = tree_bytes(out)
        self.assertUsageError(run("generate", "--n-samples", "5", "--seed", "1", "--output-dir", out),
                              "already exists", "--overwrite")
        self.assertEqual(tree_bytes(out), before)
        result = run("generate", "--n-samples", "5", "--seed", "1", "--output-dir", out, "--overwrite")
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertNotEqual(tree_bytes(out), before)
        self.assertEqual(sorted(os.listdir(self.root)), ["ds"])

    def test_default_output_dir_and_summary(self):
        result = run("generate", "--m", "6", "--n", "4", "--r", "2", "--n-samples", "50",
                     "--seed", "7", cwd=self.root)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertTrue(os.path.isdir(os.path.join(self.root,
                                                   "data/generated/matrix_m6_n4_r2_seed7/train")))
        for name in ("nuclear_norm", "spectral_gap", "mean", "variance", "trace", "range"):
            self.assertIn(name, result.stdout)
        self.assertIn("wrote 50 matrices", result.stdout)

    def test_output_is_identical_for_any_thread_count(self):
        trees = []
        for threads in ("1", "2", "5"):
            out = os.path.join(self.root, "t" + threads)
            result = run("generate", "--m", "11", "--n", "8", "--r", "3", "--n-samples", "3100",
                         "--shards", "2", "--row-sep", "--threads", threads, "--output-dir", out, "-q")
            self.assertEqual(result.returncode, 0, result.stderr)
            trees.append(tree_bytes(out))
        self.assertEqual(len(trees[0]), 8)
        self.assertEqual(trees[0], trees[1])
        self.assertEqual(trees[0], trees[2])

    def test_sigkill_leaves_nothing_that_looks_complete(self):
        out = os.path.join(self.root, "big")
        proc = subprocess.Popen([ARGS.worker, "generate", "--n-samples", "20000000", "--threads",
                                 "1", "--output-dir", out, "-q"])
        deadline = time.time() + 20
        staging = []
        while time.time() < deadline and not staging:  # wait until it is writing
            staging = [n for n in os.listdir(self.root) if n.startswith(".big.tmp-")]
            time.sleep(0.05)
        time.sleep(0.3)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        self.assertTrue(staging, "generator never created its staging directory")
        self.assertFalse(os.path.exists(out))
        self.assertEqual(os.listdir(self.root), staging)  # only the hidden staging dir
        # The next run of the same target removes the dead run's staging directory.
        result = run("generate", "--n-samples", "10", "--output-dir", out, "-q")
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(os.listdir(self.root), ["big"])

    def test_peak_memory_does_not_grow_with_samples(self):
        def peak_rss_kib(samples):
            out = os.path.join(self.root, f"rss{samples}")
            proc = subprocess.Popen([ARGS.worker, "generate", "--m", "10", "--n", "10", "--r", "2",
                                     "--n-samples", str(samples), "--threads", "1",
                                     "--output-dir", out, "-q"], stdout=subprocess.DEVNULL)
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
            self.assertEqual(proc.returncode, 0)
            return usage.ru_maxrss

        small, large = peak_rss_kib(50000), peak_rss_kib(400000)
        self.assertLess(large, small * 1.10, f"peak RSS {small} KiB at 50k, {large} KiB at 400k")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--worker", required=True)
    ARGS, rest = parser.parse_known_args()
    unittest.main(argv=[sys.argv[0]] + rest, verbosity=2)
