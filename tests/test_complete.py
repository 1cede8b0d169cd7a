#!/usr/bin/env python3
"""`matbert-worker complete` on a real checkpoint: its completions equal what HuggingFace
`transformers` computes from the same checkpoint on the same tokens (the matrices tokenised
here, independently, by the rule of docs/dataset-format.md), the given entries come back
unchanged, the ALS baseline recovers a rank-1 matrix with one entry missing exactly, files
are read and written as numpy reads and writes them (.npy and CSV), and a matrix of another
shape, a ragged CSV or a checkpoint without its spec are refused naming them, and
`--eval-set` reproduces the run's own evaluation figures from the files it writes.

Usage: test_complete.py --worker PATH --configs DIR
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # noqa: E402
import safetensors.torch  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402

ARGS = None
transformers.logging.set_verbosity_error()
M, N, PREC, N_SIGMA = 5, 6, 2, 4

# A plain BERT (post-LN, absolute positions) that transformers can load, rank-1 data.
TINY = ["--model.hidden_size", "32", "--model.num_hidden_layers", "2",
        "--model.num_attention_heads", "4", "--model.intermediate_size", "64",
        "--model.layer_norm_position", "post", "--model.position_embedding_type", "absolute",
        "--matrix.m", str(M), "--matrix.n", str(N), "--matrix.r", "1", "--matrix.prec",
        str(PREC), "--matrix.n_sigma", str(N_SIGMA), "--training.batch_size", "8",
        "--training.steps", "12", "--training.log_every", "4", "--training.eval_every", "0",
        "--training.eval_samples", "8", "--training.threads", "1", "--checkpoint.every", "12",
        "--training.ema_decay", "0.9"]


def complete(*args, check=True):
    result = subprocess.run([ARGS.worker, "complete", *args], capture_output=True, text=True,
                            timeout=300)
    if check and result.returncode != 0:
        raise AssertionError(f"complete {args} exited {result.returncode}: {result.stderr}")
    return result


def tokens(matrix):
    """Token ids of one matrix with NaN entries as [MASK], by docs/dataset-format.md."""
    bins = 4 + np.round((np.clip(matrix, -N_SIGMA, N_SIGMA) + N_SIGMA) * 10 ** PREC)
    ids = np.where(np.isnan(matrix), 1, np.nan_to_num(bins)).astype(np.int64).reshape(-1)
    return np.concatenate([[2], ids, [3]])


class CompleteTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.root = cls.tmp.name
        run = os.path.join(cls.root, "run")
        subprocess.run([ARGS.worker, "train", "--config",
                        os.path.join(ARGS.configs, "bert_matcomp_cpu.toml"), "--run-dir", run,
                        "--quiet", *TINY], check=True, capture_output=True, timeout=600)
        cls.checkpoint = os.path.join(run, "checkpoints", "step-0000012")

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def test_completions_equal_transformers_on_the_same_tokens(self):
        rng = np.random.default_rng(5)
        matrices = 3.0 * rng.standard_normal((4, M, N))
        matrices[rng.random(matrices.shape) < 0.3] = np.nan
        path = os.path.join(self.root, "batch.npy")
        np.save(path, matrices)
        out = complete("--checkpoint", self.checkpoint, path, "--threads", "1")
        written = os.path.join(self.root, "batch.completed.npy")
        self.assertEqual(out.stdout.strip(), written)
        got = np.load(written)
        self.assertEqual(got.shape, matrices.shape)
        self.assertEqual(got.dtype, np.float64)
        given = ~np.isnan(matrices)
        np.testing.assert_array_equal(got[given], matrices[given])  # bit for bit
        self.assertFalse(np.isnan(got).any())

        # Independently: scale by the observed entries' std, tokenise, run transformers' BERT
        # and the regression head, scale back.
        model = transformers.BertModel.from_pretrained(self.checkpoint, add_pooling_layer=False,
                                                       attn_implementation="eager").eval()
        head = safetensors.torch.load_file(os.path.join(self.checkpoint, "model.safetensors"))
        for k, matrix in enumerate(matrices):
            scale = np.std(matrix[~np.isnan(matrix)])
            ids = torch.from_numpy(tokens(matrix / scale))[None]
            with torch.no_grad():
                hidden = model(input_ids=ids, attention_mask=torch.ones_like(ids))
                logits = hidden.last_hidden_state @ head["regressor.weight"].T + \
                    head["regressor.bias"]
            want = logits[0, 1:-1, 0].double().numpy().reshape(M, N) * scale
            missing = np.isnan(matrix)
            np.testing.assert_allclose(got[k][missing], want[missing], rtol=0, atol=1e-4 * scale)
        self.assertIn("4 matrices 5x6", out.stderr)

    def test_als_recovers_a_rank_one_matrix_missing_one_entry(self):
        u, v = np.array([1.0, 2.0, -1.0, 0.5, 1.5]), np.array([1.5, -1.0, 2.0, 1.0, 0.5, -2.0])
        truth = np.outer(u, v)
        lines = [",".join("" if (i, j) == (1, 2) else repr(float(truth[i, j])) for j in range(N))
                 for i in range(M)]
        path = os.path.join(self.root, "one.csv")
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        outdir = os.path.join(self.root, "out")
        os.makedirs(outdir)
        complete("--checkpoint", self.checkpoint, path, "--baselines", "--output-dir", outdir)
        als = np.loadtxt(os.path.join(outdir, "one.als.csv"), delimiter=",")
        self.assertAlmostEqual(als[1, 2], truth[1, 2], delta=1e-6)
        model = np.loadtxt(os.path.join(outdir, "one.completed.csv"), delimiter=",")
        mean = np.loadtxt(os.path.join(outdir, "one.mean.csv"), delimiter=",")
        soft = np.loadtxt(os.path.join(outdir, "one.soft_impute.csv"), delimiter=",")
        given = np.ones((M, N), bool)
        given[1, 2] = False
        for completed in (model, mean, soft, als):
            np.testing.assert_array_equal(completed[given], truth[given])  # shortest exact form
        self.assertAlmostEqual(mean[1, 2], truth[given].mean(), delta=1e-12)

    def test_ema_completes_with_the_averaged_weights(self):
        rng = np.random.default_rng(8)
        matrix = rng.standard_normal((M, N))
        matrix[rng.random(matrix.shape) < 0.3] = np.nan
        path = os.path.join(self.root, "ema_input.npy")
        np.save(path, matrix)
        outputs = {}
        for flags in ([], ["--ema"]):
            outdir = os.path.join(self.root, "ema" if flags else "raw")
            os.makedirs(outdir)
            complete("--checkpoint", self.checkpoint, path, "--output-dir", outdir, *flags)
            outputs[bool(flags)] = np.load(os.path.join(outdir, "ema_input.completed.npy"))
        missing = np.isnan(matrix)
        np.testing.assert_array_equal(outputs[True][~missing], matrix[~missing])
        self.assertTrue((outputs[True][missing] != outputs[False][missing]).all())
        # A checkpoint whose average went missing is damaged, and says which file.
        bare = os.path.join(self.root, "bare_checkpoint")
        shutil.copytree(self.checkpoint, bare)
        os.remove(os.path.join(bare, "model_ema.safetensors"))
        r = complete("--checkpoint", bare, path, "--ema", check=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn(f"{bare}/model_ema.safetensors is missing (SHA256SUMS lists it)", r.stderr)
        # One written without an average (its SHA256SUMS does not list one) says it has none.
        sums = os.path.join(bare, "SHA256SUMS")
        with open(sums) as f:
            lines = [l for l in f if not l.rstrip().endswith("  model_ema.safetensors")]
        with open(sums, "w") as f:
            f.writelines(lines)
        r = complete("--checkpoint", bare, path, "--ema", check=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn(f"checkpoint {bare} has no model_ema.safetensors", r.stderr)

    def test_the_eval_set_completes_to_the_runs_own_eval_figures(self):
        outdir = os.path.join(self.root, "eval_set")
        os.makedirs(outdir)
        r = complete("--checkpoint", self.checkpoint, "--eval-set", "--baselines",
                     "--output-dir", outdir)
        load = lambda what: np.load(os.path.join(outdir, f"eval_set{what}.npy"))  # noqa: E731
        observed, truth = load(""), load(".truth")
        self.assertEqual(observed.shape, (8, M, N))  # training.eval_samples matrices
        missing = np.isnan(observed)
        self.assertTrue(0.05 < missing.mean() < 0.4, missing.mean())  # mask_prob 0.2
        # Observed entries are the bin centres the model saw: the truth to prec digits,
        # clamped to ±n_sigma.
        np.testing.assert_allclose(observed[~missing], np.clip(truth, -N_SIGMA, N_SIGMA)[~missing],
                                   atol=0.5 * 10 ** -PREC + 1e-12)
        with open(os.path.join(os.path.dirname(os.path.dirname(self.checkpoint)),
                               "metrics.jsonl")) as f:
            evals = [json.loads(line) for line in f if '"kind":"eval"' in line]
        want = [e for e in evals if e["step"] == 12][0]
        self.assertEqual(want["eval_entries"], missing.sum())
        figures = {}
        for what, key in ((".completed", "eval_rmse"), (".mean", "baseline_mean_rmse"),
                          (".soft_impute", "baseline_soft_impute_rmse")):
            done = load(what)
            np.testing.assert_array_equal(done[~missing], observed[~missing])
            rmse = float(np.sqrt(np.mean((done - truth)[missing] ** 2)))
            # Computed here from the files: the trainer's own evaluation of the same step.
            self.assertAlmostEqual(rmse, want[key], delta=1e-6 * want[key], msg=what)
            figures[what] = rmse
        self.assertIn(f"masked RMSE: model {figures['.completed']:.4f} | mean "
                      f"{figures['.mean']:.4f}", r.stdout)
        # With --ema, the averaged weights' figure.
        ema_dir = os.path.join(self.root, "eval_set_ema")
        os.makedirs(ema_dir)
        r = complete("--checkpoint", self.checkpoint, "--eval-set", "--ema", "--quiet",
                     "--output-dir", ema_dir)
        self.assertEqual(r.stdout, f"masked RMSE: model {want['eval_rmse_ema']:.4f}\n")
        # Files and --eval-set together are a usage error.
        r = complete("--checkpoint", self.checkpoint, "--eval-set", "x.npy", check=False)
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("not both", r.stderr)

    def test_the_run_plots_as_a_png(self):
        script = os.path.join(os.path.dirname(ARGS.configs), "scripts", "plot_metrics.py")
        out = os.path.join(self.root, "curves.png")
        run = os.path.dirname(os.path.dirname(self.checkpoint))
        subprocess.run([sys.executable, script, run, "--out", out], check=True,
                       capture_output=True, timeout=120)
        with open(out, "rb") as f:
            self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n")
        r = subprocess.run([sys.executable, script, os.path.join(self.root, "nope"), "--out", out],
                           capture_output=True, text=True)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("cannot read", r.stderr)

    def test_wrong_shapes_bad_files_and_a_missing_spec_are_named(self):
        small = os.path.join(self.root, "small.csv")
        with open(small, "w") as f:
            f.write("1,2,3,4\n5,,7,8\n9,10,11,12\n13,14,15,16\n")
        r = complete("--checkpoint", self.checkpoint, small, check=False)
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn(f"{small} holds 4x4 matrices; checkpoint {self.checkpoint} was trained on "
                      "5x6", r.stderr)
        ragged = os.path.join(self.root, "ragged.csv")
        with open(ragged, "w") as f:
            f.write("1,2,3\n4,5\n")
        r = complete("--checkpoint", self.checkpoint, ragged, check=False)
        self.assertEqual(r.returncode, 2)
        self.assertIn(f"{ragged}: line 2 has 2 values; the first row has 3", r.stderr)
        word = os.path.join(self.root, "word.csv")
        with open(word, "w") as f:
            f.write("1,two\n")
        r = complete("--checkpoint", self.checkpoint, word, check=False)
        self.assertIn(f"{word}: line 1, column 2: \"two\" is not a number", r.stderr)
        # A downloaded checkpoint carries its spec; without it, both places are named.
        copy = os.path.join(self.root, "downloaded")
        shutil.copytree(self.checkpoint, copy)
        np.save(os.path.join(self.root, "x.npy"), np.full((M, N), 0.5) + np.eye(M, N))
        complete("--checkpoint", copy, os.path.join(self.root, "x.npy"))
        os.remove(os.path.join(copy, "spec.toml"))
        r = complete("--checkpoint", copy, os.path.join(self.root, "x.npy"), check=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn(f"cannot find the job spec of checkpoint {copy}: neither {copy}/spec.toml",
                      r.stderr)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--worker", required=True)
    parser.add_argument("--configs", required=True)
    ARGS, rest = parser.parse_known_args()
    unittest.main(argv=[sys.argv[0]] + rest, verbosity=2)
