#include "worker/complete_command.h"

#include <algorithm>
#include <cmath>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "worker/data/matrix_files.h"
#include "worker/exit_codes.h"
#include "worker/train/train_module.h"

namespace matbert {
namespace {

// "data/x.npy" + "completed" in `dir` (or beside the input) → "<dir>/x.completed.npy".
std::string OutputPath(const std::string& input, const std::string& dir, const char* what) {
  const std::filesystem::path in(input);
  const std::filesystem::path where = dir.empty() ? in.parent_path() : std::filesystem::path(dir);
  return (where / absl::StrFormat("%s.%s%s", in.stem().string(), what, in.extension().string()))
      .string();
}

}  // namespace

CompleteCommand::CompleteCommand(CLI::App& app) {
  command_ = app.add_subcommand(
      "complete",
      "Fill the missing entries of matrices with a trained checkpoint.\n"
      "Each input is a .csv (one matrix per block of lines, blank lines between matrices; an\n"
      "empty cell or nan is missing) or a .npy (float64/float32, shape (m, n) or (k, m, n);\n"
      "NaN is missing). X.csv becomes X.completed.csv (beside it, or in --output-dir), in the\n"
      "same format, with the given entries unchanged; --baselines also writes X.mean.csv,\n"
      "X.als.csv and X.soft_impute.csv. Matrices must have the shape the checkpoint was\n"
      "trained on. --eval-set completes the run's own held-out matrices and prints the errors.\n"
      "Examples:\n"
      "  matbert-worker complete --checkpoint runs/my_job/checkpoints/step-0001000 m.csv\n"
      "  matbert-worker complete --checkpoint runs/my_job/checkpoints/step-0001000 --eval-set "
      "--baselines");
  command_
      ->add_option("--checkpoint", checkpoint_,
                   "Checkpoint directory (runs/JOB/checkpoints/step-N, or a downloaded one)")
      ->required();
  command_->add_option("inputs", inputs_, "Matrices to complete: .csv or .npy files");
  command_->add_flag("--eval-set", eval_set_,
                     "Instead of files: the checkpoint's own held-out evaluation matrices, masked "
                     "as training evaluates them. Writes eval_set.npy (observed entries as the "
                     "model sees them, NaN where masked), eval_set.truth.npy and the completions "
                     "into --output-dir [default: .], and prints each one's RMSE on the masked "
                     "entries: the model's equals the run's eval_rmse at that step");
  command_->add_option("--output-dir", output_dir_,
                       "Write the completions here [default: beside each input]");
  command_->add_flag("--baselines", baselines_,
                     "Also write the observed-mean, rank-r ALS and soft-impute completions");
  command_->add_flag("--no-normalize", no_normalize_,
                     "Give the model the values as they are (by default each matrix is divided "
                     "by its observed entries' std, as the training data were, and scaled back)");
  command_->add_flag("--ema", ema_,
                     "Use the weights' moving average (model_ema.safetensors; training.ema_decay)");
  command_->add_option("--threads", threads_, "Intra-op threads [default: LibTorch's]");
  command_->add_flag("-q,--quiet", quiet_, "Print nothing but errors");
}

int CompleteCommand::Run() {
  absl::StatusOr<const TrainModuleApi*> module = LoadTrainModule();
  if (!module.ok()) {
    absl::FPrintF(stderr, "matbert-worker complete: %s\n", module.status().message());
    return kExitFailure;
  }
  if (!output_dir_.empty() && !std::filesystem::is_directory(output_dir_)) {
    absl::FPrintF(stderr, "matbert-worker complete: --output-dir %s is not a directory\n",
                  output_dir_);
    return kExitUsage;
  }
  if (eval_set_ == !inputs_.empty()) {
    absl::FPrintF(stderr,
                  "matbert-worker complete: give matrices to complete (.csv or .npy files) or "
                  "--eval-set, not %s\n",
                  eval_set_ ? "both" : "neither");
    return kExitUsage;
  }
  if (eval_set_) return CompleteEvalSet(**module);
  for (const std::string& input : inputs_) {
    absl::StatusOr<MatrixFile> file = ReadMatrixFile(input);
    if (!file.ok()) {
      absl::FPrintF(stderr, "matbert-worker complete: %s\n", file.status().message());
      return ExitCodeFor(file.status());
    }
    if (int code = CompleteFile(**module, input, *file, !no_normalize_, nullptr); code != kExitOk) {
      return code;
    }
  }
  return kExitOk;
}

int CompleteCommand::CompleteEvalSet(const TrainModuleApi& module) {
  absl::StatusOr<EvalSet> set = module.eval_set(checkpoint_);
  if (!set.ok()) {
    absl::FPrintF(stderr, "matbert-worker complete: %s\n", set.status().message());
    return ExitCodeFor(set.status());
  }
  MatrixFile file{.format = MatrixFile::kNpy,
                  .count = set->count,
                  .m = set->m,
                  .n = set->n,
                  .stacked = true,
                  .values = set->truth};
  const std::string dir = output_dir_.empty() ? "." : output_dir_;
  const std::string input = (std::filesystem::path(dir) / "eval_set.npy").string();
  if (absl::Status s = WriteMatrixFile(OutputPath(input, dir, "truth"), file); !s.ok()) {
    absl::FPrintF(stderr, "matbert-worker complete: %s\n", s.message());
    return kExitFailure;
  }
  file.values = set->observed;
  if (absl::Status s = WriteMatrixFile(input, file); !s.ok()) {
    absl::FPrintF(stderr, "matbert-worker complete: %s\n", s.message());
    return kExitFailure;
  }
  if (!quiet_) absl::PrintF("%s\n%s\n", input, OutputPath(input, dir, "truth"));
  // The eval set is already on the training data's scale: the model sees it as it is.
  return CompleteFile(module, input, file, /*normalize=*/false, &set->truth);
}

int CompleteCommand::CompleteFile(const TrainModuleApi& module, const std::string& input,
                                  const MatrixFile& file, bool normalize,
                                  const std::vector<double>* truth) {
  CompletionRequest request;
  request.checkpoint = checkpoint_;
  request.values = file.values;
  request.count = file.count;
  request.m = file.m;
  request.n = file.n;
  request.source = input;
  request.normalize = normalize;
  request.baselines = baselines_;
  request.average = ema_;
  request.threads = threads_;
  absl::StatusOr<Completion> done = module.complete(request);
  if (!done.ok()) {
    absl::FPrintF(stderr, "matbert-worker complete: %s\n", done.status().message());
    return ExitCodeFor(done.status());
  }
  const std::pair<const char*, std::vector<double>*> outputs[] = {
      {"completed", &done->model},
      {"mean", &done->mean},
      {"als", &done->als},
      {"soft_impute", &done->soft_impute}};
  std::string errors;
  for (const auto& [what, values] : outputs) {
    if (values->empty()) continue;
    if (truth != nullptr) {
      double sq = 0;
      for (size_t k = 0; k < values->size(); ++k) {
        if (std::isnan(file.values[k])) sq += std::pow((*values)[k] - (*truth)[k], 2);
      }
      absl::StrAppendFormat(&errors, "%s%s %.4f", errors.empty() ? "" : " | ",
                            what == std::string("completed") ? "model" : what,
                            std::sqrt(sq / std::max<int64_t>(done->missing, 1)));
    }
    MatrixFile out = file;
    out.values = std::move(*values);
    const std::string path = OutputPath(input, output_dir_, what);
    if (absl::Status s = WriteMatrixFile(path, out); !s.ok()) {
      absl::FPrintF(stderr, "matbert-worker complete: %s\n", s.message());
      return kExitFailure;
    }
    if (!quiet_) absl::PrintF("%s\n", path);
  }
  if (!quiet_) {
    absl::FPrintF(stderr, "%s: %d matri%s %dx%d, %d missing entr%s filled\n", input, file.count,
                  file.count == 1 ? "x" : "ces", file.m, file.n, done->missing,
                  done->missing == 1 ? "y" : "ies");
  }
  // The figures go to stdout even with --quiet: they are what was asked for.
  if (truth != nullptr) absl::PrintF("masked RMSE: %s\n", errors);
  return kExitOk;
}

}  // namespace matbert
