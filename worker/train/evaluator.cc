#include "worker/train/evaluator.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>

#include "worker/data/matrix_tokenizer.h"
#include "worker/train/als_baseline.h"

namespace matbert {

// Baselines see what the model sees: the observed (unmasked) entries, as bin centres.
EvalResult BaselineRmse(const JobSpec& spec, const std::vector<TrainBatch>& batches) {
  const MatrixTokenizer tok =
      *MatrixTokenizer::Create({spec.matrix.prec, spec.matrix.n_sigma, spec.matrix.row_sep});
  const int m = spec.matrix.m, n = spec.matrix.n;
  std::vector<double> observed_values(m * n), prediction(m * n);
  std::vector<uint8_t> observed(m * n);
  double mean_sq = 0, als_sq = 0;
  int64_t count = 0;
  for (const TrainBatch& batch : batches) {
    const int64_t b = batch.input_ids.size(0), l = batch.input_ids.size(1);
    const int64_t* ids = batch.input_ids.data_ptr<int64_t>();
    const bool* masked = batch.masked.data_ptr<bool>();
    const double* values = batch.values.data_ptr<double>();
    for (int64_t row = 0; row < b; ++row) {
      // Entry k of the matrix sits at the k-th bin-valued position of the original row.
      std::vector<int64_t> position;
      for (int64_t j = 0; j < l; ++j) {
        if (!std::isnan(values[row * l + j])) position.push_back(j);
      }
      double sum = 0;
      int64_t seen = 0;
      for (int k = 0; k < m * n; ++k) {
        const int64_t at = row * l + position[k];
        observed[k] = !masked[at];
        observed_values[k] = observed[k] ? tok.Decode(static_cast<int32_t>(ids[at])) : 0.0;
        if (observed[k]) sum += observed_values[k], ++seen;
      }
      const double mean = seen > 0 ? sum / seen : 0.0;
      AlsComplete(observed_values, observed, m, n, spec.matrix.r, prediction);
      for (int k = 0; k < m * n; ++k) {
        if (observed[k]) continue;
        const double truth = values[row * l + position[k]];
        mean_sq += (mean - truth) * (mean - truth);
        als_sq += (prediction[k] - truth) * (prediction[k] - truth);
        ++count;
      }
    }
  }
  EvalResult r;
  r.entries = count;
  r.mean_rmse = std::sqrt(mean_sq / std::max<int64_t>(count, 1));
  r.als_rmse = std::sqrt(als_sq / std::max<int64_t>(count, 1));
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
