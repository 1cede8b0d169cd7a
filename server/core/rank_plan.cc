#include "server/core/rank_plan.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/run_layout.h"

namespace matbert {

AttemptPlan PlanAttempt(const JobRecord& job, const RankPlanInput& input) {
  AttemptPlan plan;
  plan.job_id = job.id;
  plan.attempt = input.attempt;
  plan.run_dir = input.run_dir;
  plan.nodes = std::max(1, job.nodes);
  plan.priority = job.priority;
  const std::string spec = RunSpecPath(input.run_dir);
  int world = static_cast<int>(input.devices.size());
  std::vector<std::string> argv;
  if (job.kind == "generate") {
    argv = {input.worker_path,     "generate",   "--config", spec, "--threads",
            std::to_string(world), "--overwrite"};
    world = 1;
  } else {
    argv = {input.worker_path, "train", "--config", spec, "--run-dir", input.run_dir};
    if (input.resume_step >= 0) {
      argv.insert(argv.end(), {"--checkpoint.load_step", std::to_string(input.resume_step)});
      plan.resumed_from_step = input.resume_step;
    }
  }
  std::vector<std::string> visible;
  for (const DeviceInfo& d : input.devices) {
    if (d.kind == "gpu") visible.push_back(std::to_string(d.index));
  }
  const int per_node = std::max(1, world / plan.nodes);
  for (int rank = 0; rank < world; ++rank) {
    RankLaunch launch;
    launch.rank = rank;
    launch.argv = argv;
    launch.env = input.base_env;
    RankEnv env;
    env.dist = {.rank = rank,
                .local_rank = rank % per_node,
                .world_size = world,
                .local_world_size = per_node,
                .master_addr = input.master_addr,
                .master_port = input.master_port};
    env.cuda_visible_devices = absl::StrJoin(visible, ",");
    env.coordinator = input.coordinator;
    env.coordinator.job_id = job.id;
    env.coordinator.attempt = input.attempt;
    for (std::string& entry : RankEnvEntries(env)) launch.env.push_back(std::move(entry));
    launch.log_path = RunLogPath(input.run_dir, rank);
    launch.log_header = absl::StrCat("=== matbertd: job ", job.id, " attempt ", input.attempt,
                                     ", rank ", rank, " of ", world, " ===\n");
    plan.ranks.push_back(std::move(launch));
  }
  return plan;
}

}  // namespace matbert
