// `matbert-worker train`: job spec + overrides → Train(), with SIGTERM/SIGINT turned into
// a clean stop (finish the step, write a checkpoint, exit 0).
#pragma once

#include <CLI/CLI.hpp>
#include <atomic>
#include <string>
#include <vector>

#include "common/worker_report.h"

namespace matbert {

class CoordinatorReporter;

class TrainCommand {
 public:
  explicit TrainCommand(CLI::App& app);
  bool selected() const { return command_->parsed(); }
  // `reporter` (may be null) receives rank 0's metrics records.
  int Run(CoordinatorReporter* reporter);
  // After Run failed: the error it printed (one line), which the rank reports to matbertd as
  // its exit message. Empty after success.
  const std::string& error() const { return error_; }
  // After Run on rank 0: whether the run completed or a signal stopped it; else kUnknown.
  RunEnd run_end() const { return run_end_; }
  // Set by SIGTERM/SIGINT, or by the reporter when the coordinator ends the attempt.
  static std::atomic<bool>* StopFlag();

 private:
  CLI::App* command_;
  std::string config_;
  std::string run_dir_;
  std::vector<std::string> sets_;
  bool quiet_ = false;
  std::string error_;
  RunEnd run_end_ = RunEnd::kUnknown;
};

}  // namespace matbert
