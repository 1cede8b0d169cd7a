#include "worker/train/trainer_state.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/Generator.h>

#include <cstring>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace matbert {

absl::StatusOr<nlohmann::json> ParseTrainerState(const std::string& text, const std::string& path) {
  nlohmann::json state = nlohmann::json::parse(text, nullptr, false);
  if (state.is_discarded() || !state.is_object() || !state.contains("step") ||
      !state["step"].is_number_integer() || state["step"].get<int64_t>() < 0) {
    return absl::DataLossError(
        absl::StrCat(path, ": not a trainer state (no non-negative integer \"step\")"));
  }
  const nlohmann::json& version = state.value("format_version", nlohmann::json(0));
  if (!version.is_number_integer() || version.get<int64_t>() != kCheckpointFormatVersion) {
    return absl::DataLossError(absl::StrCat(path, ": format_version ", version.dump(), " is not ",
                                            kCheckpointFormatVersion));
  }
  if (state.contains("torch_cpu_rng") && !state["torch_cpu_rng"].is_string()) {
    return absl::DataLossError(absl::StrCat(path, ": torch_cpu_rng must be a base64 string"));
  }
  return state;
}

std::string CpuRngState() {
  at::Tensor state = at::detail::getDefaultCPUGenerator().get_state();
  return absl::Base64Escape(
      absl::string_view(static_cast<const char*>(state.data_ptr()), state.numel()));
}

absl::Status SetCpuRngState(const std::string& base64, const std::string& where) {
  std::string bytes;
  if (!absl::Base64Unescape(base64, &bytes)) {
    return absl::DataLossError(absl::StrCat(where, ": torch_cpu_rng is not base64"));
  }
  at::Tensor state = at::empty({static_cast<int64_t>(bytes.size())}, at::kByte);
  if (!bytes.empty()) std::memcpy(state.data_ptr(), bytes.data(), bytes.size());
  try {
    at::Generator generator = at::detail::getDefaultCPUGenerator();
    generator.set_state(state);
  } catch (const c10::Error& e) {
    return absl::DataLossError(
        absl::StrCat(where, ": torch_cpu_rng: ", e.what_without_backtrace()));
  }
  return absl::OkStatus();
}

}  // namespace matbert
