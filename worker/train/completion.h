// Matrix completion with a trained checkpoint (`matbert-worker complete`): the model predicts
// every missing entry of matrices shaped as it was trained on; the classical baselines
// (observed mean, rank-r ALS, soft-impute) can complete the same matrices beside it.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace matbert {

struct CompletionRequest {
  std::string checkpoint;          // a checkpoint directory (step-NNNNNNN, or a downloaded one)
  std::span<const double> values;  // count × m × n, row-major; NaN = missing
  int64_t count = 0;
  int m = 0, n = 0;
  std::string source;     // names the matrices in errors ("data/x.npy")
  bool normalize = true;  // scale by the observed entries' std, as the training data were
  bool baselines = false;
  bool average = false;  // the weights' moving average (model_ema.safetensors) instead
  int threads = 0;       // intra-op threads; 0 = LibTorch's default
};

struct Completion {
  // count × m × n: the given entries as they were, the missing ones filled.
  std::vector<double> model;
  std::vector<double> mean, als, soft_impute;  // with baselines; else empty
  int64_t missing = 0;                         // entries filled, over all matrices
};

// The job spec a checkpoint was trained with: its spec.toml, or (checkpoints written before
// they carried one) config.toml of the run two levels up. NOT_FOUND naming both when neither.
absl::StatusOr<std::string> CheckpointSpecPath(const std::string& checkpoint);

// A checkpoint's own held-out evaluation matrices, masked as the trainer's evaluation masks
// them: what `matbert-worker complete --eval-set` completes.
struct EvalSet {
  int64_t count = 0;
  int m = 0, n = 0;
  // count × m × n, row-major: the observed entries as the model sees them (bin centres), NaN
  // at the masked ones.
  std::vector<double> observed;
  std::vector<double> truth;  // the matrices' values (unit std, as generated for training)
};
absl::StatusOr<EvalSet> CheckpointEvalSet(const std::string& checkpoint);

// INVALID_ARGUMENT naming `source` for matrices of another shape than the checkpoint's, or a
// matrix with no observed entry; errors naming the file for an unreadable checkpoint.
absl::StatusOr<Completion> CompleteMatrices(const CompletionRequest& request);

}  // namespace matbert
