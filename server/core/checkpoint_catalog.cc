#include "server/core/checkpoint_catalog.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "nlohmann/json.hpp"

namespace matbert {

std::map<int64_t, std::map<std::string, double>> EvalsByStep(
    const std::vector<EventRecord>& events) {
  std::map<int64_t, std::map<std::string, double>> out;
  for (const EventRecord& e : events) {
    if (e.kind != "metrics") continue;
    nlohmann::json p = nlohmann::json::parse(e.payload, nullptr, false);
    if (!p.is_object() || p.value("kind", "") != "eval") continue;
    std::map<std::string, double>& values = out[p.value("step", int64_t{0})];
    values.clear();  // a later record of the same step replaces the earlier one
    if (p.contains("values") && p["values"].is_object()) {
      for (const auto& [key, value] : p["values"].items()) {
        if (value.is_number()) values[key] = value.get<double>();
      }
    }
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
