// `matbert-worker train`: job spec + overrides → Train(), with SIGTERM/SIGINT turned into
// a clean stop (finish the step, write a checkpoint, exit 0).
#pragma once

#include <CLI/CLI.hpp>
#include <string>
#include <vector>

namespace matbert {

class TrainCommand {
 public:
  explicit TrainCommand(CLI::App& app);
  bool selected() const { return command_->parsed(); }
  int Run();

 private:
  CLI::App* command_;
  std::string config_;
  std::string run_dir_;
  std::vector<std::string> sets_;
  bool quiet_ = false;
};

}  // namespace matbert
