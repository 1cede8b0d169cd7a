// The run's metrics log: runs/<job>/metrics.jsonl, one JSON object per line, appended and
// flushed per line (docs/training.md lists the records); each record also goes to a callback
// (the coordinator's reporter). ProgressLog writes the training loop's records and progress
// lines, so that the loop itself only says when. Not thread-safe: the training loop alone
// writes them.
#pragma once

#include <chrono>
#include <cmath>
#include <cstdint>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>

#include "absl/strings/str_format.h"
#include "common/progress_bar.h"
#include "worker/train/eval_result.h"

namespace matbert {

class MetricsLog {
 public:
  MetricsLog(const std::string& path, std::function<void(const std::string&)> on_record)
      : out_(path, std::ios::app), on_record_(std::move(on_record)) {}
  bool ok() const { return out_.good(); }
  void Write(const nlohmann::json& record) {
    const std::string line = record.dump();
    out_ << line << '\n';
    out_.flush();
    if (on_record_) on_record_(line);
  }

 private:
  std::ofstream out_;
  std::function<void(const std::string&)> on_record_;
};

// The records of a training run, with a line on stderr for each unless quiet.
class ProgressLog {
 public:
  struct Run {
    int64_t start_step = 0;  // the step the run resumed from (0 = fresh)
    int64_t total_steps = 0;
    int64_t tokens_per_step = 0;  // over all ranks
    int rank = 0;
    int world_size = 1;
    bool quiet = false;
  };
  ProgressLog(MetricsLog* log, Run run) : log_(log), run_(run) {}

  // A finished step: its global loss and wall time go into the window of the next record.
  void Step(double loss, double seconds) {
    window_loss_ += loss;
    window_seconds_ += seconds;
    ++window_steps_;
  }

  // The "train" record: the window's mean loss and throughput at `step`.
  void Train(int64_t step, double grad_norm, double lr) {
    const double elapsed = Seconds(start_, Clock::now());
    const double tokens_per_second =
        window_seconds_ > 0 ? run_.tokens_per_step * window_steps_ / window_seconds_ : 0;
    const double eta = elapsed / (step - run_.start_step) * (run_.total_steps - step);
    const double loss = window_steps_ > 0 ? window_loss_ / window_steps_ : 0;
    log_->Write({{"kind", "train"},
                 {"step", step},
                 {"total_steps", run_.total_steps},
                 {"loss", loss},
                 {"grad_norm", grad_norm},
                 {"lr", lr},
                 {"tokens_per_second", tokens_per_second},
                 {"elapsed_seconds", elapsed},
                 {"eta_seconds", eta},
                 {"rank", run_.rank},
                 {"world_size", run_.world_size}});
    if (!run_.quiet) {
      absl::FPrintF(
          stderr, "step %d/%d | loss %.5f | grad-norm %.3f | lr %.3g | %.0f tok/s | ETA %s\n", step,
          run_.total_steps, loss, grad_norm, lr, tokens_per_second, FormatDuration(eta));
    }
    window_loss_ = window_seconds_ = 0;
    window_steps_ = 0;
  }

  // The "eval" record: the model's masked RMSE beside the baselines'. Returns the record
  // (checkpoints keep the last one).
  // `ema_rmse`: the weights' moving average's masked RMSE, when training keeps one (NaN: not).
  nlohmann::json Eval(int64_t step, double rmse, double ema_rmse, const EvalResult& baselines,
                      int matrix_rank) {
    nlohmann::json record = {{"kind", "eval"},
                             {"step", step},
                             {"eval_rmse", rmse},
                             {"baseline_mean_rmse", baselines.mean_rmse},
                             {"baseline_als_rmse", baselines.als_rmse},
                             {"baseline_soft_impute_rmse", baselines.soft_impute_rmse},
                             {"eval_entries", baselines.entries},
                             {"matrix_rank", matrix_rank}};
    if (!std::isnan(ema_rmse)) record["eval_rmse_ema"] = ema_rmse;
    log_->Write(record);
    if (!run_.quiet) {
      absl::FPrintF(
          stderr,
          "eval step %d: masked RMSE %.4f%s | mean baseline %.4f | ALS rank-%d "
          "baseline %.4f | soft-impute baseline %.4f\n",
          step, rmse, std::isnan(ema_rmse) ? "" : absl::StrFormat(" (EMA weights %.4f)", ema_rmse),
          baselines.mean_rmse, matrix_rank, baselines.als_rmse, baselines.soft_impute_rmse);
    }
    return record;
  }

  // The "checkpoint" record (the reporter announces it to matbertd).
  void Checkpoint(int64_t step, const std::string& path) {
    log_->Write({{"kind", "checkpoint"}, {"step", step}, {"path", path}});
  }

  void Write(const nlohmann::json& record) { log_->Write(record); }

 private:
  using Clock = std::chrono::steady_clock;
  static double Seconds(Clock::time_point a, Clock::time_point b) {
    return std::chrono::duration<double>(b - a).count();
  }

  MetricsLog* const log_;
  const Run run_;
  const Clock::time_point start_ = Clock::now();
  double window_loss_ = 0, window_seconds_ = 0;
  int64_t window_steps_ = 0;
};

}  // namespace matbert
