#include "worker/train/lamb.h"

#include <cmath>

#include "worker/train/torch_compat.h"

namespace matbert {

torch::Tensor Lamb::step(LossClosure closure) {
  torch::NoGradGuard no_grad;
  torch::Tensor loss = {};
  if (closure != nullptr) {
    at::AutoGradMode enable_grad(true);
    loss = closure();
  }
  for (auto& group : param_groups()) {
    const auto& options = static_cast<const torch::optim::AdamWOptions&>(group.options());
    const auto [beta1, beta2] = options.betas();
    for (auto& p : group.params()) {
      if (!p.grad().defined()) continue;
      const torch::Tensor& grad = p.grad();
      auto& state = compat::AdamWStateOf(state_, p);
      state.step(state.step() + 1);
      torch::Tensor& m = state.exp_avg();
      torch::Tensor& v = state.exp_avg_sq();
      m.mul_(beta1).add_(grad, 1 - beta1);
      v.mul_(beta2).addcmul_(grad, grad, 1 - beta2);
      const double correction1 = 1 - std::pow(beta1, static_cast<double>(state.step()));
      const double correction2 = 1 - std::pow(beta2, static_cast<double>(state.step()));
      torch::Tensor update = (m / correction1) / ((v / correction2).sqrt().add_(options.eps()));
      if (options.weight_decay() != 0) update.add_(p, options.weight_decay());
      const double weight_norm = p.norm().item<double>();
      const double update_norm = update.norm().item<double>();
      const double trust = weight_norm > 0 && update_norm > 0 ? weight_norm / update_norm : 1.0;
      p.add_(update, -options.lr() * trust);
    }
  }
  return loss;
}

}  // namespace matbert
