#include "worker/train/evaluator.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>

#include "worker/data/matrix_tokenizer.h"
#include "worker/train/als_baseline.h"
#include "worker/train/soft_impute.h"

namespace matbert {

// Baselines see what the model sees: the observed (unmasked) entries, as bin centres.
EvalResult BaselineRmse(const JobSpec& spec, const std::vector<TrainBatch>& batches) {
  const MatrixTokenizer tok =
      *MatrixTokenizer::Create({spec.matrix.prec, spec.matrix.n_sigma, spec.matrix.row_sep});
  const int m = spec.matrix.m, n = spec.matrix.n;
  // Every held-out matrix, one after another: what is observed, and the truth.
  std::vector<double> observed_values, truth;
  std::vector<uint8_t> observed;
  std::vector<double> prediction(m * n);
  double mean_sq = 0, als_sq = 0;
  int64_t count = 0, matrices = 0;
  for (const TrainBatch& batch : batches) {
    const int64_t b = batch.input_ids.size(0), l = batch.input_ids.size(1);
    const int64_t* ids = batch.input_ids.data_ptr<int64_t>();
    const bool* masked = batch.masked.data_ptr<bool>();
    const double* values = batch.values.data_ptr<double>();
    for (int64_t row = 0; row < b; ++row, ++matrices) {
      const size_t first = observed.size();
      // Entry k of the matrix sits at the k-th bin-valued position of the original row.
      double sum = 0;
      int64_t seen = 0;
      for (int64_t j = 0; j < l; ++j) {
        const int64_t at = row * l + j;
        if (std::isnan(values[at])) continue;
        observed.push_back(!masked[at]);
        observed_values.push_back(masked[at] ? 0.0 : tok.Decode(static_cast<int32_t>(ids[at])));
        truth.push_back(values[at]);
        if (!masked[at]) sum += observed_values.back(), ++seen;
      }
      const double mean = seen > 0 ? sum / seen : 0.0;
      const std::span<const double> mine(observed_values.data() + first, m * n);
      const std::span<const uint8_t> seen_here(observed.data() + first, m * n);
      AlsComplete(mine, seen_here, m, n, spec.matrix.r, prediction);
      for (int k = 0; k < m * n; ++k) {
        if (seen_here[k]) continue;
        const double t = truth[first + k];
        mean_sq += (mean - t) * (mean - t);
        als_sq += (prediction[k] - t) * (prediction[k] - t);
        ++count;
      }
    }
  }
  std::vector<double> completed(observed.size());
  SoftImpute(observed_values, observed, matrices, m, n, completed);
  double soft_sq = 0;
  for (size_t k = 0; k < observed.size(); ++k) {
    if (!observed[k]) soft_sq += (completed[k] - truth[k]) * (completed[k] - truth[k]);
  }
  EvalResult r;
  r.entries = count;
  const double entries = static_cast<double>(std::max<int64_t>(count, 1));
  r.mean_rmse = std::sqrt(mean_sq / entries);
  r.als_rmse = std::sqrt(als_sq / entries);
  r.soft_impute_rmse = std::sqrt(soft_sq / entries);
  return r;
}

double ModelRmse(BertForMatrixRegression& model, const std::vector<TrainBatch>& batches,
                 const torch::Device& device) {
  torch::NoGradGuard no_grad;
  model->eval();
  double sq = 0;
  int64_t count = 0;
  for (const TrainBatch& batch : batches) {
    torch::Tensor logits =
        model->forward(batch.input_ids.to(device)).squeeze(-1).to(torch::kCPU, torch::kFloat64);
    torch::Tensor err = (logits - batch.values).masked_select(batch.masked);
    sq += err.square().sum().item<double>();
    count += err.numel();
  }
  model->train();
  return std::sqrt(sq / std::max<int64_t>(count, 1));
}

}  // namespace matbert
