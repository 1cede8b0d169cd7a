// Evaluation on a fixed held-out set: the model's RMSE on the masked entries, and three
// baselines on the same entries (the observed entries' mean, rank-r ALS, and soft-impute's
// nuclear-norm completion) that see only what the model sees.
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <vector>

#include "common/job_spec.h"
#include "worker/train/batch_source.h"
#include "worker/train/bert_model.h"
#include "worker/train/eval_result.h"

namespace matbert {

// The baselines' RMSE (model_rmse left 0). Entries come from the observed tokens as bin
// centres, as the model sees them.
EvalResult BaselineRmse(const JobSpec& spec, const std::vector<TrainBatch>& batches);

// The model's RMSE on the masked entries, in eval mode (restored to train mode after).
double ModelRmse(BertForMatrixRegression& model, const std::vector<TrainBatch>& batches,
                 const torch::Device& device);

}  // namespace matbert
