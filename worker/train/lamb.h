// LAMB (You et al., "Large Batch Optimization for Deep Learning", 2019): Adam's bias-corrected
// moments plus decoupled weight decay give each tensor an update u = m̂ / (√v̂ + ε) + λ θ,
// which is scaled by the tensor's trust ratio ‖θ‖ / ‖u‖ (1 when either norm is 0):
// θ ← θ − lr · (‖θ‖ / ‖u‖) · u. Its state (step, m, v) is AdamW's, so it is an AdamW that
// steps differently: options, learning-rate setting and checkpoints are shared.
#pragma once

#include <torch/optim/adamw.h>

#include <vector>

namespace matbert {

class Lamb : public torch::optim::AdamW {
 public:
  explicit Lamb(std::vector<torch::optim::OptimizerParamGroup> groups)
      : torch::optim::AdamW(std::move(groups)) {}

  torch::Tensor step(LossClosure closure = nullptr) override;
};

}  // namespace matbert
