// The torchrun environment contract (DESIGN.md §6), read by every rank of a job.
#pragma once

#include <string>

#include "absl/status/statusor.h"

namespace matbert {

// RANK, LOCAL_RANK, WORLD_SIZE, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT.
struct DistEnv {
  int rank = 0;
  int local_rank = 0;
  int world_size = 1;
  int local_world_size = 1;
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
};

// Reads the torchrun variables; all unset means one rank alone. INVALID_ARGUMENT naming the
// variable when one is malformed or inconsistent.
absl::StatusOr<DistEnv> ReadDistEnv();

}  // namespace matbert
