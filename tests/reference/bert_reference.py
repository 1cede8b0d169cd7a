"""An independent BertForMatrixRegression in Python (Debian's python3-torch), written from
the HuggingFace BERT architecture with plain tensor ops, and an independent safetensors
reader (json + numpy). Used by the parity test and the training benchmark."""
import json
import math
import struct

import numpy as np
import torch
import torch.nn.functional as F

DTYPES = {"F32": np.float32, "F64": np.float64, "I64": np.int64, "I32": np.int32,
          "U8": np.uint8, "F16": np.float16}


def read_safetensors(path):
    """{name: numpy array} and the metadata, read with nothing but json and numpy."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    meta = header.pop("__metadata__", {})
    out = {}
    for name, entry in header.items():
        begin, end = entry["data_offsets"]
        arr = np.frombuffer(data, dtype=DTYPES[entry["dtype"]], count=(end - begin) //
                            np.dtype(DTYPES[entry["dtype"]]).itemsize, offset=8 + n + begin)
        out[name] = arr.reshape(entry["shape"])
    return out, meta


def row_col_ids(config, length):
    rows, cols = [0], [0]
    for i in range(config["matrix_m"]):
        if i > 0 and config["row_sep"]:
            rows.append(0), cols.append(0)
        for j in range(config["matrix_n"]):
            rows.append(i + 1), cols.append(j + 1)
    rows.append(0), cols.append(0)
    return torch.tensor(rows[:length]), torch.tensor(cols[:length])


def forward(w, config, input_ids):
    """logits (B, L, 1) for input_ids (B, L); w maps HF names to torch tensors."""
    eps = config["layer_norm_eps"]
    heads = config["num_attention_heads"]
    pre_ln = config.get("layer_norm_position", "post") == "pre"
    b, l = input_ids.shape
    e = "bert.embeddings."
    x = (w[e + "word_embeddings.weight"][input_ids]
         + w[e + "position_embeddings.weight"][torch.arange(l)]
         + w[e + "token_type_embeddings.weight"][0])
    if config.get("position_embedding_type") == "absolute_2d":
        rows, cols = row_col_ids(config, l)
        x = x + w[e + "row_embeddings.weight"][rows] + w[e + "col_embeddings.weight"][cols]
    x = F.layer_norm(x, x.shape[-1:], w[e + "LayerNorm.weight"], w[e + "LayerNorm.bias"], eps)

    def linear(t, name):
        return t @ w[name + ".weight"].T + w[name + ".bias"]

    def ln(t, name):
        return F.layer_norm(t, t.shape[-1:], w[name + ".weight"], w[name + ".bias"], eps)

    def attention(t, p):
        h = t.shape[-1]
        d = h // heads

        def split(z):
            return z.view(b, l, heads, d).transpose(1, 2)
        q, k, v = (split(linear(t, p + "attention.self." + s)) for s in ("query", "key", "value"))
        scores = (q @ k.transpose(-1, -2)) / math.sqrt(d)
        ctx = torch.softmax(scores, dim=-1) @ v
        return linear(ctx.transpose(1, 2).reshape(b, l, h), p + "attention.output.dense")

    def mlp(t, p):
        return linear(F.gelu(linear(t, p + "intermediate.dense")), p + "output.dense")

    for i in range(config["num_hidden_layers"]):
        p = f"bert.encoder.layer.{i}."
        if pre_ln:
            x = x + attention(ln(x, p + "attention.output.LayerNorm"), p)
            x = x + mlp(ln(x, p + "output.LayerNorm"), p)
        else:
            x = ln(x + attention(x, p), p + "attention.output.LayerNorm")
            x = ln(x + mlp(x, p), p + "output.LayerNorm")
    if pre_ln:
        x = ln(x, "bert.encoder.LayerNorm")
    return linear(x, "regressor")
