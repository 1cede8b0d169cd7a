#include "worker/train/soft_impute.h"

#include <torch/torch.h>

#include <cmath>

namespace matbert {

void SoftImpute(std::span<const double> values, std::span<const uint8_t> observed, int64_t count,
                int m, int n, std::span<double> completed, const SoftImputeOptions& options) {
  if (count == 0) return;
  torch::NoGradGuard no_grad;
  const auto f64 = torch::TensorOptions().dtype(torch::kFloat64);
  const torch::Tensor seen =
      torch::from_blob(const_cast<uint8_t*>(observed.data()), {count, m, n}, torch::kUInt8)
          .to(torch::kBool);
  const torch::Tensor known =
      torch::where(seen, torch::from_blob(const_cast<double*>(values.data()), {count, m, n}, f64),
                   torch::zeros({count, m, n}, f64));
  // σ₁ of each observed matrix (missing entries as 0): above it every singular value is cut.
  const torch::Tensor first = std::get<1>(torch::linalg_svd(known, false)).select(-1, 0);
  torch::Tensor estimate = known;
  for (int stage = 1; stage <= options.stages; ++stage) {
    const double fraction =
        std::pow(options.final_lambda, static_cast<double>(stage) / options.stages);
    const torch::Tensor lambda = (first * fraction).unsqueeze(-1);  // (count, 1)
    for (int i = 0; i < options.iterations; ++i) {
      const torch::Tensor filled = torch::where(seen, known, estimate);
      auto [u, s, vh] = torch::linalg_svd(filled, false);
      s = torch::clamp_min(s - lambda, 0);
      estimate = torch::matmul(u * s.unsqueeze(-2), vh);
    }
  }
  torch::Tensor out = estimate.contiguous();
  std::copy_n(out.data_ptr<double>(), count * m * n, completed.begin());
}

}  // namespace matbert
