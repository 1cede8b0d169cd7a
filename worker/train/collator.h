// The collator of DESIGN.md §2: tokenised matrices in, a training batch out. Each entry is
// masked with probability mask_prob, drawn from a stream keyed by the sample, so a batch is
// a pure function of its samples (resumed and data-parallel runs see the same masks).
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <span>

#include "worker/data/matrix_tokenizer.h"

namespace matbert {

struct TrainBatch {
  torch::Tensor input_ids;       // (B, L) int64, [MASK] at masked entries
  torch::Tensor labels;          // (B, L) float32, NaN at special tokens (and unmasked
                                 // entries when loss_masked_only)
  torch::Tensor attention_mask;  // (B, L) int64, all ones (rows have equal length)
  torch::Tensor masked;          // (B, L) bool, true at masked entries
  torch::Tensor values;          // (B, L) float64, the true values, NaN at special tokens
  int64_t first_key = 0;         // key of the batch's first sample (for checks)
};

struct CollatorOptions {
  double mask_prob = 0.15;
  bool bert_masking = false;  // 80% [MASK], 10% random bin, 10% unchanged
  bool loss_masked_only = true;
  uint64_t seed = 0;  // of the masking streams
};

class MatrixCollator {
 public:
  MatrixCollator(const MatrixTokenizer& tokenizer, const CollatorOptions& options)
      : tokenizer_(tokenizer), options_(options) {}

  // `ids` and `values` hold B rows of L tokens (B = keys.size()); keys[b] names sample b's
  // masking stream. Thread-safe.
  TrainBatch Collate(std::span<const int32_t> ids, std::span<const double> values,
                     std::span<const uint64_t> keys) const;

 private:
  MatrixTokenizer tokenizer_;
  CollatorOptions options_;
};

}  // namespace matbert
