#!/usr/bin/python3
"""A generated dataset, read by independent tools: the npm apache-arrow package reads every
shard (schema, metadata, batches, rows) and NumPy recomputes the matrices' rank, variance,
tokens and aggregated statistics from the values apache-arrow returned.

Usage: test_dataset_format.py --worker PATH --js-dir tests/js
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import unittest

import numpy as np

ARGS = None

M, N, R, SAMPLES, SHARDS, PREC, N_SIGMA = 7, 9, 3, 2500, 2, 2, 4


def features():
    def list_of(dtype):
        return {"feature": {"dtype": dtype, "_type": "Value"}, "_type": "List"}
    return {"input_ids": list_of("int32"), "values": list_of("float64")}


class DatasetFormatTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.dir = os.path.join(cls.tmp.name, "ds")
        for row_sep, name in ((True, "ds"), (False, "plain")):
            cmd = [ARGS.worker, "generate", "--m", str(M), "--n", str(N), "--r", str(R),
                   "--n-samples", str(SAMPLES), "--shards", str(SHARDS), "--prec", str(PREC),
                   "--seed", "3", "--output-dir", os.path.join(cls.tmp.name, name), "--quiet"]
            if row_sep:
                cmd.append("--row-sep")
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        js_prefix = os.path.join(cls.tmp.name, "js")
        out = subprocess.run(["node", os.path.join(ARGS.js_dir, "read_dataset.mjs"), cls.dir,
                              js_prefix], check=True, capture_output=True, text=True)
        cls.report = json.loads(out.stdout)
        ours_prefix = os.path.join(cls.tmp.name, "ours")
        subprocess.run([ARGS.worker, "inspect", cls.dir, "--dump", ours_prefix], check=True,
                       stdout=subprocess.DEVNULL)
        cls.js_ids = np.fromfile(js_prefix + ".input_ids.i32", dtype="<i4")
        cls.js_values = np.fromfile(js_prefix + ".values.f64", dtype="<f8")
        cls.our_ids = np.fromfile(ours_prefix + ".input_ids.i32", dtype="<i4")
        cls.our_values = np.fromfile(ours_prefix + ".values.f64", dtype="<f8")
        cls.length = M * N + 2 + (M - 1)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def load(self, *parts):
        with open(os.path.join(self.dir, *parts)) as f:
            return json.load(f)

    def test_schema_as_apache_arrow_sees_it(self):
        self.assertEqual(self.report["fields"], [
            {"name": "input_ids", "nullable": True, "type": "List", "child_name": "item",
             "child_nullable": True, "child_type": "Int32"},
            # apache-arrow reports FloatingPoint precision DOUBLE as 2.
            {"name": "values", "nullable": True, "type": "List", "child_name": "item",
             "child_nullable": True, "child_type": "Float2"},
        ])
        self.assertEqual(self.report["metadata_keys"], ["huggingface"])
        for shard in self.report["shards"]:
            self.assertEqual(shard["metadata_version"], 4)  # MetadataVersion.V5

    def test_rows_and_batches(self):
        self.assertEqual(self.report["rows"], SAMPLES)
        self.assertLessEqual(self.report["max_batch_rows"], 1000)
        self.assertEqual([s["rows"] for s in self.report["shards"]], [1250, 1250])
        self.assertEqual(self.report["batches"], 4)  # 1000 + 250 per shard

    def test_every_row_equals_our_reader(self):
        self.assertEqual(self.js_ids.size, SAMPLES * self.length)
        np.testing.assert_array_equal(self.js_ids, self.our_ids)
        # Byte equality also covers the NaNs.
        self.assertEqual(self.js_values.tobytes(), self.our_values.tobytes())

    def test_token_layout_and_tokenizer(self):
        ids = self.js_ids.reshape(SAMPLES, self.length)
        values = self.js_values.reshape(SAMPLES, self.length)
        n_bins = 2 * N_SIGMA * 10**PREC + 1
        row_sep = n_bins + 4
        self.assertTrue((ids[:, 0] == 2).all())       # [CLS]
        self.assertTrue((ids[:, -1] == 3).all())      # [SEP]
        sep_positions = [1 + (i + 1) * N + i for i in range(M - 1)]
        self.assertTrue((ids[:, sep_positions] == row_sep).all())
        special = np.isin(ids, [2, 3, row_sep])
        np.testing.assert_array_equal(np.isnan(values), special)
        entries = values[~special]
        expected = 4 + np.round((np.clip(entries, -N_SIGMA, N_SIGMA) + N_SIGMA) * 10**PREC)
        np.testing.assert_array_equal(ids[~special], expected.astype(np.int32))

    def matrices(self):
        values = self.js_values.reshape(SAMPLES, self.length)
        entries = values[~np.isnan(values)]
        return entries.reshape(SAMPLES, M, N)

    def test_rank_and_variance(self):
        mats = self.matrices()
        np.testing.assert_allclose(mats.var(axis=(1, 2)), 1.0, rtol=0, atol=1e-9)
        s = np.linalg.svd(mats, compute_uv=False)
        self.assertLess((s[:, R] / s[:, 0]).max(), 1e-9)
        self.assertGreater((s[:, R - 1] / s[:, 0]).min(), 1e-6)

    def test_aggregated_statistics_match_numpy(self):
        mats = self.matrices()
        s = np.linalg.svd(mats, compute_uv=False)
        per_matrix = {
            "nuclear_norm": s.sum(axis=1),
            "spectral_gap": s[:, R - 1] - s[:, R],
            "mean": mats.mean(axis=(1, 2)),
            "variance": mats.var(axis=(1, 2)),
            "trace": np.trace(mats, axis1=1, axis2=2),
            "range": mats.max(axis=(1, 2)) - mats.min(axis=(1, 2)),
        }
        stats = self.load("dataset_stats.json")
        self.assertEqual(stats["n_samples"], SAMPLES)
        for name, x in per_matrix.items():
            got = stats[name]
            for key, want in (("mean", x.mean()), ("std", x.std()), ("min", x.min()),
                              ("max", x.max())):
                self.assertAlmostEqual(got[key], want, delta=1e-9 * max(1.0, abs(want)),
                                       msg=f"{name}.{key}")

    def test_side_files(self):
        self.assertEqual(self.load("dataset_dict.json"), {"splits": ["train"]})
        state = self.load("train", "state.json")
        self.assertEqual(set(state), {"_data_files", "_fingerprint", "_format_columns",
                                      "_format_kwargs", "_format_type", "_output_all_columns",
                                      "_split"})
        self.assertEqual(state["_data_files"], [{"filename": "data-00000-of-00002.arrow"},
                                                {"filename": "data-00001-of-00002.arrow"}])
        self.assertEqual(state["_split"], "train")
        info = self.load("train", "dataset_info.json")
        self.assertEqual(info, {"citation": "", "description": "", "features": features(),
                                "homepage": "", "license": ""})
        tok = self.load("tokenizer_config.json")
        for key, want in (("prec", PREC), ("n_sigma", N_SIGMA), ("n_bins", 801),
                          ("vocab_size", 806), ("row_sep", True), ("pad_token_id", 0),
                          ("mask_token_id", 1), ("cls_token_id", 2), ("sep_token_id", 3),
                          ("row_sep_token_id", 805)):
            self.assertEqual(tok[key], want, key)
        config = self.load("config.json")
        for key, want in (("m", M), ("n", N), ("r", R), ("n_samples", SAMPLES), ("seed", 3),
                          ("prec", PREC), ("n_sigma", N_SIGMA), ("row_sep", True)):
            self.assertEqual(config[key], want, key)
        with open(os.path.join(self.tmp.name, "plain", "tokenizer_config.json")) as f:
            plain_tok = json.load(f)
        self.assertEqual(plain_tok["vocab_size"], 805)
        self.assertIsNone(plain_tok["row_sep_token_id"])


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--worker", required=True)
    parser.add_argument("--js-dir", required=True)
    ARGS, rest = parser.parse_known_args()
    unittest.main(argv=[sys.argv[0]] + rest, verbosity=2)
