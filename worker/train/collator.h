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
  torch::Tensor loss_weights;    // (B, L) float32: each labelled position's weight in the loss
  torch::Tensor causal;          // (B,) bool: read causally, labelled with the next entry
  double loss_denominator = 0;   // what the weighted squared errors are divided by
  int64_t first_key = 0;         // key of the batch's first sample (for checks)
};

struct CollatorOptions {
  // The fraction of entries masked goes linearly from mask_prob_start at step 1 to mask_prob
  // at step schedule_steps (equal: no schedule); step 0 (evaluation) masks mask_prob.
  double mask_prob = 0.15;
  double mask_prob_start = 0.15;
  int64_t schedule_steps = 1;
  bool bert_masking = false;  // of the masked: random_prob a random bin, keep_prob unchanged,
  double random_prob = 0.1;   // the rest [MASK] (BERT's 80/10/10 by default)
  double keep_prob = 0.1;
  bool loss_masked_only = true;
  // Masked diffusion (training steps only): each matrix draws its own masking ratio t in
  // (0, 1], its masked entries weigh 1/t, and the loss is divided by all entries: an
  // unbiased estimate of the error over every entry. Evaluation masks at mask_prob.
  bool diffusion = false;
  // Hybrid (training steps only): each matrix is read causally with this probability. A
  // causal matrix masks nothing; position p is labelled with the value of the entry at p+1
  // (NaN where p+1 is not an entry), so [CLS] predicts the first entry and the last entry
  // nothing. Evaluation reads every matrix both ways, as for "mlm".
  double causal_fraction = 0;
  uint64_t seed = 0;  // of the masking streams
};

class MatrixCollator {
 public:
  MatrixCollator(const MatrixTokenizer& tokenizer, const CollatorOptions& options)
      : tokenizer_(tokenizer), options_(options) {}

  // `ids` and `values` hold B rows of L tokens (B = keys.size()); keys[b] names sample b's
  // masking stream; `step` picks the masking probability (0: the final one). Thread-safe.
  TrainBatch Collate(std::span<const int32_t> ids, std::span<const double> values,
                     std::span<const uint64_t> keys, int64_t step = 0) const;
  // The masking probability at `step`.
  double MaskProb(int64_t step) const;

 private:
  MatrixTokenizer tokenizer_;
  CollatorOptions options_;
};

}  // namespace matbert
