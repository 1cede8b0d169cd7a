#include "common/dist_env.h"

#include <cstdlib>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace matbert {
namespace {

absl::Status ReadInt(const char* name, int* out, bool* seen) {
  const char* value = std::getenv(name);
  if (value == nullptr || *value == '\0') return absl::OkStatus();
  *seen = true;
  if (!absl::SimpleAtoi(value, out) || *out < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "environment variable ", name, " must be a non-negative integer, got \"", value, "\""));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<DistEnv> ReadDistEnv() {
  DistEnv env;
  bool seen = false;
  for (auto [name, field] : {std::pair{"RANK", &env.rank},
                             {"LOCAL_RANK", &env.local_rank},
                             {"WORLD_SIZE", &env.world_size},
                             {"LOCAL_WORLD_SIZE", &env.local_world_size},
                             {"MASTER_PORT", &env.master_port}}) {
    if (absl::Status s = ReadInt(name, field, &seen); !s.ok()) return s;
  }
  if (const char* addr = std::getenv("MASTER_ADDR"); addr != nullptr && *addr) {
    env.master_addr = addr;
  }
  if (!seen) return env;
  if (std::getenv("LOCAL_WORLD_SIZE") == nullptr) env.local_world_size = env.world_size;
  if (env.world_size < 1 || env.rank >= env.world_size) {
    return absl::InvalidArgumentError(
        absl::StrCat("RANK must be in 0..WORLD_SIZE-1 = ", env.world_size - 1, ", got ", env.rank));
  }
  if (env.local_rank >= env.local_world_size) {
    return absl::InvalidArgumentError(
        absl::StrCat("LOCAL_RANK must be in 0..LOCAL_WORLD_SIZE-1 = ", env.local_world_size - 1,
                     ", got ", env.local_rank));
  }
  if (env.world_size > 1 && (env.master_port < 1 || env.master_port > 65535)) {
    return absl::InvalidArgumentError(
        absl::StrCat("MASTER_PORT must be in 1..65535, got ", env.master_port));
  }
  return env;
}

}  // namespace matbert
