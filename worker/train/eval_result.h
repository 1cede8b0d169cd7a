// What an evaluation measured, without LibTorch (the metrics log writes it).
#pragma once

#include <cstdint>

namespace matbert {

// RMSEs on the masked entries of the held-out set: the model's and each baseline's.
struct EvalResult {
  double model_rmse = 0, mean_rmse = 0, als_rmse = 0, soft_impute_rmse = 0;
  int64_t entries = 0;  // masked entries evaluated
};

}  // namespace matbert
