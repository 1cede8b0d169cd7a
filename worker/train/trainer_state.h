// trainer_state.json of a checkpoint (docs/training.md): format_version, step, the CPU
// generator's state (torch_cpu_rng, base64) and the last evaluation. Parsed and checked here,
// apart from the model, so that a damaged file is an error naming it (and so that it can be
// fuzzed: fuzz/trainer_state_fuzzer.cc).
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace matbert {

inline constexpr int kCheckpointFormatVersion = 1;

// The JSON object of trainer_state.json, checked: "step" a non-negative integer,
// "format_version" kCheckpointFormatVersion, "torch_cpu_rng" (when present) a string.
// DATA_LOSS naming `path` otherwise.
absl::StatusOr<nlohmann::json> ParseTrainerState(const std::string& text, const std::string& path);

// The default CPU generator's state, base64, as trainer_state.json's torch_cpu_rng holds it
// (dropout and masking draw from it, so an exact resume restores it).
std::string CpuRngState();
// Restores it; `where` names the file in errors (DATA_LOSS when it is not a valid state).
absl::Status SetCpuRngState(const std::string& base64, const std::string& where);

}  // namespace matbert
