#!/usr/bin/env python3
"""matbert.hf.BertForMatrixRegression and matbert.MatrixTokenizer (client/python) against our
trainer: from_pretrained on checkpoints written by the trainer's code gives the trainer's
logits within 1e-5 for post-LN, pre-LN, row/column-embedding and row-separator models;
MatrixTokenizer tokenizes the matrices of a `matbert-worker generate` dataset into exactly
its input_ids; complete() fills the missing entries with the model's outputs and keeps the
observed ones, and refuses a shape the checkpoint was not trained on.

Usage: test_python_hf.py --tool bert_parity_tool --worker W --configs DIR
(runs on .venv's Python with PYTHONPATH=build/python)
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import unittest

import numpy as np
import safetensors.numpy
import torch
import transformers

import matbert
from matbert.hf import BertForMatrixRegression

ARGS = None
transformers.logging.set_verbosity_error()
transformers.utils.logging.disable_progress_bar()
VARIANTS = {
    "post_ln_absolute": ["model.layer_norm_position=\"post\"",
                         "model.position_embedding_type=\"absolute\""],
    "pre_ln_2d": ["model.layer_norm_position=\"pre\"",
                  "model.position_embedding_type=\"absolute_2d\""],
    "post_ln_2d_row_sep": ["model.layer_norm_position=\"post\"", "matrix.row_sep=true",
                           "model.position_embedding_type=\"absolute_2d\"", "matrix.m=5",
                           "matrix.n=7"],
}


class PythonHfTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.dirs = {}
        for name, overrides in VARIANTS.items():
            out = os.path.join(cls.tmp.name, name)
            os.makedirs(out)
            subprocess.run([ARGS.tool, os.path.join(ARGS.configs, "bert_matcomp_cpu.toml"), out,
                            "model.num_hidden_layers=2", *overrides], check=True)
            cls.dirs[name] = out

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def test_logits_equal_the_trainers(self):
        for name, out in self.dirs.items():
            with self.subTest(name):
                model = BertForMatrixRegression.from_pretrained(out).eval()
                io = safetensors.numpy.load_file(os.path.join(out, "io.safetensors"))
                with torch.no_grad():
                    got = model(torch.from_numpy(io["input_ids"]))
                np.testing.assert_allclose(got.logits.numpy(), io["logits"], rtol=0, atol=1e-5)
                np.testing.assert_allclose(got.hidden_states.numpy(), io["hidden_states"],
                                           rtol=0, atol=1e-5)
                self.assertGreater(np.abs(io["logits"]).max(), 1e-3)

    def test_every_weight_is_loaded(self):
        for name, out in self.dirs.items():
            with self.subTest(name):
                _, info = BertForMatrixRegression.from_pretrained(out, output_loading_info=True)
                self.assertEqual(set(info["missing_keys"]), set(), name)
                self.assertEqual(set(info["unexpected_keys"]), set(), name)
                self.assertEqual(set(info["mismatched_keys"]), set(), name)

    def test_config_round_trips_the_extension_marker(self):
        model = BertForMatrixRegression.from_pretrained(self.dirs["pre_ln_2d"])
        saved = os.path.join(self.tmp.name, "saved")
        model.save_pretrained(saved)
        with open(os.path.join(saved, "config.json")) as f:
            config = json.load(f)
        self.assertEqual(config["layer_types"], ["matbert_pre_ln_absolute_2d"] * 2)
        with self.assertRaises(Exception):  # still refused by plain BertModel
            transformers.BertModel.from_pretrained(saved)
        again = BertForMatrixRegression.from_pretrained(saved).eval()
        ids = torch.randint(4, 800, (2, 66))
        with torch.no_grad():
            torch.testing.assert_close(again(ids).logits, model.eval()(ids).logits)

    def test_tokenizer_matches_generated_datasets(self):
        for row_sep in (False, True):
            with self.subTest(row_sep=row_sep):
                out = os.path.join(self.tmp.name, f"ds-{row_sep}")
                cmd = [ARGS.worker, "generate", "--m", "4", "--n", "6", "--r", "2",
                       "--n-samples", "50", "--prec", "1", "--output-dir", out, "--quiet"]
                subprocess.run(cmd + (["--row-sep"] if row_sep else []), check=True)
                subprocess.run([ARGS.worker, "inspect", out, "--dump", out + ".dump"],
                               check=True, stdout=subprocess.DEVNULL)
                with open(os.path.join(out, "tokenizer_config.json")) as f:
                    tok = matbert.MatrixTokenizer.from_config(json.load(f))
                length = tok.sequence_length(4, 6)
                ids = np.fromfile(out + ".dump.input_ids.i32", "<i4").reshape(50, length)
                values = np.fromfile(out + ".dump.values.f64", "<f8").reshape(50, length)
                matrices = values[:, tok.entry_positions(4, 6)].reshape(50, 4, 6)
                np.testing.assert_array_equal(tok.encode(matrices), ids)
                self.assertEqual(tok.vocab_size, 85 + (1 if row_sep else 0))
                decoded = tok.decode(ids[:, tok.entry_positions(4, 6)])
                clamped = np.clip(matrices.reshape(50, -1), -4, 4)  # n_sigma 4
                self.assertLessEqual(np.abs(decoded - clamped).max(), 0.05 + 1e-9)

    def test_complete_fills_missing_entries_with_the_models_outputs(self):
        model = BertForMatrixRegression.from_pretrained(self.dirs["post_ln_2d_row_sep"]).eval()
        rng = np.random.default_rng(5)
        truth = rng.standard_normal((3, 5, 7)) * 2.5
        observed = truth.copy()
        missing = rng.random(truth.shape) < 0.3
        observed[missing] = np.nan
        completed = model.complete(observed)
        np.testing.assert_array_equal(completed[~missing], truth[~missing])
        self.assertFalse(np.isnan(completed).any())
        # The same numbers by hand: scale by the observed entries' std, tokenize with
        # [MASK] for missing entries, run the model, scale back.
        tok = model.config.tokenizer()
        self.assertEqual((tok.prec, tok.row_sep), (2, True))
        for k in range(3):
            s = observed[k][~missing[k]].std()
            ids = torch.from_numpy(tok.encode(observed[k] / s))[None]
            self.assertEqual(int((ids == 1).sum()), int(missing[k].sum()))
            with torch.no_grad():
                logits = model(ids).logits[0, :, 0].double().numpy()
            want = logits[tok.entry_positions(5, 7)].reshape(5, 7) * s
            np.testing.assert_allclose(completed[k][missing[k]], want[missing[k]], rtol=1e-6)
        single = model.complete(observed[0])
        np.testing.assert_allclose(single, completed[0], rtol=1e-6)
        with self.assertRaises(ValueError) as cm:
            model.complete(np.zeros((4, 7)))
        self.assertIn("5×7", str(cm.exception))


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--tool", required=True)
    parser.add_argument("--worker", required=True)
    parser.add_argument("--configs", required=True)
    ARGS, rest = parser.parse_known_args()
    unittest.main(argv=[sys.argv[0]] + rest, verbosity=2)
