#!/usr/bin/python3
"""matbert-worker train end to end, as real processes: resuming reproduces the uninterrupted
run's losses exactly, SIGTERM ends in one checkpoint and exit 0 and the run continues from
it, bad specs and missing or corrupt checkpoints are refused naming the key or file, and the
CPU config learns (masked RMSE clearly below the mean predictor).

With --libtorch libtorch-X.Y.Z, every run must also say (metrics.jsonl's summary) that its
trainer was built against LibTorch X.Y: ctest runs this file once per trainer build.

Usage: test_train.py --worker PATH --configs DIR [--learning-steps N] [--libtorch TAG]
"""
import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

ARGS = None

# A tiny model so that these runs take seconds; dropout on, so resuming must restore the RNG.
TINY = ["--model.hidden_size", "32", "--model.num_hidden_layers", "2",
        "--model.num_attention_heads", "2", "--model.intermediate_size", "64",
        "--model.hidden_dropout_prob", "0.1", "--matrix.m", "6", "--matrix.n", "6",
        "--matrix.r", "2", "--training.batch_size", "8", "--training.warmup_steps", "4",
        "--training.log_every", "1", "--training.eval_every", "0",
        "--training.eval_samples", "16", "--training.threads", "1"]


def train(config, run_dir, *extra, check=True):
    cmd = [ARGS.worker, "train", "--config", os.path.join(ARGS.configs, config), "--run-dir",
           run_dir, "--quiet", *extra]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if check and result.returncode != 0:
        raise AssertionError(f"{cmd} exited {result.returncode}: {result.stderr}")
    return result


def records(run_dir, kind):
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        return [r for r in map(json.loads, f) if r["kind"] == kind]


class TrainTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.root = self.tmp.name

    def tearDown(self):
        self.tmp.cleanup()

    def test_resume_reproduces_the_uninterrupted_losses(self):
        straight = os.path.join(self.root, "straight")
        resumed = os.path.join(self.root, "resumed")
        common = [*TINY, "--training.steps", "16", "--checkpoint.every", "8", "--checkpoint.keep", "5"]
        train("bert_matcomp_cpu.toml", straight, *common)
        train("bert_matcomp_cpu.toml", resumed, *common)
        # Resume the second run from its step-8 checkpoint and redo steps 9..16.
        train("bert_matcomp_cpu.toml", resumed, *common, "--checkpoint.load_step", "8")
        want = {r["step"]: r["loss"] for r in records(straight, "train")}
        got = [r for r in records(resumed, "train")][16:]
        self.assertEqual([r["step"] for r in got], list(range(9, 17)))
        for r in got:
            self.assertEqual(r["loss"], want[r["step"]], f"step {r['step']}")
        self.assertTrue(os.path.isfile(os.path.join(straight, "checkpoints", "step-0000016",
                                                    "model.safetensors")))
        self.assertTrue(os.path.isfile(os.path.join(straight, "config.toml")))
        if ARGS.libtorch:
            # "libtorch-2.15.0" -> "2.15": the trainer that ran is the build under test.
            want_line = ".".join(ARGS.libtorch.split("-", 1)[1].split(".")[:2])
            for run in (straight, resumed):
                ran = records(run, "summary")[-1]["libtorch"]
                self.assertEqual(".".join(ran.split(".")[:2]), want_line, run)

    def test_lamb_muon_masked_diffusion_and_hybrid_resume_exactly(self):
        for variant in (["--matrix.objective", "diffusion"], ["--training.optimizer", "lamb"],
                        ["--training.optimizer", "muon"],
                        ["--matrix.objective", "hybrid", "--matrix.causal_fraction", "0.5",
                         "--training.gradient_checkpointing", "true"]):
            name = variant[1]
            straight = os.path.join(self.root, name + "-straight")
            resumed = os.path.join(self.root, name + "-resumed")
            common = [*TINY, "--training.steps", "8", "--checkpoint.every", "4",
                      "--training.eval_every", "8", *variant]
            train("bert_matcomp_cpu.toml", straight, *common)
            train("bert_matcomp_cpu.toml", resumed, *common)
            train("bert_matcomp_cpu.toml", resumed, *common, "--checkpoint.load_step", "4")
            want = [(r["step"], r["loss"]) for r in records(straight, "train")]
            self.assertEqual([(r["step"], r["loss"]) for r in records(resumed, "train")][8:],
                             want[4:], name)
            self.assertGreater(records(straight, "eval")[-1]["eval_rmse"], 0)
            self.assertLess(want[-1][1], want[0][1] * 2, name)  # finite, not diverging

    def test_sigterm_writes_one_checkpoint_and_exits_zero(self):
        run = os.path.join(self.root, "run")
        proc = subprocess.Popen([ARGS.worker, "train", "--config",
                                 os.path.join(ARGS.configs, "bert_matcomp_cpu.toml"), "--run-dir",
                                 run, "--quiet", *TINY, "--training.steps", "100000",
                                 "--checkpoint.every", "0"], stderr=subprocess.PIPE, text=True)
        metrics = os.path.join(run, "metrics.jsonl")
        deadline = time.time() + 60
        while time.time() < deadline and not (os.path.exists(metrics) and records(run, "train")):
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
        self.assertEqual(proc.returncode, 0, stderr)
        stopped_at = records(run, "train")[-1]["step"]
        self.assertIn(f"stopped by signal after step {stopped_at}", stderr)
        self.assertEqual(os.listdir(os.path.join(run, "checkpoints")), [f"step-{stopped_at:07d}"])
        # The run continues from that checkpoint.
        train("bert_matcomp_cpu.toml", run, *TINY, "--training.steps", str(stopped_at + 3),
              "--checkpoint.load_step", "-1")
        steps = [r["step"] for r in records(run, "train")]
        self.assertEqual(steps[-3:], [stopped_at + 1, stopped_at + 2, stopped_at + 3])

    def test_every_shipped_config_runs_ten_steps(self):
        # Phases longer than the run shrink instead of refusing it. The shipped configs keep
        # their matrix, schedule and phases; the model, batch and threads are made small (a
        # BERT-base step on 2 CPU cores takes seconds, and the phases are what is tested).
        configs = sorted(f for f in os.listdir(ARGS.configs)
                         if f.endswith(".toml") and f != "matbertd.toml")
        self.assertGreaterEqual(len(configs), 3)
        for config in configs:
            run = os.path.join(self.root, config)
            train(config, run, "--training.steps", "10", "--training.batch_size", "2",
                  "--model.hidden_size", "32", "--model.num_hidden_layers", "1",
                  "--model.num_attention_heads", "2", "--model.intermediate_size", "64",
                  "--training.threads", "1",
                  "--training.log_every", "1", "--training.eval_every", "0",
                  "--training.eval_samples", "2", "--matrix.dataset", "\"\"",
                  "--checkpoint.every", "0")
            self.assertEqual([r["step"] for r in records(run, "train")], list(range(1, 11)),
                             config)
            with open(os.path.join(run, "config.toml")) as f:
                resolved = f.read()
            self.assertRegex(resolved, r"warmup_steps = ([0-9]|10)\n", config)

    def test_phases_longer_than_the_run_shrink_in_proportion_and_say_so(self):
        run = os.path.join(self.root, "run")
        result = train("bert_matcomp_cpu.toml", run, *TINY, "--training.steps", "10",
                       "--training.warmup_steps", "60", "--training.cooldown_steps", "40",
                       "--training.schedule", "constant")
        self.assertIn("note: training.warmup_steps 60 + training.cooldown_steps 40 are longer "
                      "than training.steps 10: shrunk in proportion to 6 + 4", result.stderr)
        # Warmup over 6 steps to lr = 1e-3, constant, then cooldown to 0 over the last 4:
        # lr(s) = 1e-3 * s / 6 for s <= 6, 1e-3 * (10 - s) / 4 after.
        lrs = [r["lr"] for r in records(run, "train")]
        want = [1e-3 * s / 6 for s in range(1, 7)] + [1e-3 * (10 - s) / 4 for s in range(7, 11)]
        self.assertEqual(len(lrs), 10)
        for step, (got, exp) in enumerate(zip(lrs, want), start=1):
            self.assertAlmostEqual(got, exp, delta=1e-12, msg=f"step {step}")

    def test_weight_average_follows_its_recurrence_and_resumes_exactly(self):
        # ema_k = d ema_(k-1) + (1 - d) theta_k with d = 0.5: halves are exact in float32, so
        # numpy's float32 arithmetic must give the checkpointed averages bit for bit.
        import numpy as np
        straight = os.path.join(self.root, "straight")
        common = [*TINY, "--training.steps", "6", "--training.ema_decay", "0.5",
                  "--checkpoint.every", "1", "--checkpoint.keep", "10",
                  "--training.eval_every", "3"]
        train("bert_matcomp_cpu.toml", straight, *common)

        def load(run, step, name):
            """A safetensors file of F32 tensors, read by its format (8-byte header length,
            JSON header, data) rather than by our reader."""
            with open(os.path.join(run, "checkpoints", f"step-{step:07d}", name), "rb") as f:
                data = f.read()
            size = int.from_bytes(data[:8], "little")
            header = json.loads(data[8:8 + size])
            header.pop("__metadata__", None)
            out = {}
            for tensor, info in header.items():
                self.assertEqual(info["dtype"], "F32", tensor)
                begin, end = info["data_offsets"]
                out[tensor] = np.frombuffer(data[8 + size + begin:8 + size + end],
                                            dtype="<f4").reshape(info["shape"])
            return out

        for step in range(2, 7):
            before, weights = load(straight, step - 1, "model_ema.safetensors"), \
                load(straight, step, "model.safetensors")
            after = load(straight, step, "model_ema.safetensors")
            self.assertEqual(sorted(after), sorted(weights))
            for name, average in after.items():
                want = np.float32(0.5) * before[name] + np.float32(0.5) * weights[name]
                np.testing.assert_array_equal(average, want, err_msg=f"{name} at step {step}")
        evals = records(straight, "eval")
        self.assertEqual([e["step"] for e in evals], [3, 6])
        self.assertTrue(all(e["eval_rmse_ema"] > 0 for e in evals), evals)
        self.assertNotEqual(evals[-1]["eval_rmse_ema"], evals[-1]["eval_rmse"])
        # Resumed from step 3 (steps 4-6 run again), the average continues exactly.
        resumed = os.path.join(self.root, "resumed")
        train("bert_matcomp_cpu.toml", resumed, *common)
        shutil.rmtree(os.path.join(resumed, "checkpoints", "step-0000006"))
        train("bert_matcomp_cpu.toml", resumed, *common, "--checkpoint.load_step", "3")
        for name, average in load(straight, 6, "model_ema.safetensors").items():
            np.testing.assert_array_equal(load(resumed, 6, "model_ema.safetensors")[name],
                                          average, err_msg=name)

    def test_bad_specs_name_the_key(self):
        spec = os.path.join(self.root, "bad.toml")
        with open(spec, "w") as f:
            f.write("[training]\nsteps = 10\nlearning_rate = 0.1\n")
        result = subprocess.run([ARGS.worker, "train", "--config", spec], capture_output=True,
                                text=True)
        self.assertEqual(result.returncode, 2)
        self.assertIn(f"{spec}:3: unknown key training.learning_rate", result.stderr)
        result = train("bert_matcomp_cpu.toml", os.path.join(self.root, "x"), "--training.lr", "-1",
                       check=False)
        self.assertEqual(result.returncode, 2)
        self.assertIn("--training.lr: training.lr must be a number in (0, 10], got -1", result.stderr)

    def test_missing_or_corrupt_checkpoint_is_an_error_naming_it(self):
        run = os.path.join(self.root, "run")
        result = train("bert_matcomp_cpu.toml", run, *TINY, "--checkpoint.load_step", "5", check=False)
        self.assertEqual(result.returncode, 2)
        self.assertIn("step-0000005", result.stderr)
        train("bert_matcomp_cpu.toml", run, *TINY, "--training.steps", "4")
        weights = os.path.join(run, "checkpoints", "step-0000004", "model.safetensors")
        with open(weights, "r+b") as f:
            f.truncate(os.path.getsize(weights) - 100)
        result = train("bert_matcomp_cpu.toml", run, *TINY, "--training.steps", "8",
                       "--checkpoint.load_step", "-1", check=False)
        self.assertNotEqual(result.returncode, 0)
        self.assertIn(weights, result.stderr)

    def test_offline_dataset_trains_and_mismatches_are_refused(self):
        data = os.path.join(self.root, "data")
        subprocess.run([ARGS.worker, "generate", "--m", "6", "--n", "6", "--r", "2",
                        "--n-samples", "1500", "--shards", "2", "--output-dir", data, "--quiet"],
                       check=True, capture_output=True)
        run = os.path.join(self.root, "offline")
        train("bert_matcomp_cpu.toml", run, *TINY, "--training.steps", "6",
              "--matrix.factor_mean", "0", "--matrix.dataset", data)
        self.assertEqual([r["step"] for r in records(run, "train")], list(range(1, 7)))
        # A spec that does not match the dataset is refused, naming both.
        result = train("bert_matcomp_cpu.toml", os.path.join(self.root, "bad"), *TINY,
                       "--matrix.factor_mean", "0", "--matrix.dataset", data,
                       "--matrix.prec", "1", check=False)
        self.assertEqual(result.returncode, 2, result.stderr)
        self.assertIn(f"matrix.dataset {data} holds 6x6 matrices with prec 2", result.stderr)
        # … and so is one whose factors are drawn otherwise.
        result = train("bert_matcomp_cpu.toml", os.path.join(self.root, "bad2"), *TINY,
                       "--matrix.factor_mean", "0", "--matrix.dataset", data,
                       "--matrix.factor_dist", "uniform", check=False)
        self.assertEqual(result.returncode, 2, result.stderr)
        self.assertIn("factors normal, mean 0; the spec asks for 6x6", result.stderr)
        self.assertIn("factors uniform, mean 0", result.stderr)
        # A dataset of uniform factors says so in its config.json and trains with that spec.
        uniform = os.path.join(self.root, "uniform")
        subprocess.run([ARGS.worker, "generate", "--m", "6", "--n", "6", "--r", "2",
                        "--factor-dist", "uniform", "--n-samples", "64", "--output-dir",
                        uniform, "--quiet"], check=True, capture_output=True)
        with open(os.path.join(uniform, "config.json")) as f:
            self.assertEqual(json.load(f)["distribution"], "uniform")
        train("bert_matcomp_cpu.toml", os.path.join(self.root, "uniform_run"), *TINY,
              "--training.steps", "2", "--matrix.factor_mean", "0", "--matrix.dataset", uniform,
              "--matrix.factor_dist", "uniform")

    def test_cpu_config_learns(self):
        run = os.path.join(self.root, "learn")
        # One thread: ctest runs the two LibTorch builds' train tests side by side on 2 cores,
        # and two threads each oversubscribe them (a fresh-clone run beside other work timed
        # out at 600 s).
        train("bert_matcomp_cpu.toml", run, "--training.steps", str(ARGS.learning_steps),
              "--training.eval_every", str(ARGS.learning_steps), "--training.threads", "1")
        final = records(run, "eval")[-1]
        # The mean of the observed entries is the baseline to beat, by a clear margin.
        self.assertLess(final["eval_rmse"], 0.8 * final["baseline_mean_rmse"], final)
        # The classical baselines, on the same entries, beat the mean too (ALS and
        # soft-impute see the low-rank structure; 8x8 rank 2 with 20% masked is easy for both).
        self.assertLess(final["baseline_soft_impute_rmse"], 0.8 * final["baseline_mean_rmse"],
                        final)
        self.assertLess(final["baseline_als_rmse"], 0.8 * final["baseline_mean_rmse"], final)
        losses = [r["loss"] for r in records(run, "train")]
        self.assertLess(sum(losses[-5:]) / 5, sum(losses[:5]) / 5)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--worker", required=True)
    parser.add_argument("--configs", required=True)
    parser.add_argument("--learning-steps", type=int, default=300)
    parser.add_argument("--libtorch", default="")
    ARGS, rest = parser.parse_known_args()
    unittest.main(argv=[sys.argv[0]] + rest, verbosity=2)
