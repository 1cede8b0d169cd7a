// The trainer is built as a loadable module (libmatbert_train.so) so that matbert-worker
// itself does not link LibTorch: loading LibTorch's 300 shared libraries costs about half a
// second at every start, which `generate`, `inspect` and `--help` should not pay.
// matbert-worker dlopen()s the module for `train` and `complete` and calls through this table.
#pragma once

#include "absl/status/statusor.h"
#include "worker/train/completion.h"
#include "worker/train/trainer.h"

namespace matbert {

struct TrainModuleApi {
  static constexpr int kVersion = 3;
  int version = kVersion;  // bumped when this struct changes
  absl::StatusOr<TrainResult> (*train)(const TrainOptions& options) = nullptr;
  absl::StatusOr<Completion> (*complete)(const CompletionRequest& request) = nullptr;
  absl::StatusOr<EvalSet> (*eval_set)(const std::string& checkpoint) = nullptr;
};

// Loads the module (MATBERT_TRAIN_MODULE, else libmatbert_train.so beside the executable)
// and returns its table; the module stays loaded for the life of the process.
absl::StatusOr<const TrainModuleApi*> LoadTrainModule();

}  // namespace matbert

// The module's one exported symbol.
extern "C" const matbert::TrainModuleApi* matbert_train_module_api();
