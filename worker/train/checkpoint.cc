#include "worker/train/checkpoint.h"

#include <torch/serialize.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/checkpoint_sums.h"
#include "common/file_util.h"
#include "common/staging_dir.h"
#include "common/status_macros.h"
#include "worker/train/safetensors.h"

namespace matbert {
namespace fs = std::filesystem;

namespace {

// Copies the tensors of safetensors file `path` into `into` by name: each must be there with
// its shape, and the file may hold nothing else.
absl::Status CopyWeights(const std::string& path, const NamedTensors& into) {
  ASSIGN_OR_RETURN(SafetensorsFile weights, ReadSafetensors(path));
  torch::NoGradGuard no_grad;
  std::set<std::string> used;
  for (const auto& [name, target] : into) {
    auto it = weights.tensors.find(name);
    if (it == weights.tensors.end()) {
      return absl::DataLossError(absl::StrCat(path, ": missing tensor ", name));
    }
    if (it->second.sizes() != target.sizes()) {
      return absl::InvalidArgumentError(absl::StrCat(
          path, ": tensor ", name, " has shape ", c10::str(it->second.sizes()),
          " but the model's is ", c10::str(target.sizes()), " (was the spec changed?)"));
    }
    target.copy_(it->second);
    used.insert(name);
  }
  for (const auto& [name, tensor] : weights.tensors) {
    if (!used.count(name)) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": tensor ", name, " is not a parameter of this model"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<bool> LoadAverages(const std::string& dir, const NamedTensors& averages) {
  const std::string path = dir + "/model_ema.safetensors";
  if (!fs::exists(path)) return false;
  RETURN_IF_ERROR(CopyWeights(path, averages));
  return true;
}

absl::StatusOr<std::string> WriteCheckpoint(const std::string& checkpoints_dir, int64_t step,
                                            BertForMatrixRegression& model,
                                            torch::optim::Optimizer& optimizer,
                                            nlohmann::json trainer_state,
                                            const std::string& spec_toml, int keep,
                                            const NamedTensors* averages) {
  const std::string target = checkpoints_dir + "/" + CheckpointDirName(step);
  ASSIGN_OR_RETURN(StagingDir staging, StagingDir::Create(target, /*overwrite=*/true));
  NamedTensors weights;
  for (const auto& p : model->named_parameters()) weights.emplace_back(p.key(), p.value());
  RETURN_IF_ERROR(
      WriteSafetensors(staging.path() + "/model.safetensors", weights, {{"format", "pt"}}));
  RETURN_IF_ERROR(WriteFileAtomically(staging.path() + "/spec.toml", spec_toml));
  if (averages != nullptr) {
    RETURN_IF_ERROR(
        WriteSafetensors(staging.path() + "/model_ema.safetensors", *averages, {{"format", "pt"}}));
  }
  RETURN_IF_ERROR(WriteFileAtomically(staging.path() + "/config.json",
                                      model->options().ToConfigJson().dump(2) + "\n"));
  try {
    torch::save(optimizer, staging.path() + "/optimizer.pt");
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("cannot write ", staging.path(),
                                            "/optimizer.pt: ", e.what_without_backtrace()));
  }
  trainer_state["format_version"] = kCheckpointFormatVersion;
  trainer_state["step"] = step;
  trainer_state["torch_cpu_rng"] = CpuRngState();  // so that a resumed run draws the same
  RETURN_IF_ERROR(
      WriteFileAtomically(staging.path() + "/trainer_state.json", trainer_state.dump(2) + "\n"));
  // Last: what every file's bytes were, so a reader can tell a checkpoint damaged later.
  RETURN_IF_ERROR(WriteChecksums(staging.path()));
  RETURN_IF_ERROR(staging.Commit());

  std::vector<int64_t> steps = ListCheckpointSteps(checkpoints_dir);
  for (size_t i = 0; i + keep < steps.size(); ++i) {
    std::error_code ec;
    fs::remove_all(checkpoints_dir + "/" + CheckpointDirName(steps[i]), ec);
  }
  return target;
}

absl::StatusOr<std::string> ResolveCheckpoint(const std::string& checkpoints_dir,
                                              int64_t load_step) {
  std::vector<int64_t> steps = ListCheckpointSteps(checkpoints_dir);
  if (load_step == -1) {
    if (steps.empty()) {
      return absl::NotFoundError(absl::StrCat("checkpoint.load_step = -1 (latest), but ",
                                              checkpoints_dir, " holds no checkpoint"));
    }
    return checkpoints_dir + "/" + CheckpointDirName(steps.back());
  }
  if (std::find(steps.begin(), steps.end(), load_step) == steps.end()) {
    return absl::NotFoundError(
        absl::StrCat("checkpoint.load_step = ", load_step, ": no ", checkpoints_dir, "/",
                     CheckpointDirName(load_step),
                     " (have: ", steps.empty() ? "none" : absl::StrJoin(steps, ", "), ")"));
  }
  return checkpoints_dir + "/" + CheckpointDirName(load_step);
}

absl::StatusOr<nlohmann::json> LoadCheckpoint(const std::string& dir,
                                              BertForMatrixRegression& model,
                                              torch::optim::Optimizer* optimizer) {
  RETURN_IF_ERROR(VerifyChecksums(dir));
  const std::string state_path = dir + "/trainer_state.json";
  ASSIGN_OR_RETURN(std::string state_text, ReadFileToString(state_path));
  ASSIGN_OR_RETURN(nlohmann::json state, ParseTrainerState(state_text, state_path));
  NamedTensors parameters;
  for (auto& p : model->named_parameters()) parameters.emplace_back(p.key(), p.value());
  RETURN_IF_ERROR(CopyWeights(dir + "/model.safetensors", parameters));
  if (optimizer != nullptr) {
    const std::string optimizer_path = dir + "/optimizer.pt";
    if (!fs::exists(optimizer_path)) {
      return absl::DataLossError(absl::StrCat(optimizer_path, ": missing"));
    }
    try {
      torch::load(*optimizer, optimizer_path);
    } catch (const c10::Error& e) {
      return absl::DataLossError(
          absl::StrCat(optimizer_path, ": cannot load: ", e.what_without_backtrace()));
    }
    // Resuming training: the random draws continue where the checkpointed run was.
    if (state.contains("torch_cpu_rng")) {
      RETURN_IF_ERROR(SetCpuRngState(state["torch_cpu_rng"].get<std::string>(), state_path));
    }
  }
  return state;
}

}  // namespace matbert
