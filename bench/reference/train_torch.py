#!/usr/bin/python3
"""Python reference of one `matbert-worker train` step for the benchmark: the same
BertForMatrixRegression (tests/reference/bert_reference.py, plain PyTorch ops), the same
batch shape, AdamW, MSE over the masked entries and gradient clipping, on Debian's
python3-torch (the same LibTorch 1.13) with the same thread count. Batches are drawn once
up front, so the figure is the model step alone.

Usage: train_torch.py --spec configs/bert_matcomp_cpu.toml --steps 100 --threads 2
Prints {"tokens_per_second": ..., "seconds_per_step": ...}.
"""
import argparse
import json
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests",
                                "reference"))
import bert_reference  # noqa: E402
import timed_steps  # noqa: E402  (beside this file)


def load_spec(path):
    import toml  # Debian's python3-toml
    spec = toml.load(path)
    model = dict(spec.get("model", {}))
    matrix = spec.get("matrix", {})
    training = spec.get("training", {})
    return model, matrix, training


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--spec", required=True)
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model_cfg, matrix, training = load_spec(a.spec)
    m, n, prec, n_sigma = matrix["m"], matrix["n"], matrix["prec"], matrix.get("n_sigma", 4)
    vocab = 2 * n_sigma * 10**prec + 5
    length = m * n + 2
    batch = training["batch_size"]
    h = model_cfg["hidden_size"]
    config = {"layer_norm_eps": 1e-12, "num_attention_heads": model_cfg["num_attention_heads"],
              "num_hidden_layers": model_cfg["num_hidden_layers"],
              "layer_norm_position": model_cfg.get("layer_norm_position", "post"),
              "position_embedding_type": model_cfg.get("position_embedding_type", "absolute"),
              "matrix_m": m, "matrix_n": n, "row_sep": False}
    shapes = {"bert.embeddings.word_embeddings.weight": (vocab, h),
              "bert.embeddings.position_embeddings.weight": (model_cfg["max_position_embeddings"], h),
              "bert.embeddings.token_type_embeddings.weight": (2, h),
              "bert.embeddings.row_embeddings.weight": (m + 1, h),
              "bert.embeddings.col_embeddings.weight": (n + 1, h),
              "bert.embeddings.LayerNorm.weight": (h,), "bert.embeddings.LayerNorm.bias": (h,),
              "bert.encoder.LayerNorm.weight": (h,), "bert.encoder.LayerNorm.bias": (h,),
              "regressor.weight": (1, h), "regressor.bias": (1,)}
    inter = model_cfg["intermediate_size"]
    for i in range(config["num_hidden_layers"]):
        q = f"bert.encoder.layer.{i}."
        for s in ("attention.self.query", "attention.self.key", "attention.self.value",
                  "attention.output.dense"):
            shapes[q + s + ".weight"], shapes[q + s + ".bias"] = (h, h), (h,)
        shapes[q + "intermediate.dense.weight"], shapes[q + "intermediate.dense.bias"] = (inter, h), (inter,)
        shapes[q + "output.dense.weight"], shapes[q + "output.dense.bias"] = (h, inter), (h,)
        for s in ("attention.output.LayerNorm", "output.LayerNorm"):
            shapes[q + s + ".weight"], shapes[q + s + ".bias"] = (h,), (h,)
    w = {k: torch.nn.Parameter(torch.randn(v) * 0.02 if len(v) > 1 else
                               (torch.ones(v) if "LayerNorm.weight" in k else torch.zeros(v)))
         for k, v in shapes.items()}
    decay = [p for k, p in w.items() if not ("LayerNorm" in k or k.endswith(".bias"))]
    no_decay = [p for k, p in w.items() if "LayerNorm" in k or k.endswith(".bias")]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01},
                             {"params": no_decay, "weight_decay": 0.0}], lr=1e-3)
    batches = timed_steps.masked_batches(vocab, batch, length, matrix.get("mask_prob", 0.15))

    def step(i):
        ids, labels = batches[i % len(batches)]
        opt.zero_grad()
        loss = timed_steps.masked_mse(bert_reference.forward(w, config, ids), labels)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(list(w.values()), 1.0)
        opt.step()

    print(json.dumps(timed_steps.time_steps(step, a.warmup, a.steps, batch * length)))


if __name__ == "__main__":
    main()
