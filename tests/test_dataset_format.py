#!/usr/bin/env python3
"""Generated datasets, read by the libraries users read them with: `pyarrow.ipc.open_stream`
reads every shard (schema, nullability, `item` children, the `huggingface` metadata,
metadata version V5, batches of at most 1000 rows) and `datasets.load_from_disk` opens the
directory as a DatasetDict with a `train` split, the features of DESIGN.md section 2 and
every row equal, value for value, to what our own reader (`matbert-worker inspect --dump`)
returns. Single- and multi-shard, with and without row separators. NumPy then recomputes
the matrices' rank, variance, tokens and aggregated statistics from pyarrow's values.

Runs on the repository's virtual environment (requirements.txt: pyarrow, datasets, numpy).
Usage: test_dataset_format.py --worker PATH
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import unittest

# load_from_disk must not look for a hub or write a cache outside the test's directory.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import datasets  # noqa: E402
import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.ipc  # noqa: E402

ARGS = None

M, N, R, SAMPLES, PREC, N_SIGMA = 7, 9, 3, 2500, 2, 4
# name -> (shards, row separators)
VARIANTS = {"sep_2": (2, True), "sep_1": (1, True), "plain_3": (3, False), "plain_1": (1, False)}


def features_json():
    def list_of(dtype):
        return {"feature": {"dtype": dtype, "_type": "Value"}, "_type": "List"}
    return {"input_ids": list_of("int32"), "values": list_of("float64")}


def seq_length(row_sep):
    return M * N + 2 + (M - 1 if row_sep else 0)


class DatasetFormatTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        os.environ["HF_DATASETS_CACHE"] = os.path.join(cls.tmp.name, "hf-cache")
        cls.ours = {}
        for name, (shards, row_sep) in VARIANTS.items():
            out = cls.path(name)
            cmd = [ARGS.worker, "generate", "--m", str(M), "--n", str(N), "--r", str(R),
                   "--n-samples", str(SAMPLES), "--shards", str(shards), "--prec", str(PREC),
                   "--seed", "3", "--output-dir", out, "--quiet"]
            if row_sep:
                cmd.append("--row-sep")
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
            prefix = os.path.join(cls.tmp.name, name + ".ours")
            subprocess.run([ARGS.worker, "inspect", out, "--dump", prefix], check=True,
                           stdout=subprocess.DEVNULL)
            cls.ours[name] = (np.fromfile(prefix + ".input_ids.i32", dtype="<i4"),
                              np.fromfile(prefix + ".values.f64", dtype="<f8"))

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    @classmethod
    def path(cls, name, *parts):
        return os.path.join(cls.tmp.name, name, *parts)

    def load(self, name, *parts):
        with open(self.path(name, *parts)) as f:
            return json.load(f)

    def shards(self, name):
        return [e["filename"] for e in self.load(name, "train", "state.json")["_data_files"]]

    def read_with_pyarrow(self, name):
        """Every shard through pyarrow's stream reader: (input_ids, values) flattened, and
        the per-batch row counts."""
        ids, values, batch_rows = [], [], []
        info = self.load(name, "train", "dataset_info.json")
        for filename in self.shards(name):
            path = self.path(name, "train", filename)
            with open(path, "rb") as f:
                raw = f.read()
            self.assertNotEqual(raw[:6], b"ARROW1", f"{filename}: file format, not stream")
            self.assertEqual(raw[-8:], b"\xff\xff\xff\xff\x00\x00\x00\x00",
                             f"{filename}: no end-of-stream marker")
            with pa.ipc.open_stream(path) as reader:
                schema = reader.schema
                expected = pa.schema([
                    pa.field("input_ids", pa.list_(pa.field("item", pa.int32(), True)), True),
                    pa.field("values", pa.list_(pa.field("item", pa.float64(), True)), True)])
                self.assertTrue(schema.equals(expected, check_metadata=False), str(schema))
                self.assertEqual(list(schema.metadata), [b"huggingface"])
                hf = json.loads(schema.metadata[b"huggingface"])
                self.assertEqual(hf, {"info": {"features": info["features"]}})
                for batch in reader:
                    batch_rows.append(batch.num_rows)
                    ids.append(batch.column("input_ids").flatten().to_numpy())
                    values.append(batch.column("values").flatten().to_numpy())
            # Metadata version of the schema message: pyarrow reads it back from the stream.
            with pa.OSFile(path) as f:
                message = pa.ipc.read_message(f)
                self.assertEqual(message.metadata_version, pa.ipc.MetadataVersion.V5)
        return np.concatenate(ids), np.concatenate(values), batch_rows

    def test_pyarrow_reads_every_shard_and_row(self):
        for name, (shards, row_sep) in VARIANTS.items():
            with self.subTest(name):
                ids, values, batch_rows = self.read_with_pyarrow(name)
                self.assertEqual(len(self.shards(name)), shards)
                self.assertEqual(sum(batch_rows), SAMPLES)
                self.assertLessEqual(max(batch_rows), 1000)
                self.assertEqual(ids.size, SAMPLES * seq_length(row_sep))
                our_ids, our_values = self.ours[name]
                np.testing.assert_array_equal(ids, our_ids)
                # Byte equality also covers the NaNs at special tokens.
                self.assertEqual(values.tobytes(), our_values.tobytes())

    def test_datasets_load_from_disk(self):
        want_features = datasets.Features({
            "input_ids": datasets.List(datasets.Value("int32")),
            "values": datasets.List(datasets.Value("float64"))})
        for name, (_, row_sep) in VARIANTS.items():
            with self.subTest(name):
                dd = datasets.load_from_disk(self.path(name))
                self.assertIsInstance(dd, datasets.DatasetDict)
                self.assertEqual(list(dd), ["train"])
                train = dd["train"]
                self.assertEqual(train.num_rows, SAMPLES)
                self.assertEqual(train.features, want_features)
                self.assertEqual(train.features.to_dict(), features_json())
                self.assertEqual(train.column_names, ["input_ids", "values"])
                table = train.with_format("arrow")[:]
                ids = table.column("input_ids").combine_chunks().flatten().to_numpy()
                values = table.column("values").combine_chunks().flatten().to_numpy()
                our_ids, our_values = self.ours[name]
                np.testing.assert_array_equal(ids, our_ids)
                self.assertEqual(values.tobytes(), our_values.tobytes())
                # Row access as a user writes it: one row, as Python lists.
                row = train[17]
                length = seq_length(row_sep)
                self.assertEqual(row["input_ids"], our_ids[17 * length:18 * length].tolist())
                self.assertEqual(len(row["values"]), length)

    def test_token_layout_and_tokenizer(self):
        ids, values = self.ours["sep_2"]
        length = seq_length(True)
        ids, values = ids.reshape(SAMPLES, length), values.reshape(SAMPLES, length)
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
        # The same matrices with and without row separators.
        plain = self.ours["plain_1"][1].reshape(SAMPLES, seq_length(False))
        np.testing.assert_array_equal(plain[:, 1:-1][~np.isnan(plain[:, 1:-1])],
                                      values[~np.isnan(values)])

    def matrices(self):
        values = self.ours["sep_2"][1]
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
        stats = self.load("sep_2", "dataset_stats.json")
        self.assertEqual(stats["n_samples"], SAMPLES)
        for name, x in per_matrix.items():
            got = stats[name]
            for key, want in (("mean", x.mean()), ("std", x.std()), ("min", x.min()),
                              ("max", x.max())):
                self.assertAlmostEqual(got[key], want, delta=1e-9 * max(1.0, abs(want)),
                                       msg=f"{name}.{key}")

    def test_side_files(self):
        self.assertEqual(self.load("sep_2", "dataset_dict.json"), {"splits": ["train"]})
        state = self.load("sep_2", "train", "state.json")
        self.assertEqual(set(state), {"_data_files", "_fingerprint", "_format_columns",
                                      "_format_kwargs", "_format_type", "_output_all_columns",
                                      "_split"})
        self.assertEqual(state["_data_files"], [{"filename": "data-00000-of-00002.arrow"},
                                                {"filename": "data-00001-of-00002.arrow"}])
        self.assertEqual(state["_split"], "train")
        info = self.load("sep_2", "train", "dataset_info.json")
        self.assertEqual(info, {"citation": "", "description": "", "features": features_json(),
                                "homepage": "", "license": ""})
        tok = self.load("sep_2", "tokenizer_config.json")
        for key, want in (("prec", PREC), ("n_sigma", N_SIGMA), ("n_bins", 801),
                          ("vocab_size", 806), ("row_sep", True), ("pad_token_id", 0),
                          ("mask_token_id", 1), ("cls_token_id", 2), ("sep_token_id", 3),
                          ("row_sep_token_id", 805)):
            self.assertEqual(tok[key], want, key)
        config = self.load("sep_2", "config.json")
        for key, want in (("m", M), ("n", N), ("r", R), ("n_samples", SAMPLES), ("seed", 3),
                          ("prec", PREC), ("n_sigma", N_SIGMA), ("row_sep", True)):
            self.assertEqual(config[key], want, key)
        plain_tok = self.load("plain_1", "tokenizer_config.json")
        self.assertEqual(plain_tok["vocab_size"], 805)
        self.assertIsNone(plain_tok["row_sep_token_id"])


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--worker", required=True)
    ARGS, rest = parser.parse_known_args()
    unittest.main(argv=[sys.argv[0]] + rest, verbosity=2)
