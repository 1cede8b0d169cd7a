"""What the training references share: batches drawn once up front in the collator's layout
(entries masked with probability mask_prob become [MASK], labels NaN elsewhere), the masked
MSE, and the timed loop (warm-up steps, then tokens/s over the timed ones)."""
import math
import time

import torch


def masked_batches(vocab, batch, length, mask_prob, count=8):
    """`count` (input_ids (B, L) int64, labels (B, L) float) pairs."""
    batches = []
    for _ in range(count):
        ids = torch.randint(4, vocab, (batch, length))
        labels = torch.randn(batch, length)
        labels[torch.rand(batch, length) > mask_prob] = math.nan
        ids[~torch.isnan(labels)] = 1
        batches.append((ids, labels))
    return batches


def masked_mse(logits, labels):
    """MSE of logits (B, L, 1) over the labels (B, L) that are not NaN."""
    valid = ~torch.isnan(labels)
    return ((logits.squeeze(-1) - torch.nan_to_num(labels)) ** 2 * valid).sum() / valid.sum()


def time_steps(step, warmup, steps, tokens_per_step):
    """Runs step(i) `warmup` times, then `steps` timed times; the figures to print."""
    for i in range(warmup):
        step(i)
    start = time.perf_counter()
    for i in range(steps):
        step(i)
    elapsed = time.perf_counter() - start
    return {"tokens_per_second": steps * tokens_per_step / elapsed,
            "seconds_per_step": elapsed / steps}
