// Runs a program to its end and captures what it prints: how the Slurm executor talks to
// Slurm (sbatch, scontrol, scancel — never a shell, never libslurm, whose ABI changes every
// release).
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace matbert {

struct CommandResult {
  int exit_code = 0;  // 128 + N when killed by signal N
  std::string out;    // stdout
  std::string err;    // stderr
};

// Runs argv[0] (looked up in PATH) with `env` ("NAME=value"; empty: this process's), stdin
// from /dev/null; kills it after `timeout_ms`. Errors only when it cannot be started or
// did not finish in time; a non-zero exit is a result.
absl::StatusOr<CommandResult> RunCommand(const std::vector<std::string>& argv,
                                         const std::vector<std::string>& env = {},
                                         int timeout_ms = 30000);

}  // namespace matbert
