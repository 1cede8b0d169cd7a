// What clients are told about a job's checkpoints, decided without I/O: which checkpoint a
// download means, and which evaluation belongs to each checkpoint. The RPC layer lists the
// directories (run_files.h) and the event log, and only translates the result.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "server/core/run_files.h"
#include "server/store/job_record.h"

namespace matbert {

// Eval records of a job's event log (metrics events of kind "eval"), by step: their numeric
// values (eval_rmse, baseline_*_rmse, ...). Events of other kinds are skipped.
std::map<int64_t, std::map<std::string, double>> EvalsByStep(
    const std::vector<EventRecord>& events);

struct CheckpointEntry {
  CheckpointDir dir;
  // The latest evaluation at or before the checkpoint's step, plus "step" (the eval's step);
  // empty when there was none.
  std::map<std::string, double> eval;
};

// `dirs` (oldest first) with their evaluations attached.
std::vector<CheckpointEntry> CatalogCheckpoints(
    const std::vector<CheckpointDir>& dirs,
    const std::map<int64_t, std::map<std::string, double>>& evals_by_step);

// The checkpoint a download of `step` means: the latest for nullopt or -1, else that step.
// NOT_FOUND naming the job, and the steps it has, when there is no such checkpoint.
absl::StatusOr<CheckpointDir> SelectCheckpoint(const std::vector<CheckpointDir>& dirs,
                                               std::optional<int64_t> step,
                                               const std::string& job_id);

}  // namespace matbert
