#include "server/core/checkpoint_catalog.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "server/core/event_payload.h"

namespace matbert {

std::map<int64_t, std::map<std::string, double>> EvalsByStep(
    const std::vector<EventRecord>& events) {
  std::map<int64_t, std::map<std::string, double>> out;
  for (const EventRecord& e : events) {
    std::optional<MetricsEvent> metrics = DecodeMetricsEvent(e);
    if (!metrics || metrics->record.kind != "eval") continue;
    // A later record of the same step replaces the earlier one.
    out[metrics->record.step] = std::move(metrics->record.values);
  }
  return out;
}

std::vector<CheckpointEntry> CatalogCheckpoints(
    const std::vector<CheckpointDir>& dirs,
    const std::map<int64_t, std::map<std::string, double>>& evals_by_step) {
  std::vector<CheckpointEntry> out;
  for (const CheckpointDir& dir : dirs) {
    CheckpointEntry entry{dir, {}};
    auto it = evals_by_step.upper_bound(dir.step);
    if (it != evals_by_step.begin()) {
      --it;
      entry.eval = it->second;
      entry.eval["step"] = static_cast<double>(it->first);
    }
    out.push_back(std::move(entry));
  }
  return out;
}

absl::StatusOr<CheckpointDir> SelectCheckpoint(const std::vector<CheckpointDir>& dirs,
                                               std::optional<int64_t> step,
                                               const std::string& job_id) {
  if (dirs.empty())
    return absl::NotFoundError(absl::StrCat("job ", job_id, " has no checkpoint yet"));
  if (!step.has_value() || *step == -1) return dirs.back();
  std::vector<int64_t> steps;
  for (const CheckpointDir& d : dirs) {
    if (d.step == *step) return d;
    steps.push_back(d.step);
  }
  return absl::NotFoundError(absl::StrCat("job ", job_id, " has no checkpoint at step ", *step,
                                          "; it has steps ", absl::StrJoin(steps, ", ")));
}

}  // namespace matbert
