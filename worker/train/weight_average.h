// An exponential moving average of a model's parameters (training.ema_decay): after every
// optimizer step, average ← d · average + (1 − d) · parameter, starting from the parameters
// it was made with. Evaluated beside the raw weights, saved in checkpoints as
// model_ema.safetensors (the parameters' names, so it loads like model.safetensors).
#pragma once

#include <vector>

#include "worker/train/bert_model.h"
#include "worker/train/safetensors.h"

namespace matbert {

class WeightAverage {
 public:
  WeightAverage(BertForMatrixRegression& model, double decay);

  void Update();
  // Exchanges the model's parameters and the averages; a second call exchanges them back.
  void Swap();
  // The averages by parameter name: written to checkpoints, or loaded into (copy_).
  const NamedTensors& averages() const { return averages_; }

 private:
  std::vector<torch::Tensor> parameters_;  // the model's own
  NamedTensors averages_;
  double decay_;
};

}  // namespace matbert
