// Training checkpoints (DESIGN.md §8): runs/<job>/checkpoints/step-<NNNNNNN>/ holding
//   model.safetensors    weights, HuggingFace BERT names, fp32
//   config.json          HuggingFace-style BertConfig of the model
//   optimizer.pt         AdamW state (torch::save archive)
//   trainer_state.json   format_version, step, RNG state, last evaluation
//   spec.toml            the resolved job spec (tokenizer and shape for `complete`)
//   model_ema.safetensors  the weights' moving average, with training.ema_decay
//   SHA256SUMS           the SHA-256 of each file above (common/checkpoint_sums.h)
// Each is written into a staging directory and renamed into place whole; a directory that
// is not named step-NNNNNNN (a staging one) is never loaded.
#pragma once

#include <torch/optim/optimizer.h>

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/run_layout.h"  // CheckpointDirName, ListCheckpointSteps
#include "worker/train/bert_model.h"
#include "worker/train/safetensors.h"
#include "worker/train/trainer_state.h"  // kCheckpointFormatVersion, CpuRngState

namespace matbert {

// Writes checkpoint `step` (trainer_state gets format_version, step and the CPU generator's
// state added), then removes
// all but the newest `keep`. Returns the checkpoint's directory.
absl::StatusOr<std::string> WriteCheckpoint(const std::string& checkpoints_dir, int64_t step,
                                            BertForMatrixRegression& model,
                                            torch::optim::Optimizer& optimizer,
                                            nlohmann::json trainer_state,
                                            const std::string& spec_toml, int keep,
                                            const NamedTensors* averages = nullptr);

// The directory of checkpoint `load_step` (-1: the latest). NOT_FOUND naming the directory
// (and the steps that exist) when there is none.
absl::StatusOr<std::string> ResolveCheckpoint(const std::string& checkpoints_dir,
                                              int64_t load_step);

// Loads weights into `model` (and, to resume training, when `optimizer` is not null: its
// state and the CPU generator's) and returns trainer_state.json. The files are checked
// against SHA256SUMS first; any missing, corrupt or mismatching file is an error naming it.
absl::StatusOr<nlohmann::json> LoadCheckpoint(const std::string& dir,
                                              BertForMatrixRegression& model,
                                              torch::optim::Optimizer* optimizer);

// Copies model_ema.safetensors of checkpoint `dir` into `averages` (by name; every tensor
// must be there with its shape). False when the checkpoint has none (a run without EMA).
absl::StatusOr<bool> LoadAverages(const std::string& dir, const NamedTensors& averages);

}  // namespace matbert
