"""matbert.hf: a transformers model class for matbert checkpoints.

    from matbert.hf import BertForMatrixRegression
    model = BertForMatrixRegression.from_pretrained("job-step-0000300")   # a checkpoint dir
    completed = model.complete(matrix_with_nans)                          # NaN = missing

It loads every matbert checkpoint, including matbert's extensions that plain BertModel
refuses (pre-LN blocks, absolute_2d row/column embeddings): the same computation as the
trainer (worker/train/bert_model.cc), under the same HuggingFace parameter names. Needs the
[hf] extra (torch, transformers, safetensors, numpy)."""
import numpy as np
import torch
import transformers
from torch import nn
from torch.nn import functional as F

from .tokenizer import MatrixTokenizer

_ConfigBase = getattr(transformers, "PreTrainedConfig", None) or transformers.PretrainedConfig


class MatbertConfig(_ConfigBase):
    """config.json of a matbert checkpoint: BertConfig's keys plus layer_norm_position
    ("post" | "pre"), position_embedding_type ("absolute" | "absolute_2d"), the matrix shape
    (matrix_m, matrix_n), row_sep, and the tokenizer's prec and n_sigma (derived from
    vocab_size when absent)."""
    model_type = "bert"  # what matbert checkpoints say; this class is never registered

    def __init__(self, vocab_size=805, hidden_size=768, num_hidden_layers=12,
                 num_attention_heads=12, intermediate_size=3072, hidden_act="gelu",
                 hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1,
                 max_position_embeddings=512, type_vocab_size=2, initializer_range=0.02,
                 layer_norm_eps=1e-12, layer_norm_position="post",
                 position_embedding_type="absolute", matrix_m=20, matrix_n=20, row_sep=False,
                 n_sigma=4, pad_token_id=0, **kwargs):
        # transformers validates layer_types against its own kinds; matbert's checkpoints use
        # it to name their extensions (so that plain BertModel refuses them). Keep it aside.
        self.matbert_layer_types = kwargs.pop("layer_types", None)
        self.vocab_size, self.hidden_size = vocab_size, hidden_size
        self.num_hidden_layers, self.num_attention_heads = num_hidden_layers, num_attention_heads
        self.intermediate_size, self.hidden_act = intermediate_size, hidden_act
        self.hidden_dropout_prob = hidden_dropout_prob
        self.attention_probs_dropout_prob = attention_probs_dropout_prob
        self.max_position_embeddings, self.type_vocab_size = max_position_embeddings, type_vocab_size
        self.initializer_range, self.layer_norm_eps = initializer_range, layer_norm_eps
        if layer_norm_position not in ("post", "pre"):
            raise ValueError(f"layer_norm_position must be post or pre, got {layer_norm_position!r}")
        if position_embedding_type not in ("absolute", "absolute_2d"):
            raise ValueError("position_embedding_type must be absolute or absolute_2d, got "
                             f"{position_embedding_type!r}")
        self.layer_norm_position = layer_norm_position
        self.position_embedding_type = position_embedding_type
        self.matrix_m, self.matrix_n, self.row_sep = matrix_m, matrix_n, row_sep
        self.n_sigma = n_sigma
        super().__init__(pad_token_id=pad_token_id, **kwargs)

    def to_dict(self):
        out = super().to_dict()
        layer_types = out.pop("matbert_layer_types", None)
        if layer_types:
            out["layer_types"] = layer_types
        return out

    def tokenizer(self):
        """The MatrixTokenizer the checkpoint was trained with: prec follows from vocab_size
        (n_bins + 4, + 1 with row separators) and n_sigma."""
        n_bins = self.vocab_size - 4 - (1 if self.row_sep else 0)
        for prec in range(0, 5):
            if 2 * self.n_sigma * 10 ** prec + 1 == n_bins:
                return MatrixTokenizer(prec, self.n_sigma, self.row_sep)
        raise ValueError(f"vocab_size {self.vocab_size} fits no prec with n_sigma {self.n_sigma}")


class _Residual(nn.Module):
    """dense + dropout + LayerNorm (HuggingFace's BertSelfOutput / BertOutput names)."""

    def __init__(self, d_in, d_out, c):
        super().__init__()
        self.dense = nn.Linear(d_in, d_out)
        self.LayerNorm = nn.LayerNorm(d_out, eps=c.layer_norm_eps)
        self.dropout = nn.Dropout(c.hidden_dropout_prob)


class _SelfAttention(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.heads, self.p = c.num_attention_heads, c.attention_probs_dropout_prob
        self.query = nn.Linear(c.hidden_size, c.hidden_size)
        self.key = nn.Linear(c.hidden_size, c.hidden_size)
        self.value = nn.Linear(c.hidden_size, c.hidden_size)

    def forward(self, x):  # (B, L, H) -> (B, L, H)
        b, l, h = x.shape

        def split(t):  # (B, L, H) -> (B, heads, L, d)
            return t.view(b, l, self.heads, h // self.heads).transpose(1, 2)

        ctx = F.scaled_dot_product_attention(split(self.query(x)), split(self.key(x)),
                                             split(self.value(x)),
                                             dropout_p=self.p if self.training else 0.0)
        return ctx.transpose(1, 2).reshape(b, l, h)


class _Attention(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.self = _SelfAttention(c)
        self.output = _Residual(c.hidden_size, c.hidden_size, c)


class _Intermediate(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.dense = nn.Linear(c.hidden_size, c.intermediate_size)


class _Layer(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.pre_ln = c.layer_norm_position == "pre"
        self.attention = _Attention(c)
        self.intermediate = _Intermediate(c)
        self.output = _Residual(c.intermediate_size, c.hidden_size, c)

    def forward(self, x):  # (B, L, H)
        a, o = self.attention.output, self.output

        def mlp(t):
            return o.dropout(o.dense(F.gelu(self.intermediate.dense(t))))

        if self.pre_ln:  # x + Attn(LN(x)), then x + MLP(LN(x))
            x = x + a.dropout(a.dense(self.attention.self(a.LayerNorm(x))))
            return x + mlp(o.LayerNorm(x))
        x = a.LayerNorm(x + a.dropout(a.dense(self.attention.self(x))))  # post-LN (BERT)
        return o.LayerNorm(x + mlp(x))


class _Embeddings(nn.Module):
    def __init__(self, c):
        super().__init__()
        h = c.hidden_size
        self.word_embeddings = nn.Embedding(c.vocab_size, h, padding_idx=0)
        self.position_embeddings = nn.Embedding(c.max_position_embeddings, h)
        self.token_type_embeddings = nn.Embedding(c.type_vocab_size, h)
        self.two_d = c.position_embedding_type == "absolute_2d"
        if self.two_d:
            self.row_embeddings = nn.Embedding(c.matrix_m + 1, h)
            self.col_embeddings = nn.Embedding(c.matrix_n + 1, h)
            # Row and column of each position: 1-based for entries, 0 for [CLS], [SEP] and
            # [ROW_SEP]. Plain lists, not buffers: transformers builds models on the meta
            # device, where buffers that are not in the checkpoint lose their values.
            self.rows, self.cols = [0], [0]
            for i in range(c.matrix_m):
                if i > 0 and c.row_sep:
                    self.rows.append(0), self.cols.append(0)
                self.rows += [i + 1] * c.matrix_n
                self.cols += list(range(1, c.matrix_n + 1))
            self.rows.append(0), self.cols.append(0)
            self._ids = {}  # (length, device) -> (row ids, col ids), made once per shape
        self.LayerNorm = nn.LayerNorm(h, eps=c.layer_norm_eps)
        self.dropout = nn.Dropout(c.hidden_dropout_prob)

    def forward(self, input_ids):  # (B, L) -> (B, L, H)
        l = input_ids.shape[1]
        x = (self.word_embeddings(input_ids)
             + self.position_embeddings(torch.arange(l, device=input_ids.device))
             + self.token_type_embeddings.weight[0])
        if self.two_d:
            key = (l, input_ids.device)
            if key not in self._ids:
                self._ids[key] = (torch.tensor(self.rows[:l], device=key[1]),
                                  torch.tensor(self.cols[:l], device=key[1]))
            rows, cols = self._ids[key]
            x = x + self.row_embeddings(rows) + self.col_embeddings(cols)
        return self.dropout(self.LayerNorm(x))


class _Encoder(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.layer = nn.ModuleList(_Layer(c) for _ in range(c.num_hidden_layers))
        if c.layer_norm_position == "pre":
            self.LayerNorm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)

    def forward(self, x):
        for layer in self.layer:
            x = layer(x)
        return self.LayerNorm(x) if hasattr(self, "LayerNorm") else x


class _Bert(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.embeddings = _Embeddings(c)
        self.encoder = _Encoder(c)


class BertForMatrixRegression(transformers.PreTrainedModel):
    """BERT encoder + linear head over every position (DESIGN.md section 3). forward(input_ids,
    labels=None) returns logits (B, L, 1), hidden_states (B, L, H) and, with labels, the MSE
    over positions whose label is not NaN."""
    config_class = MatbertConfig
    base_model_prefix = "matbert"  # parameter names carry "bert." themselves

    def __init__(self, config):
        super().__init__(config)
        self.bert = _Bert(config)
        self.regressor = nn.Linear(config.hidden_size, 1)
        self.post_init()

    def _init_weights(self, module):  # as the trainer: N(0, initializer_range), unit LayerNorm
        std = self.config.initializer_range
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, 0.0, std)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, 0.0, std)
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)

    def forward(self, input_ids, labels=None, **unused):
        hidden = self.bert.encoder(self.bert.embeddings(input_ids))  # (B, L, H)
        logits = self.regressor(hidden)  # (B, L, 1)
        loss = None
        if labels is not None:
            valid = ~torch.isnan(labels)
            err = (logits.squeeze(-1) - torch.nan_to_num(labels)) ** 2 * valid
            loss = err.sum() / valid.sum().clamp_min(1)
        return transformers.modeling_outputs.TokenClassifierOutput(
            loss=loss, logits=logits, hidden_states=hidden)

    @torch.no_grad()
    def complete(self, matrix):
        """The matrix with its NaN entries filled in by the model: an m×n array (or a k×m×n
        batch) of the shape the checkpoint was trained on. As in training, each matrix is
        scaled to unit variance by the standard deviation of its observed entries, tokenized
        with missing entries as [MASK], and the model's outputs are scaled back; observed
        entries are returned as given."""
        matrix = np.asarray(matrix, dtype=np.float64)
        single = matrix.ndim == 2
        batch = matrix[None] if single else matrix
        m, n = self.config.matrix_m, self.config.matrix_n
        if batch.ndim != 3 or batch.shape[1:] != (m, n):
            raise ValueError(f"this checkpoint completes {m}×{n} matrices; got shape "
                             f"{matrix.shape}")
        observed = ~np.isnan(batch)
        if (observed.sum(axis=(1, 2)) < 2).any():
            raise ValueError("every matrix needs at least 2 observed entries")
        scale = np.array([b[o].std() for b, o in zip(batch, observed)])  # (k,)
        scale[scale == 0] = 1.0
        tokenizer = self.config.tokenizer()
        ids = torch.from_numpy(tokenizer.encode(batch / scale[:, None, None]))
        was_training = self.training
        self.eval()
        logits = self(ids.to(self.device)).logits.squeeze(-1).double().cpu().numpy()  # (k, L)
        self.train(was_training)
        predicted = logits[:, tokenizer.entry_positions(m, n)].reshape(-1, m, n)
        out = np.where(observed, batch, predicted * scale[:, None, None])
        return out[0] if single else out
