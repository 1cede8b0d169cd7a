#!/usr/bin/python3
"""Our LibTorch BertForMatrixRegression against an independent Python implementation on the
same weights (read from model.safetensors by json + numpy), for post-LN and pre-LN, with and
without row/column embeddings and row separators; and model.safetensors against the weights
as they were in memory.

Usage: test_bert_parity.py --tool PATH --spec configs/bert_matcomp_cpu.toml
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import unittest

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "reference"))
import bert_reference  # noqa: E402

ARGS = None
VARIANTS = {
    "post_ln_absolute": ["model.layer_norm_position=\"post\"", "model.position_embedding_type=\"absolute\""],
    "pre_ln_2d": ["model.layer_norm_position=\"pre\"", "model.position_embedding_type=\"absolute_2d\""],
    "post_ln_2d_row_sep": ["model.layer_norm_position=\"post\"", "matrix.row_sep=true",
                           "model.position_embedding_type=\"absolute_2d\"", "matrix.m=5", "matrix.n=7"],
}


class BertParityTest(unittest.TestCase):
    def run_variant(self, name, overrides):
        with tempfile.TemporaryDirectory() as out:
            subprocess.run([ARGS.tool, ARGS.spec, out, "model.num_hidden_layers=2", *overrides],
                           check=True)
            weights, meta = bert_reference.read_safetensors(os.path.join(out, "model.safetensors"))
            self.assertEqual(meta, {"format": "pt"})
            with open(os.path.join(out, "config.json")) as f:
                config = json.load(f)
            # The file equals the weights as they were in memory, byte for byte.
            raw = np.fromfile(os.path.join(out, "weights.bin"), dtype=np.float32)
            with open(os.path.join(out, "weights.json")) as f:
                index = json.load(f)
            self.assertEqual(sorted(e["name"] for e in index), sorted(weights))
            for e in index:
                count = int(np.prod(e["shape"])) if e["shape"] else 1
                mem = raw[e["offset"] // 4:e["offset"] // 4 + count].reshape(e["shape"])
                np.testing.assert_array_equal(weights[e["name"]], mem, err_msg=e["name"])
            io, _ = bert_reference.read_safetensors(os.path.join(out, "io.safetensors"))
            w = {k: torch.from_numpy(v.copy()) for k, v in weights.items()}
            ids = torch.from_numpy(io["input_ids"].copy())
            with torch.no_grad():
                expected = bert_reference.forward(w, config, ids).numpy()
            got = io["logits"]
            self.assertEqual(got.shape, expected.shape)
            np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5, err_msg=name)
            self.assertGreater(np.abs(got).max(), 1e-3)  # not trivially zero

    def test_post_ln_absolute(self):
        self.run_variant("post_ln_absolute", VARIANTS["post_ln_absolute"])

    def test_pre_ln_2d(self):
        self.run_variant("pre_ln_2d", VARIANTS["pre_ln_2d"])

    def test_post_ln_2d_row_sep(self):
        self.run_variant("post_ln_2d_row_sep", VARIANTS["post_ln_2d_row_sep"])

    def test_hf_parameter_names(self):
        with tempfile.TemporaryDirectory() as out:
            subprocess.run([ARGS.tool, ARGS.spec, out, "model.num_hidden_layers=1",
                            "model.position_embedding_type=\"absolute\"",
                            "model.layer_norm_position=\"post\""], check=True)
            weights, _ = bert_reference.read_safetensors(os.path.join(out, "model.safetensors"))
            p = "bert.encoder.layer.0."
            expected = {
                "bert.embeddings.word_embeddings.weight", "bert.embeddings.position_embeddings.weight",
                "bert.embeddings.token_type_embeddings.weight", "bert.embeddings.LayerNorm.weight",
                "bert.embeddings.LayerNorm.bias", "regressor.weight", "regressor.bias"}
            for s in ("attention.self.query", "attention.self.key", "attention.self.value",
                      "attention.output.dense", "attention.output.LayerNorm", "intermediate.dense",
                      "output.dense", "output.LayerNorm"):
                expected |= {p + s + ".weight", p + s + ".bias"}
            self.assertEqual(set(weights), expected)
            self.assertTrue((weights["bert.embeddings.word_embeddings.weight"][0] == 0).all())


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--tool", required=True)
    parser.add_argument("--spec", required=True)
    ARGS, rest = parser.parse_known_args()
    unittest.main(argv=[sys.argv[0]] + rest, verbosity=2)
