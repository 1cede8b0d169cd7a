// Muon (Keller Jordan et al., 2024) for the encoder's 2-D weight matrices, AdamW for the
// rest (embeddings, biases, LayerNorms, the regression head). For each matrix: a Nesterov
// momentum buffer b ← μ b + g (μ = 0.95) and direction d = g + μ b, orthogonalised by five
// Newton–Schulz iterations (X ← a X + (b A + c A²) X with A = X Xᵀ, (a, b, c) = (3.4445,
// −4.7750, 2.0315), from X = d / ‖d‖_F, on the wide orientation), then θ ← (1 − lr λ) θ −
// lr · max(1, rows / cols)^½ · X. Its state lives in AdamW's (the buffer as exp_avg), so
// checkpoints and resume are AdamW's.
#pragma once

#include <torch/optim/adamw.h>

#include <vector>

namespace matbert {

// X ≈ U Vᵀ for the SVD d = U S Vᵀ of a 2-D tensor, by the five Newton–Schulz iterations above.
torch::Tensor NewtonSchulzOrthogonalise(const torch::Tensor& d);

class Muon : public torch::optim::AdamW {
 public:
  static constexpr double kMomentum = 0.95;
  // The first `muon_groups` groups hold 2-D matrices stepped by Muon; the others by AdamW.
  Muon(std::vector<torch::optim::OptimizerParamGroup> groups, size_t muon_groups)
      : torch::optim::AdamW(std::move(groups)), muon_groups_(muon_groups) {}

  torch::Tensor step(LossClosure closure = nullptr) override;

 private:
  size_t muon_groups_;
};

}  // namespace matbert
