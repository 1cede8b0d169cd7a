#include "worker/generate_command.h"

#include <algorithm>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/job_spec.h"
#include "common/matrix_limits.h"
#include "worker/exit_codes.h"

namespace matbert {

GenerateCommand::GenerateCommand(CLI::App& app) {
  command_ = app.add_subcommand(
      "generate",
      "Write a dataset of low-rank matrices (HuggingFace save_to_disk layout, Arrow IPC streams).\n"
      "Example:\n  matbert-worker generate --m 20 --n 20 --r 5 --n-samples 1000 "
      "--output-dir data/generated/my_dataset\n"
      "  matbert-worker generate --config configs/bert_matcomp_cpu.toml   # [matrix] and "
      "[generate] of a job spec");
  GenerateOptions& o = options_;
  o.threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  command_->add_option("--m", o.shape.m, absl::StrCat("Rows per matrix, 1..", kMaxMatrixDim))
      ->capture_default_str();
  command_->add_option("--n", o.shape.n, absl::StrCat("Columns per matrix, 1..", kMaxMatrixDim))
      ->capture_default_str();
  command_->add_option("--r", o.shape.r, "Rank, 1..min(m, n)")->capture_default_str();
  command_->add_option("--n-samples", o.n_samples, "Number of matrices (>= 1)")
      ->capture_default_str();
  command_->add_option(
      "--output-dir", o.output_dir,
      "Dataset directory [default: data/generated/matrix_m{m}_n{n}_r{r}_seed{seed}]");
  command_->add_option("--prec", o.tokenizer.prec, "Digits after the decimal point, 0..6")
      ->capture_default_str();
  command_->add_option("--n-sigma", o.tokenizer.n_sigma, "Clamp values to +-n_sigma, 1..100")
      ->capture_default_str();
  command_->add_option("--seed", o.seed, "Random seed")->capture_default_str();
  command_
      ->add_option("--factor-dist", o.factors.dist,
                   "How the entries of U and V are drawn: normal N(mean, 1), or uniform on "
                   "[mean-1, mean+1]")
      ->capture_default_str();
  command_->add_option("--factor-mean", o.factors.mean, "Mean of the entries of U and V")
      ->capture_default_str();
  command_->add_flag("--row-sep", o.tokenizer.row_sep, "Insert [ROW_SEP] between matrix rows");
  command_
      ->add_option("--shards", o.shards,
                   absl::StrCat("Number of Arrow files, 1..min(n-samples, ", kMaxShards, ")"))
      ->capture_default_str();
  command_
      ->add_option("--threads", o.threads, "Generator threads (output is identical for any value)")
      ->capture_default_str();
  command_->add_option(
      "--config", config_,
      "Job spec (TOML): m, n, r, prec, n_sigma, row_sep, factor_dist, factor_mean from "
      "[matrix], n_samples, shards, output_dir from [generate], seed from "
      "[training]; not combined with those flags");
  command_->add_flag("--overwrite", o.overwrite, "Replace an existing output directory");
  command_->add_flag("-q,--quiet", quiet_, "No progress or summary; print only the output path");
}

int GenerateCommand::Run() {
  if (quiet_) options_.progress = ProgressBar::Mode::kQuiet;
  if (!config_.empty()) {
    for (const char* flag :
         {"--m", "--n", "--r", "--n-samples", "--output-dir", "--prec", "--n-sigma", "--seed",
          "--factor-dist", "--factor-mean", "--row-sep", "--shards"}) {
      if (command_->count(flag) > 0) {
        absl::FPrintF(stderr,
                      "matbert-worker generate: %s cannot be combined with --config (override "
                      "the spec's key instead)\n",
                      flag);
        return kExitUsage;
      }
    }
    absl::StatusOr<JobSpec> spec = LoadJobSpec(config_);
    if (!spec.ok()) {
      absl::FPrintF(stderr, "matbert-worker generate: %s\n", spec.status().message());
      return kExitUsage;
    }
    const MatrixSection& m = spec->matrix;
    options_.shape = {m.m, m.n, m.r};
    options_.tokenizer.prec = m.prec;
    options_.tokenizer.n_sigma = m.n_sigma;
    options_.tokenizer.row_sep = m.row_sep;
    options_.factors = {m.factor_dist, m.factor_mean};
    options_.seed = static_cast<uint64_t>(spec->training.seed);
    options_.n_samples = spec->generate.n_samples;
    options_.shards = spec->generate.shards;
    options_.output_dir = spec->generate.output_dir;
  }
  absl::StatusOr<GenerateResult> result = GenerateDataset(options_);
  if (!result.ok()) {
    std::string message(result.status().message());
    // Name the flag: option names are the flags without their dashes.
    if (result.status().code() == absl::StatusCode::kInvalidArgument) {
      // Option names are the flags without dashes, with '_' for '-' (config spelling).
      size_t end = message.find(' ');
      std::replace(message.begin(), message.begin() + (end == std::string::npos ? 0 : end), '_',
                   '-');
      message = "--" + message;
    } else if (result.status().code() == absl::StatusCode::kAlreadyExists) {
      message = "--output-dir: " + message + "; pass --overwrite to replace it";
    } else if (ExitCodeFor(result.status()) == kExitUsage) {
      message = "--output-dir: " + message;
    }
    absl::FPrintF(stderr, "matbert-worker generate: %s\n", message);
    return ExitCodeFor(result.status());
  }
  if (quiet_) {
    absl::PrintF("%s\n", result->output_dir);
    return kExitOk;
  }
  const double rate = result->seconds > 0 ? result->rows / result->seconds : 0;
  absl::PrintF("wrote %d matrices (%.1f MB) to %s in %.2f s (%.0f matrices/s)\n", result->rows,
               result->bytes / 1e6, result->output_dir, result->seconds, rate);
  absl::PrintF("%s", result->summary);
  return kExitOk;
}

}  // namespace matbert
