// Differences between the LibTorch versions matbert builds against: Debian's 1.13 (CPU) and
// the CUDA LibTorch 2.x of GPU hosts. Every #if on the LibTorch version lives here.
#pragma once

#include <ATen/ATen.h>
#include <ATen/autocast_mode.h>
#include <torch/optim/adamw.h>
#include <torch/version.h>

#include <cmath>
#include <limits>
#include <tuple>

namespace matbert::compat {

// The LibTorch this trainer was compiled against ("1.13.0", "2.15.0"); metrics.jsonl's summary
// records it, so a run says which trainer build produced it.
inline const char* LibTorchVersion() { return TORCH_VERSION; }

// softmax(q kᵀ / sqrt(d)) v over (B, heads, L, d) tensors, with attention dropout; where
// `allowed` (broadcast to (B, heads, L, L), bool) is defined, a query attends only to the keys
// it marks true.
inline at::Tensor ScaledDotProductAttention(const at::Tensor& q, const at::Tensor& k,
                                            const at::Tensor& v, double dropout_p,
                                            const at::Tensor& allowed = {}) {
#if TORCH_VERSION_MAJOR >= 2
  return at::scaled_dot_product_attention(
      q, k, v, allowed.defined() ? c10::optional<at::Tensor>(allowed) : c10::nullopt, dropout_p);
#else
  at::Tensor scores = at::matmul(q, k.transpose(-2, -1)) / std::sqrt(double(q.size(-1)));
  if (allowed.defined()) {
    scores = scores.masked_fill(allowed.logical_not(), -std::numeric_limits<double>::infinity());
  }
  at::Tensor probs = at::softmax(scores, -1);
  if (dropout_p > 0) probs = at::dropout(probs, dropout_p, true);
  return at::matmul(probs, v);
#endif
}

// Turns bf16 autocast on or off for CUDA ops.
inline void SetCudaAutocastBf16(bool enabled) {
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
  at::autocast::set_autocast_enabled(at::kCUDA, enabled);
  at::autocast::set_autocast_dtype(at::kCUDA, at::kBFloat16);
#else
  at::autocast::set_enabled(enabled);
  at::autocast::set_autocast_gpu_dtype(at::kBFloat16);
#endif
}

// The key of a parameter's state in torch::optim::Optimizer::state_: the address of its
// TensorImpl, as a string in LibTorch 1.x and as the pointer itself in 2.x.
inline auto OptimizerStateKey(const at::Tensor& p) {
#if TORCH_VERSION_MAJOR >= 2
  return static_cast<void*>(p.unsafeGetTensorImpl());
#else
  return c10::guts::to_string(p.unsafeGetTensorImpl());
#endif
}

// The AdamW state (step, exp_avg, exp_avg_sq) of parameter `p` in an optimizer's state_,
// made zero on first use; `second_moment` false leaves exp_avg_sq empty (Muon has none).
template <typename StateMap>
torch::optim::AdamWParamState& AdamWStateOf(StateMap& state, const at::Tensor& p,
                                            bool second_moment = true) {
  auto& slot = state[OptimizerStateKey(p)];
  if (!slot) {
    auto fresh = std::make_unique<torch::optim::AdamWParamState>();
    fresh->step(0);
    fresh->exp_avg(torch::zeros_like(p, torch::MemoryFormat::Preserve));
    fresh->exp_avg_sq(second_moment ? torch::zeros_like(p, torch::MemoryFormat::Preserve)
                                    : torch::zeros({0}, p.options()));
    slot = std::move(fresh);
  }
  return static_cast<torch::optim::AdamWParamState&>(*slot);
}

}  // namespace matbert::compat
