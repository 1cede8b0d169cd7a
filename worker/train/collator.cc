#include "worker/train/collator.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "worker/data/random.h"

namespace matbert {

double MatrixCollator::MaskProb(int64_t step) const {
  if (step <= 0 || options_.schedule_steps <= 1) return options_.mask_prob;
  const double progress = static_cast<double>(std::min(step, options_.schedule_steps) - 1) /
                          static_cast<double>(options_.schedule_steps - 1);
  return options_.mask_prob_start + (options_.mask_prob - options_.mask_prob_start) * progress;
}

TrainBatch MatrixCollator::Collate(std::span<const int32_t> ids, std::span<const double> values,
                                   std::span<const uint64_t> keys, int64_t step) const {
  const double mask_prob = MaskProb(step);
  const int64_t b = static_cast<int64_t>(keys.size());
  const int64_t l = static_cast<int64_t>(ids.size()) / b;
  constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
  TrainBatch batch;
  batch.input_ids = torch::empty({b, l}, torch::kInt64);
  batch.labels = torch::empty({b, l}, torch::kFloat32);
  batch.masked = torch::zeros({b, l}, torch::kBool);
  batch.values = torch::empty({b, l}, torch::kFloat64);
  batch.loss_weights = torch::zeros({b, l}, torch::kFloat32);
  batch.causal = torch::zeros({b}, torch::kBool);
  float* weights = batch.loss_weights.data_ptr<float>();
  bool* causal = batch.causal.data_ptr<bool>();
  const bool diffusion = options_.diffusion && step > 0;
  int64_t labelled = 0, entries = 0;
  batch.attention_mask = torch::ones({b, l}, torch::kInt64);
  batch.first_key = b > 0 ? static_cast<int64_t>(keys[0]) : 0;
  int64_t* out_ids = batch.input_ids.data_ptr<int64_t>();
  float* labels = batch.labels.data_ptr<float>();
  bool* masked = batch.masked.data_ptr<bool>();
  double* out_values = batch.values.data_ptr<double>();
  const int64_t n_bins = tokenizer_.n_bins();
  for (int64_t row = 0; row < b; ++row) {
    RandomStream rng(options_.seed, keys[row]);
    if (step > 0 && options_.causal_fraction > 0 && rng.NextUniform() < options_.causal_fraction) {
      causal[row] = true;
      for (int64_t j = 0; j < l; ++j) {
        const int64_t at = row * l + j;
        out_ids[at] = ids[at];
        out_values[at] = values[at];
        const bool next_is_entry = j + 1 < l && tokenizer_.IsBinId(ids[at + 1]);
        labels[at] = next_is_entry ? static_cast<float>(values[at + 1]) : kNaN;
        if (next_is_entry) weights[at] = 1.0f, ++labelled;
        if (tokenizer_.IsBinId(ids[at])) ++entries;
      }
      continue;
    }
    // Masked diffusion: this matrix's ratio, kept away from 0 so that 1/t stays bounded.
    const double ratio = diffusion ? 1e-3 + (1 - 1e-3) * rng.NextUniform() : mask_prob;
    for (int64_t j = 0; j < l; ++j) {
      const int64_t at = row * l + j;
      const int32_t id = ids[at];
      out_ids[at] = id;
      out_values[at] = values[at];
      if (!tokenizer_.IsBinId(id)) {  // [CLS], [SEP], [ROW_SEP]
        labels[at] = kNaN;
        continue;
      }
      ++entries;
      const bool mask = rng.NextUniform() < ratio;
      const bool labelled_here = mask || (!options_.loss_masked_only && !diffusion);
      labels[at] = labelled_here ? static_cast<float>(values[at]) : kNaN;
      if (labelled_here) {
        weights[at] = diffusion ? static_cast<float>(1.0 / ratio) : 1.0f;
        ++labelled;
      }
      if (!mask) continue;
      masked[at] = true;
      out_ids[at] = MatrixTokenizer::kMaskId;
      if (options_.bert_masking) {
        const double u = rng.NextUniform();
        if (u >= 1.0 - options_.keep_prob) {
          out_ids[at] = id;  // keep
        } else if (u >= 1.0 - options_.keep_prob - options_.random_prob) {
          out_ids[at] =
              MatrixTokenizer::kFirstBinId + static_cast<int64_t>(rng.NextUniform() * n_bins);
        }
      }
    }
  }
  batch.loss_denominator = static_cast<double>(diffusion ? entries : labelled);
  return batch;
}

}  // namespace matbert
