// `matbert-worker generate`: flags → GenerateOptions → GenerateDataset, with a summary.
#pragma once

#include <CLI/CLI.hpp>

#include "worker/data/dataset_generator.h"

namespace matbert {

class GenerateCommand {
 public:
  // Registers the subcommand and its flags on `app`.
  explicit GenerateCommand(CLI::App& app);
  bool selected() const { return command_->parsed(); }
  // Returns the process exit code.
  int Run();

 private:
  CLI::App* command_;
  GenerateOptions options_;
  std::string config_;  // a job spec: its [matrix] and [generate] sections give the options
  bool quiet_ = false;
};

}  // namespace matbert
