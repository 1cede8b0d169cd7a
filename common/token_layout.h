// The numbers of DESIGN.md §2's token layout, in one place for the job spec's checks and the
// tokenizer: n_bins = 2·n_sigma·10^prec + 1 value bins, ids [PAD]=0 [MASK]=1 [CLS]=2 [SEP]=3,
// bin b ↦ 4 + b, and [ROW_SEP] = n_bins + 4 when row separators are on.
#pragma once

#include <cstdint>

namespace matbert {

inline int64_t TokenBins(int prec, int n_sigma) {
  int64_t pow10 = 1;
  for (int i = 0; i < prec; ++i) pow10 *= 10;
  return 2 * int64_t{n_sigma} * pow10 + 1;
}

// n_bins + 4 special tokens (+ [ROW_SEP]): 13, 85, 805, 8005 for prec 0..3 and n_sigma 4.
inline int64_t TokenVocabSize(int prec, int n_sigma, bool row_sep) {
  return TokenBins(prec, n_sigma) + 4 + (row_sep ? 1 : 0);
}

// [CLS], the m·n entries row-major (with m-1 [ROW_SEP]s when on), [SEP].
inline int64_t TokenSequenceLength(int m, int n, bool row_sep) {
  return int64_t{m} * n + 2 + (row_sep ? m - 1 : 0);
}

// The token position of entry e (row-major) of an m×n matrix with n columns: after [CLS],
// and after the [ROW_SEP]s of the rows above it when on.
inline int64_t EntryTokenPosition(int64_t e, int n, bool row_sep) {
  return 1 + e + (row_sep ? e / n : 0);
}

}  // namespace matbert
