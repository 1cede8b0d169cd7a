#!/usr/bin/env python3
"""Checkpoints of `matbert-worker train`, loaded by HuggingFace `transformers` and
`safetensors` (PyPI's, from the repository's .venv): `BertModel.from_pretrained(checkpoint)`
finds every encoder weight (the `regressor.*` head is the only extra), its hidden states equal
ours within 1e-5 on the same inputs (fp32, eval mode), and our head added in two lines of
Python over them gives our logits. A checkpoint with one tensor renamed or one shape changed
fails that check. Checkpoints with matbert's extensions (pre-LN, absolute_2d row/column
embeddings) are refused by BertModel and AutoModel with an error naming the extension.

Usage: test_hf_compat.py --worker PATH --tool bert_parity_tool --configs DIR
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
import safetensors.numpy  # noqa: E402
import safetensors.torch  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402

ARGS = None
transformers.logging.set_verbosity_error()  # the load reports; the assertions say what matters
transformers.utils.logging.disable_progress_bar()

TINY = ["--model.hidden_size", "32", "--model.num_hidden_layers", "2",
        "--model.num_attention_heads", "4", "--model.intermediate_size", "64",
        "--matrix.m", "5", "--matrix.n", "6", "--matrix.r", "2", "--training.batch_size", "8",
        "--training.steps", "12", "--training.warmup_steps", "2", "--training.log_every", "4",
        "--training.eval_every", "0", "--training.eval_samples", "16",
        "--training.threads", "1", "--checkpoint.every", "12"]


def train(run_dir, *extra):
    cmd = [ARGS.worker, "train", "--config", os.path.join(ARGS.configs, "bert_matcomp_cpu.toml"),
           "--run-dir", run_dir, "--quiet", *TINY, *extra]
    subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=600)
    return os.path.join(run_dir, "checkpoints", "step-0000012")


def ours(run_dir, checkpoint, out):
    """Our hidden states and logits for seeded inputs, from the checkpoint's weights."""
    os.makedirs(out, exist_ok=True)
    subprocess.run([ARGS.tool, os.path.join(run_dir, "config.toml"), out, "--checkpoint",
                    checkpoint], check=True, capture_output=True, text=True)
    return safetensors.numpy.load_file(os.path.join(out, "io.safetensors"))


def load_encoder(checkpoint):
    """BertModel from the checkpoint, checked the way a user would want it checked: nothing
    missing or mismatched, nothing unexpected but our regression head."""
    model, info = transformers.BertModel.from_pretrained(
        checkpoint, add_pooling_layer=False, output_loading_info=True,
        attn_implementation="eager")
    assert not info["missing_keys"], f"missing: {sorted(info['missing_keys'])}"
    assert not info["mismatched_keys"], f"mismatched: {sorted(info['mismatched_keys'])}"
    unexpected = set(info["unexpected_keys"])
    assert unexpected <= {"regressor.weight", "regressor.bias"}, f"unexpected: {unexpected}"
    return model.eval()


class HfCompatTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.runs = {}
        for name, extra in (("plain", []), ("row_sep", ["--matrix.row_sep", "true"])):
            run = os.path.join(cls.tmp.name, name)
            cls.runs[name] = (run, train(run, "--model.layer_norm_position", "post",
                                         "--model.position_embedding_type", "absolute", *extra))

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def test_transformers_reproduces_hidden_states_and_logits(self):
        for name, (run, checkpoint) in self.runs.items():
            with self.subTest(name):
                io = ours(run, checkpoint, os.path.join(self.tmp.name, name + "-io"))
                model = load_encoder(checkpoint)
                with open(os.path.join(checkpoint, "config.json")) as f:
                    config = json.load(f)
                self.assertEqual(model.config.vocab_size, config["vocab_size"])
                self.assertEqual(model.config.num_hidden_layers, 2)
                ids = torch.from_numpy(io["input_ids"])
                with torch.no_grad():
                    hidden = model(input_ids=ids, attention_mask=torch.ones_like(ids))
                hidden = hidden.last_hidden_state
                self.assertEqual(tuple(hidden.shape), io["hidden_states"].shape)
                np.testing.assert_allclose(hidden.numpy(), io["hidden_states"], rtol=0,
                                           atol=1e-5)
                # Our head, added in two lines over transformers' encoder.
                w = safetensors.torch.load_file(os.path.join(checkpoint, "model.safetensors"))
                logits = hidden @ w["regressor.weight"].T + w["regressor.bias"]  # (B, L, 1)
                np.testing.assert_allclose(logits.numpy(), io["logits"], rtol=0, atol=1e-5)
                self.assertGreater(np.abs(io["logits"]).max(), 1e-3)  # not trivially zero

    def test_checkpoint_files_read_by_safetensors_and_transformers_config(self):
        _, checkpoint = self.runs["plain"]
        with safetensors.safe_open(os.path.join(checkpoint, "model.safetensors"), "pt") as f:
            self.assertEqual(f.metadata(), {"format": "pt"})
            keys = set(f.keys())
            self.assertEqual(f.get_tensor("regressor.weight").dtype, torch.float32)
        self.assertIn("bert.encoder.layer.1.output.LayerNorm.weight", keys)
        config = transformers.AutoConfig.from_pretrained(checkpoint)
        self.assertIsInstance(config, transformers.BertConfig)
        self.assertEqual((config.hidden_size, config.num_attention_heads,
                          config.intermediate_size), (32, 4, 64))

    def corrupt(self, edit):
        """A copy of the plain checkpoint whose weights went through `edit`."""
        _, checkpoint = self.runs["plain"]
        bad = tempfile.mkdtemp(dir=self.tmp.name)
        shutil.copytree(checkpoint, bad, dirs_exist_ok=True)
        path = os.path.join(bad, "model.safetensors")
        weights = safetensors.numpy.load_file(path)
        edit(weights)
        safetensors.numpy.save_file(weights, path, metadata={"format": "pt"})
        return bad

    def test_a_renamed_tensor_fails_the_check(self):
        def rename(w):
            w["bert.encoder.layer.1.attention.self.key.weight_renamed"] = w.pop(
                "bert.encoder.layer.1.attention.self.key.weight")
        with self.assertRaises(AssertionError) as cm:
            load_encoder(self.corrupt(rename))
        self.assertIn("encoder.layer.1.attention.self.key.weight", str(cm.exception))

    def test_a_changed_shape_fails_the_check(self):
        def reshape(w):
            w["bert.encoder.layer.0.intermediate.dense.weight"] = np.zeros((65, 32), np.float32)
        # transformers itself refuses it (its report, on the log, names the tensor).
        with self.assertRaises(RuntimeError) as cm:
            load_encoder(self.corrupt(reshape))
        self.assertIn("ignore_mismatched_sizes", str(cm.exception))

    def test_extensions_are_refused_loudly(self):
        for name, layer_norm, positions, kind in (
                ("pre_ln", "pre", "absolute", "matbert_pre_ln"),
                ("absolute_2d", "post", "absolute_2d", "matbert_absolute_2d"),
                ("both", "pre", "absolute_2d", "matbert_pre_ln_absolute_2d")):
            with self.subTest(name):
                run = os.path.join(self.tmp.name, "ext-" + name)
                checkpoint = train(run, "--model.layer_norm_position", layer_norm,
                                   "--model.position_embedding_type", positions)
                with open(os.path.join(checkpoint, "config.json")) as f:
                    config = json.load(f)
                self.assertEqual(config["layer_types"], [kind, kind])
                self.assertEqual(config["layer_norm_position"], layer_norm)
                self.assertEqual(config["position_embedding_type"], positions)
                for loader in (transformers.BertModel, transformers.AutoModel):
                    with self.assertRaises(Exception) as cm:
                        loader.from_pretrained(checkpoint)
                    self.assertIn(kind, str(cm.exception))

    def test_plain_checkpoints_carry_no_extension_marker(self):
        for _, checkpoint in self.runs.values():
            with open(os.path.join(checkpoint, "config.json")) as f:
                self.assertNotIn("layer_types", json.load(f))


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--worker", required=True)
    parser.add_argument("--tool", required=True)
    parser.add_argument("--configs", required=True)
    ARGS, rest = parser.parse_known_args()
    unittest.main(argv=[sys.argv[0]] + rest, verbosity=2)
