// The training loop of `matbert-worker train` (one rank): data, forward, backward,
// optimizer step, logging, evaluation against baselines, checkpoints, resume, and a clean
// stop on SIGTERM. See docs/training.md for metrics.jsonl and the checkpoint layout.
#pragma once

#include <atomic>
#include <functional>
#include <string>

#include "absl/status/status.h"
#include "common/dist_env.h"
#include "common/job_spec.h"

namespace matbert {

struct TrainOptions {
  JobSpec spec;
  std::string run_dir;  // holds config.toml, metrics.jsonl, checkpoints/
  DistEnv dist;         // rank, world size and rendezvous point (torchrun variables)
  bool quiet = false;   // no per-step lines on stderr
  // Set (e.g. by a SIGTERM handler) to stop after the current step with a checkpoint.
  const std::atomic<bool>* stop = nullptr;
  // Called with each metrics.jsonl line rank 0 writes (no newline), after it is written;
  // matbert-worker forwards them to matbertd. Must not block.
  std::function<void(const std::string&)> on_record;
};

// What a finished (or stopped) run reports.
struct TrainResult {
  int64_t last_step = 0;
  bool stopped = false;  // ended early because `stop` was set
  double final_loss = 0;
  double eval_rmse = 0;  // last evaluation, NaN if none
  std::string last_checkpoint;
};

absl::StatusOr<TrainResult> Train(const TrainOptions& options);

}  // namespace matbert
