#include "common/run_layout.h"

#include <algorithm>
#include <filesystem>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace matbert {

std::string RunSpecPath(const std::string& run_dir) { return run_dir + "/spec.toml"; }
std::string RunConfigPath(const std::string& run_dir) { return run_dir + "/config.toml"; }
std::string RunMetricsPath(const std::string& run_dir) { return run_dir + "/metrics.jsonl"; }
std::string RunLogPath(const std::string& run_dir, int rank) {
  return absl::StrCat(run_dir, "/logs/rank-", rank, ".log");
}
std::string RunCheckpointsDir(const std::string& run_dir) { return run_dir + "/checkpoints"; }

std::string CheckpointDirName(int64_t step) { return absl::StrFormat("step-%07d", step); }

std::optional<int64_t> ParseCheckpointDirName(std::string_view name) {
  constexpr std::string_view kPrefix = "step-";
  if (name.substr(0, kPrefix.size()) != kPrefix) return std::nullopt;
  const std::string_view digits = name.substr(kPrefix.size());
  if (digits.size() < 7 || digits.size() > 18 ||
      !std::all_of(digits.begin(), digits.end(), absl::ascii_isdigit)) {
    return std::nullopt;
  }
  int64_t step = 0;
  if (!absl::SimpleAtoi(absl::string_view(digits.data(), digits.size()), &step)) {
    return std::nullopt;
  }
  return step;
}

std::vector<int64_t> ListCheckpointSteps(const std::string& checkpoints_dir) {
  std::vector<int64_t> steps;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(checkpoints_dir, ec)) {
    std::optional<int64_t> step = ParseCheckpointDirName(entry.path().filename().string());
    if (step.has_value() && entry.is_directory(ec)) steps.push_back(*step);
  }
  std::sort(steps.begin(), steps.end());
  return steps;
}

}  // namespace matbert
