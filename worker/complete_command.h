// `matbert-worker complete`: fill the missing entries of matrices (CSV or .npy, NaN =
// missing) with a trained checkpoint, optionally beside the classical baselines.
#pragma once

#include <CLI/CLI.hpp>
#include <string>
#include <vector>

namespace matbert {

struct MatrixFile;
struct TrainModuleApi;

class CompleteCommand {
 public:
  explicit CompleteCommand(CLI::App& app);
  bool selected() const { return command_->parsed(); }
  int Run();

 private:
  // Completes `file` (read from, or written to, `input`) and writes the outputs; with `truth`
  // (the full matrices), prints each completion's RMSE on the missing entries. An exit code.
  int CompleteFile(const TrainModuleApi& module, const std::string& input, const MatrixFile& file,
                   bool normalize, const std::vector<double>* truth);
  int CompleteEvalSet(const TrainModuleApi& module);

  CLI::App* command_;
  std::string checkpoint_;
  std::vector<std::string> inputs_;
  std::string output_dir_;
  bool baselines_ = false;
  bool no_normalize_ = false;
  bool ema_ = false;
  bool eval_set_ = false;
  int threads_ = 0;
  bool quiet_ = false;
};

}  // namespace matbert
