#include "worker/train/muon.h"

#include <algorithm>
#include <cmath>

#include "worker/train/torch_compat.h"

namespace matbert {

torch::Tensor NewtonSchulzOrthogonalise(const torch::Tensor& d) {
  constexpr double a = 3.4445, b = -4.7750, c = 2.0315;
  const bool tall = d.size(0) > d.size(1);
  torch::Tensor x = tall ? d.t() : d;
  x = x / (x.norm() + 1e-7);
  for (int i = 0; i < 5; ++i) {
    const torch::Tensor gram = torch::matmul(x, x.t());
    const torch::Tensor poly = b * gram + c * torch::matmul(gram, gram);
    x = a * x + torch::matmul(poly, x);
  }
  return tall ? x.t() : x;
}

torch::Tensor Muon::step(LossClosure closure) {
  torch::NoGradGuard no_grad;
  // The matrices: Muon's update, and their gradients set aside so that AdamW skips them.
  std::vector<std::pair<torch::Tensor, torch::Tensor>> set_aside;
  for (size_t g = 0; g < muon_groups_ && g < param_groups().size(); ++g) {
    auto& group = param_groups()[g];
    const auto& options = static_cast<const torch::optim::AdamWOptions&>(group.options());
    for (auto& p : group.params()) {
      if (!p.grad().defined()) continue;
      const torch::Tensor grad = p.grad();
      auto& state = compat::AdamWStateOf(state_, p, /*second_moment=*/false);
      state.step(state.step() + 1);
      torch::Tensor& buffer = state.exp_avg();
      buffer.mul_(kMomentum).add_(grad);
      const torch::Tensor direction = grad + kMomentum * buffer;
      const torch::Tensor x = NewtonSchulzOrthogonalise(direction);
      const double scale =
          std::sqrt(std::max(1.0, static_cast<double>(p.size(0)) / static_cast<double>(p.size(1))));
      if (options.weight_decay() != 0) p.mul_(1 - options.lr() * options.weight_decay());
      p.add_(x, -options.lr() * scale);
      set_aside.emplace_back(p, grad);
      p.mutable_grad() = torch::Tensor();
    }
  }
  torch::Tensor loss = torch::optim::AdamW::step(std::move(closure));
  for (auto& [p, grad] : set_aside) p.mutable_grad() = grad;
  return loss;
}

}  // namespace matbert
