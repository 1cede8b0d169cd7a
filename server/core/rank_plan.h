// The rank plan: what each rank of an attempt runs — its argv, its whole environment and its
// log file — as a pure function of the job, the devices it holds and the run directory's
// checkpoints. Executors start what the plan says and add nothing of their own, so the
// worker↔daemon contract (common/dist_env.h, common/run_layout.h) is written in one place.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/dist_env.h"
#include "server/core/devices.h"
#include "server/executor/executor.h"
#include "server/store/job_record.h"

namespace matbert {

// What the plan is made from besides the job.
struct RankPlanInput {
  std::string worker_path;
  std::string run_dir;
  std::vector<DeviceInfo> devices;  // the ones the attempt holds, in order
  int attempt = 1;
  int64_t resume_step = -1;  // the checkpoint to resume from (the newest intact one); -1 = none
  std::vector<std::string> base_env;  // the daemon's environment minus rank variables
  std::string master_addr = "127.0.0.1";
  int master_port = 0;
  CoordinatorEnv coordinator;  // job_id and attempt are filled in from the job
};

// Training: one rank per device, resuming from the newest checkpoint when there is one.
// Generating: one process with a generator thread per device (its output is byte-identical
// for any thread count).
AttemptPlan PlanAttempt(const JobRecord& job, const RankPlanInput& input);

}  // namespace matbert
