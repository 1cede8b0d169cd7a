#!/usr/bin/env python3
"""What a user would otherwise run: PyTorch 2.x (PyPI's torch, from .venv) training
HuggingFace transformers' `BertModel` with a linear regression head on the same model, batch
shape, AdamW (decay on weights, not on biases and LayerNorms), masked MSE and gradient
clipping as `matbert-worker train`, eager or under `torch.compile`. Batches are drawn once up
front, so the figure is the model step alone. The spec's model must be HuggingFace's
architecture (post-LN, absolute positions); the benchmark passes those overrides to both.

Usage: train_hf.py --spec configs/bert_matcomp_cpu.toml --steps 100 --threads 2 [--compile]
Prints {"tokens_per_second": ..., "seconds_per_step": ..., "torch": "2.x"}.
"""
import argparse
import json
import os
import tomllib

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
import transformers  # noqa: E402
import timed_steps  # noqa: E402  (beside this file)


class BertRegression(torch.nn.Module):
    """transformers' encoder and our head: logits (B, L, 1)."""

    def __init__(self, config):
        super().__init__()
        self.bert = transformers.BertModel(config, add_pooling_layer=False)
        self.regressor = torch.nn.Linear(config.hidden_size, 1)

    def forward(self, input_ids):
        return self.regressor(self.bert(input_ids=input_ids).last_hidden_state)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--spec", required=True)
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--compile", action="store_true")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    with open(a.spec, "rb") as f:
        spec = tomllib.load(f)
    model_cfg, matrix, training = spec["model"], spec["matrix"], spec["training"]
    m, n, prec, n_sigma = matrix["m"], matrix["n"], matrix["prec"], matrix.get("n_sigma", 4)
    vocab = 2 * n_sigma * 10**prec + 5
    length = m * n + 2
    batch = training["batch_size"]
    config = transformers.BertConfig(
        vocab_size=vocab, hidden_size=model_cfg["hidden_size"],
        num_hidden_layers=model_cfg["num_hidden_layers"],
        num_attention_heads=model_cfg["num_attention_heads"],
        intermediate_size=model_cfg["intermediate_size"],
        max_position_embeddings=model_cfg["max_position_embeddings"],
        hidden_dropout_prob=model_cfg.get("hidden_dropout_prob", 0.0),
        attention_probs_dropout_prob=model_cfg.get("attention_probs_dropout_prob", 0.0))
    model = BertRegression(config).train()
    decay = [p for k, p in model.named_parameters() if not ("LayerNorm" in k or k.endswith("bias"))]
    no_decay = [p for k, p in model.named_parameters() if "LayerNorm" in k or k.endswith("bias")]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": training.get("weight_decay", 0.01)},
                             {"params": no_decay, "weight_decay": 0.0}], lr=1e-3)
    forward = torch.compile(model) if a.compile else model
    batches = timed_steps.masked_batches(vocab, batch, length, matrix.get("mask_prob", 0.15))

    def step(i):
        ids, labels = batches[i % len(batches)]
        opt.zero_grad(set_to_none=True)
        loss = timed_steps.masked_mse(forward(ids), labels)  # logits (B, L, 1)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), training.get("clip_grad_norm", 1.0))
        opt.step()

    # With --compile, the warm-up steps are where compilation happens.
    result = timed_steps.time_steps(step, a.warmup, a.steps, batch * length)
    print(json.dumps({**result, "torch": torch.__version__}))


if __name__ == "__main__":
    main()
