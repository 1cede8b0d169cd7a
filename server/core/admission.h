// Admission: whether a submitted spec becomes a job, and the job record it becomes. A pure
// function of the request and what the daemon allows (DESIGN.md §4, §7): the spec is parsed
// with its overrides, its paths are confined to the daemon's roots, and its device count
// and the queue are checked. Nothing is stored here; the coordinator stores what it returns.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "server/store/job_record.h"

namespace matbert {

struct SubmitRequest {
  std::string spec_toml;
  std::vector<std::string> overrides;  // "section.key=value"
  std::string source_name = "spec";
  int grace_period_s = 0;  // 0 = the daemon's default
  std::string owner;       // the submitting user ("" without tokens)
};

// What admission weighs a request against.
struct AdmissionLimits {
  std::string spec_root;  // model.arch must resolve inside it
  std::string data_root;  // matrix.dataset and generate.output_dir resolve inside it ("…/")
  int num_devices = 1;    // devices of the daemon; job.nodes × job.gpus may not exceed it
  std::string device_kind = "cpu";  // "gpu" | "cpu" | "slurm" (ranks), for the error message
  int max_nodes = 1;                // hosts a job may span: 1 for the local executor
  int queued = 0;                   // jobs waiting now
  int max_queued = 10000;
  int default_grace_period_s = 30;
};

// The job record of an admitted request, with `job_id` and the resolved spec; the caller
// stamps `order` and `submit_ms`. INVALID_ARGUMENT naming the key for a bad spec or request,
// RESOURCE_EXHAUSTED when the queue is full.
absl::StatusOr<JobRecord> Admit(const SubmitRequest& request, const std::string& job_id,
                                const AdmissionLimits& limits);

}  // namespace matbert
