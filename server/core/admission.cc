#include "server/core/admission.h"

#include "absl/strings/str_cat.h"
#include "common/job_spec.h"
#include "common/status_macros.h"

namespace matbert {

absl::StatusOr<JobRecord> Admit(const SubmitRequest& request, const std::string& job_id,
                                const AdmissionLimits& limits) {
  if (limits.queued >= limits.max_queued) {
    return absl::ResourceExhaustedError(absl::StrCat("the queue is full: ", limits.queued,
                                                     " jobs wait (--max-queued ", limits.max_queued,
                                                     "); try again later"));
  }
  std::vector<Override> overrides;
  for (const std::string& text : request.overrides) {
    ASSIGN_OR_RETURN(Override o, ParseSetOverride(text));
    overrides.push_back(std::move(o));
  }
  const std::string source = request.source_name.empty() ? "spec" : request.source_name;
  ASSIGN_OR_RETURN(JobSpec spec, ParseJobSpec(request.spec_toml, source, limits.spec_root,
                                              overrides, /*confine_arch=*/true));
  for (std::string* path : {&spec.matrix.dataset, &spec.generate.output_dir}) {
    if (path->empty()) continue;
    if (!IsConfinedPath(*path)) {
      return absl::InvalidArgumentError(absl::StrCat(
          source, ": ", path == &spec.matrix.dataset ? "matrix.dataset" : "generate.output_dir",
          " must be a relative path inside the server's data directory (no \"..\"), got \"", *path,
          "\""));
    }
    *path = limits.data_root + *path;
  }
  if (request.grace_period_s < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("grace_period_seconds must be >= 0, got ", request.grace_period_s));
  }
  if (spec.job.nodes > limits.max_nodes) {
    return absl::InvalidArgumentError(
        limits.max_nodes == 1
            ? absl::StrCat(source,
                           ": job.nodes must be 1 on this server, which runs jobs on its "
                           "own host (matbertd --backend slurm spreads them over nodes), got ",
                           spec.job.nodes)
            : absl::StrCat(source, ": job.nodes must be between 1 and ", limits.max_nodes, ", got ",
                           spec.job.nodes));
  }
  const int64_t ranks = int64_t{spec.job.nodes} * spec.job.gpus;
  if (limits.device_kind == "slurm" && ranks > limits.num_devices) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": job.nodes × job.gpus must be at most ", limits.num_devices,
                     " ranks (matbertd --slurm-max-ranks), got ", ranks));
  }
  if (limits.device_kind != "slurm" && spec.job.gpus > limits.num_devices) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": job.gpus must be between 1 and ", limits.num_devices, " (the ",
                     limits.device_kind == "gpu" ? "GPUs" : "CPU slots", " of this server), got ",
                     spec.job.gpus));
  }
  if (spec.job.kind == "generate" && spec.generate.output_dir.empty()) {
    spec.generate.output_dir = limits.data_root + job_id;
  }
  JobRecord job;
  job.id = job_id;
  job.name = spec.job.name;
  job.owner = request.owner;
  job.kind = spec.job.kind;
  job.priority = spec.job.priority;
  job.nodes = spec.job.nodes;
  job.devices_requested = static_cast<int>(ranks);
  job.max_restarts = spec.job.max_restarts;
  job.grace_period_s =
      request.grace_period_s > 0 ? request.grace_period_s : limits.default_grace_period_s;
  job.spec_toml = spec.ToToml();
  job.total_steps = job.kind == "generate" ? spec.generate.n_samples : spec.training.steps;
  return job;
}

}  // namespace matbert
