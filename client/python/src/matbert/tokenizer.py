"""MatrixTokenizer: matrices to token ids and back, as DESIGN.md section 2 defines them and as
matbert-worker generates and trains (numpy only)."""
import numpy as np

PAD_ID, MASK_ID, CLS_ID, SEP_ID = 0, 1, 2, 3
FIRST_BIN_ID = 4


class MatrixTokenizer:
    """prec: digits after the decimal point; n_sigma: values are clamped to ±n_sigma;
    row_sep: a [ROW_SEP] token between rows.

    n_bins = 2·n_sigma·10^prec + 1; value v -> bin round((clamp(v) + n_sigma)·10^prec) (half to
    even) -> id 4 + bin; [PAD]=0 [MASK]=1 [CLS]=2 [SEP]=3, [ROW_SEP] = n_bins + 4."""

    def __init__(self, prec=2, n_sigma=4, row_sep=False):
        if not 0 <= prec <= 4:
            raise ValueError(f"prec must be in 0..4, got {prec}")
        if not 1 <= n_sigma <= 100:
            raise ValueError(f"n_sigma must be in 1..100, got {n_sigma}")
        self.prec, self.n_sigma, self.row_sep = prec, n_sigma, row_sep
        self.scale = 10 ** prec
        self.n_bins = 2 * n_sigma * self.scale + 1
        self.row_sep_id = self.n_bins + 4 if row_sep else None
        self.vocab_size = self.n_bins + 4 + (1 if row_sep else 0)

    @classmethod
    def from_config(cls, config):
        """The tokenizer of a dataset's tokenizer_config.json (a dict)."""
        return cls(config["prec"], config["n_sigma"], bool(config.get("row_sep", False)))

    def sequence_length(self, m, n):
        return m * n + 2 + (m - 1 if self.row_sep else 0)

    def entry_positions(self, m, n):
        """Sequence positions of the m·n entries, row-major: (m·n,) int array."""
        rows = np.arange(m)[:, None] * (n + (1 if self.row_sep else 0))
        return (1 + rows + np.arange(n)[None, :]).reshape(-1)

    def encode(self, matrix):
        """input_ids (L,) int64 of an m×n matrix; NaN entries become [MASK]. A (k, m, n) batch
        gives (k, L)."""
        matrix = np.asarray(matrix, dtype=np.float64)
        if matrix.ndim == 2:
            return self.encode(matrix[None])[0]
        if matrix.ndim != 3:
            raise ValueError(f"expected an m×n matrix or a k×m×n batch, got shape {matrix.shape}")
        k, m, n = matrix.shape
        clamped = np.clip(matrix, -self.n_sigma, self.n_sigma)
        bins = np.round((np.nan_to_num(clamped) + self.n_sigma) * self.scale).astype(np.int64)
        entry_ids = np.where(np.isnan(matrix), MASK_ID, FIRST_BIN_ID + bins).reshape(k, m * n)
        ids = np.full((k, self.sequence_length(m, n)), self.row_sep_id or PAD_ID, np.int64)
        ids[:, 0], ids[:, -1] = CLS_ID, SEP_ID
        ids[:, self.entry_positions(m, n)] = entry_ids
        return ids

    def decode(self, ids):
        """The value at the centre of each bin id (NaN for special tokens)."""
        ids = np.asarray(ids)
        values = (ids - FIRST_BIN_ID) / self.scale - self.n_sigma
        is_bin = (ids >= FIRST_BIN_ID) & (ids < FIRST_BIN_ID + self.n_bins)
        return np.where(is_bin, values, np.nan)
