// `matbert-worker inspect DIR`: validates a dataset directory row by row and prints its
// shape and tokenizer; optionally dumps every row as raw arrays for other tools.
#pragma once

#include <CLI/CLI.hpp>
#include <string>

namespace matbert {

class InspectCommand {
 public:
  explicit InspectCommand(CLI::App& app);
  bool selected() const { return command_->parsed(); }
  int Run();

 private:
  CLI::App* command_;
  std::string dir_;
  std::string dump_prefix_;
};

}  // namespace matbert
