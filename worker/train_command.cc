#include "worker/train_command.h"

#include <signal.h>

#include <atomic>
#include <cmath>
#include <ctime>

#include "absl/strings/str_format.h"
#include "common/job_spec.h"
#include "worker/exit_codes.h"
#include "worker/report/coordinator_reporter.h"
#include "worker/train/train_module.h"

namespace matbert {
namespace {

std::atomic<bool> g_stop{false};

void OnStopSignal(int signal) {
  if (g_stop.exchange(true)) {  // a second signal: stop now
    ::signal(signal, SIG_DFL);
    ::raise(signal);
  }
}

std::string UtcStamp() {
  std::time_t now = std::time(nullptr);
  std::tm tm;
  gmtime_r(&now, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y%m%d-%H%M%S", &tm);
  return buf;
}

}  // namespace

TrainCommand::TrainCommand(CLI::App& app) {
  command_ = app.add_subcommand(
      "train",
      "Train a BertForMatrixRegression model from a job spec (one rank; alone, or under the "
      "torchrun environment contract).\n"
      "Any spec key can be overridden: --section.key VALUE or --set section.key=VALUE.\n"
      "Examples:\n"
      "  matbert-worker train --config configs/bert_matcomp_cpu.toml\n"
      "  matbert-worker train --config configs/bert_matcomp.toml --training.steps 1000 "
      "--matrix.prec 3\n"
      "  matbert-worker train --config configs/bert_matcomp_cpu.toml --run-dir runs/x "
      "--checkpoint.load_step -1   # resume");
  command_->add_option("--config", config_, "Job spec (TOML)")->required();
  command_->add_option("--run-dir", run_dir_,
                       "Run directory [default: runs/<job name>-<UTC timestamp>]");
  command_->add_option("--set", sets_, "Override: section.key=value (repeatable)");
  command_->add_flag("-q,--quiet", quiet_, "No per-step log lines");
  command_->allow_extras();  // --section.key value pairs
}

std::atomic<bool>* TrainCommand::StopFlag() { return &g_stop; }

int TrainCommand::Run(CoordinatorReporter* reporter) {
  std::vector<std::string> extras = command_->remaining();
  absl::StatusOr<std::vector<Override>> extracted = ExtractOverrideArgs(&extras);
  if (!extracted.ok()) {
    absl::FPrintF(stderr, "matbert-worker train: %s\n", extracted.status().message());
    return kExitUsage;
  }
  if (!extras.empty()) {
    absl::FPrintF(stderr,
                  "matbert-worker train: unexpected argument %s (overrides are "
                  "--section.key VALUE)\n",
                  extras[0]);
    return kExitUsage;
  }
  std::vector<Override> overrides = *std::move(extracted);
  for (const std::string& set : sets_) {
    auto parsed = ParseSetOverride(set);
    if (!parsed.ok()) {
      absl::FPrintF(stderr, "matbert-worker train: %s\n", parsed.status().message());
      return kExitUsage;
    }
    overrides.push_back(*parsed);
  }
  absl::StatusOr<JobSpec> spec = LoadJobSpec(config_, overrides);
  if (!spec.ok()) {
    absl::FPrintF(stderr, "matbert-worker train: %s\n", spec.status().message());
    return kExitUsage;
  }
  if (spec->checkpoint.load_step.has_value() && run_dir_.empty()) {
    absl::FPrintF(stderr,
                  "matbert-worker train: checkpoint.load_step needs --run-dir, the run "
                  "whose checkpoints to resume\n");
    return kExitUsage;
  }
  absl::StatusOr<DistEnv> dist = ReadDistEnv();
  if (!dist.ok()) {
    absl::FPrintF(stderr, "matbert-worker train: %s\n", dist.status().message());
    return kExitUsage;
  }
  if (dist->world_size > 1 && run_dir_.empty()) {
    absl::FPrintF(stderr,
                  "matbert-worker train: --run-dir is required when WORLD_SIZE > 1 "
                  "(all ranks share it)\n");
    return kExitUsage;
  }
  TrainOptions options;
  options.spec = *spec;
  options.dist = *dist;
  options.run_dir = run_dir_.empty() ? "runs/" + spec->job.name + "-" + UtcStamp() : run_dir_;
  options.quiet = quiet_;
  options.stop = &g_stop;
  if (reporter != nullptr) {
    options.on_record = [reporter](const std::string& line) { reporter->OnRecord(line); };
  }
  ::signal(SIGTERM, OnStopSignal);
  ::signal(SIGINT, OnStopSignal);
  // A peer that dies closes its sockets; writing to them must fail with an error this rank can
  // report, not kill it silently (which would also hide which rank failed first).
  ::signal(SIGPIPE, SIG_IGN);

  if (dist->rank == 0) {
    for (const std::string& note : spec->notes) absl::FPrintF(stderr, "note: %s\n", note);
    absl::FPrintF(stderr, "training %s: %d steps, run directory %s\n", spec->job.name,
                  spec->training.steps, options.run_dir);
  }
  absl::StatusOr<const TrainModuleApi*> module = LoadTrainModule();
  if (!module.ok()) {
    absl::FPrintF(stderr, "matbert-worker train: %s\n", module.status().message());
    return kExitFailure;
  }
  absl::StatusOr<TrainResult> result = (*module)->train(options);
  if (!result.ok()) {
    error_ = std::string(result.status().message());
    // A stop signal can interrupt what was under way (the store's connect fails with EINTR):
    // say so, or the error reads as the cause.
    if (g_stop.load()) error_ = "interrupted by a stop signal: " + error_;
    absl::FPrintF(stderr, "matbert-worker train: %s\n", error_);
    return ExitCodeFor(result.status());
  }
  if (dist->rank != 0) return kExitOk;  // rank 0 reports for the job
  run_end_ = result->stopped ? RunEnd::kStopped : RunEnd::kCompleted;
  if (result->stopped) {
    absl::FPrintF(stderr, "stopped by signal after step %d; checkpoint written to %s\n",
                  result->last_step, result->last_checkpoint);
  } else {
    absl::FPrintF(stderr, "done: %d steps, final loss %.5f, eval masked RMSE %.4f\n",
                  result->last_step, result->final_loss, result->eval_rmse);
    absl::FPrintF(stderr, "checkpoint: %s\n", result->last_checkpoint);
  }
  return kExitOk;
}

}  // namespace matbert
