// What matbertd remembers about a job, an attempt and an event, as plain structs shared by
// the store, the coordinator and the RPC layer (which maps them to proto/matbert/v1).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "common/worker_report.h"

namespace matbert {

enum class JobState {
  kQueued = 1,
  kStarting,
  kRunning,
  kRetrying,
  kSucceeded,
  kFailed,
  kCancelled,
  kPending,  // its attempt waits in the executor's own queue (Slurm's), not in matbertd's
};

// "QUEUED", "RUNNING", …; the same names as the proto enum without its prefix.
const char* JobStateName(JobState state);
std::optional<JobState> ParseJobState(absl::string_view name);
bool IsFinal(JobState state);

struct JobRecord {
  std::string id;
  std::string name;
  std::string kind;  // "train" | "generate"
  JobState state = JobState::kQueued;
  int priority = 0;
  int nodes = 1;              // hosts the job's ranks spread over
  int devices_requested = 1;  // in all: nodes × devices per node (the world size)
  int max_restarts = 0;
  int grace_period_s = 30;                          // SIGTERM → SIGKILL at cancel
  std::string spec_toml;                            // resolved spec
  int64_t order = 0;                                // submission order, unique and increasing
  int64_t submit_ms = 0, start_ms = 0, end_ms = 0;  // Unix time, ms; 0 = not yet
  int64_t step = 0, total_steps = 0;
  double loss = 0;
  bool has_loss = false;
  std::string failure;       // why it failed or was cancelled
  std::string reason;        // why it is in its state now: the latest state change's cause
  std::vector<int> devices;  // held device indices while STARTING/RUNNING
  int attempts = 0;          // attempts started so far
  bool cancel_requested = false;
  // The user whose token submitted it (server/authenticator.h); "" = submitted without
  // tokens, or before owners were recorded.
  std::string owner;
};

// One rank's process of an attempt.
struct WorkerProcess {
  int rank = 0;
  int pid = 0;
  int64_t start_ticks = 0;  // /proc/<pid>/stat starttime, to tell a reused pid apart
};

struct AttemptRecord {
  std::string job_id;
  int number = 0;
  JobState state = JobState::kStarting;  // kStarting/kRunning while live, then the outcome
  int64_t start_ms = 0, end_ms = 0;
  std::string reason;
  int64_t resumed_from_step = 0;
  // Lost to a restart of matbertd (not the job's fault): does not use up a restart.
  bool interrupted = false;
  // How rank 0 said the run ended, in its ReportExit (kept across a restart of matbertd).
  RunEnd run_end = RunEnd::kUnknown;
  std::vector<WorkerProcess> workers;
  // What the executor needs to find the attempt again after a restart ("" for the local
  // executor, whose ranks are `workers`; the Slurm job id for Slurm's).
  std::string executor_ref;
};

struct EventRecord {
  int64_t seq = 0;  // 1, 2, … per job
  int64_t time_ms = 0;
  std::string kind;     // "state" | "metrics" | "checkpoint"
  std::string payload;  // JSON object
};

}  // namespace matbert
