// The layout of a job's run directory (DESIGN.md §8), in one place for the trainer that writes
// it and matbertd and its clients that read it:
//   <run>/spec.toml                  the job's resolved spec, as matbertd hands it to the ranks
//   <run>/config.toml                the resolved spec as the trainer read it
//   <run>/metrics.jsonl              rank 0's records (docs/training.md)
//   <run>/logs/rank-<r>.log          each rank's stdout and stderr
//   <run>/checkpoints/step-NNNNNNN/  complete checkpoints; staging ones are hidden (".…")
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace matbert {

std::string RunSpecPath(const std::string& run_dir);
std::string RunConfigPath(const std::string& run_dir);
std::string RunMetricsPath(const std::string& run_dir);
std::string RunLogPath(const std::string& run_dir, int rank);
std::string RunCheckpointsDir(const std::string& run_dir);

// "step-0000042": "step-" and the step in at least 7 digits.
std::string CheckpointDirName(int64_t step);
// The step of a checkpoint directory's name; nullopt for anything else (staging directories,
// signs, spaces, fewer than 7 digits).
std::optional<int64_t> ParseCheckpointDirName(std::string_view name);
// Steps of the complete checkpoint directories in `checkpoints_dir`, ascending; none when it
// does not exist.
std::vector<int64_t> ListCheckpointSteps(const std::string& checkpoints_dir);

}  // namespace matbert
