#include "worker/train/weight_average.h"

namespace matbert {

WeightAverage::WeightAverage(BertForMatrixRegression& model, double decay) : decay_(decay) {
  torch::NoGradGuard no_grad;
  for (const auto& p : model->named_parameters()) {
    parameters_.push_back(p.value());
    averages_.emplace_back(p.key(), p.value().detach().clone());
  }
}

void WeightAverage::Update() {
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < parameters_.size(); ++i) {
    averages_[i].second.mul_(decay_).add_(parameters_[i], 1.0 - decay_);
  }
}

void WeightAverage::Swap() {
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < parameters_.size(); ++i) {
    torch::Tensor kept = parameters_[i].detach().clone();
    parameters_[i].copy_(averages_[i].second);
    averages_[i].second.copy_(kept);
  }
}

}  // namespace matbert
