#include "common/dist_env.h"

#include <algorithm>
#include <cstdlib>

#include "absl/strings/match.h"
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

// The torchrun values from Slurm's, for a rank started by srun.
absl::StatusOr<DistEnv> ReadSlurmDistEnv() {
  DistEnv env;
  bool seen = false;
  int nodes = 1;
  for (auto [name, field] : {std::pair{"SLURM_PROCID", &env.rank},
                             {"SLURM_LOCALID", &env.local_rank},
                             {"SLURM_NTASKS", &env.world_size},
                             {"SLURM_NNODES", &nodes}}) {
    if (absl::Status s = ReadInt(name, field, &seen); !s.ok()) return s;
  }
  if (env.world_size < 1 || env.rank >= env.world_size) {
    return absl::InvalidArgumentError(absl::StrCat(
        "SLURM_PROCID must be in 0..SLURM_NTASKS-1 = ", env.world_size - 1, ", got ", env.rank));
  }
  // matbertd starts the same number of ranks on every node.
  env.local_world_size = std::max(1, env.world_size / std::max(1, nodes));
  if (const char* addr = std::getenv(kEnvMasterAddr); addr != nullptr && *addr) {
    env.master_addr = addr;
  } else {
    const char* list = std::getenv("SLURM_JOB_NODELIST");
    if (list == nullptr || *list == '\0') list = std::getenv("SLURM_NODELIST");
    if (list == nullptr || FirstSlurmHost(list).empty()) {
      return absl::InvalidArgumentError(
          "SLURM_PROCID is set but SLURM_JOB_NODELIST is not: cannot tell the first node, where "
          "the ranks meet (set MASTER_ADDR)");
    }
    env.master_addr = FirstSlurmHost(list);
  }
  if (absl::Status s = ReadInt(kEnvMasterPort, &env.master_port, &seen); !s.ok()) return s;
  if (std::getenv(kEnvMasterPort) == nullptr) {
    int job_id = 0;
    if (absl::Status s = ReadInt("SLURM_JOB_ID", &job_id, &seen); !s.ok()) return s;
    env.master_port = 20000 + job_id % 20000;
  }
  return env;
}

}  // namespace

std::string FirstSlurmHost(absl::string_view hostlist) {
  // The first entry: up to the first comma outside brackets.
  int depth = 0;
  size_t end = 0;
  for (; end < hostlist.size(); ++end) {
    if (hostlist[end] == '[') ++depth;
    if (hostlist[end] == ']') --depth;
    if (hostlist[end] == ',' && depth == 0) break;
  }
  absl::string_view entry = hostlist.substr(0, end);
  const size_t open = entry.find('[');
  if (open == absl::string_view::npos) return std::string(entry);
  const size_t close = entry.find(']', open);
  if (close == absl::string_view::npos) return std::string(entry);
  absl::string_view ranges = entry.substr(open + 1, close - open - 1);
  const size_t first_end = ranges.find_first_of(",-");
  return absl::StrCat(entry.substr(0, open), ranges.substr(0, first_end), entry.substr(close + 1));
}

absl::StatusOr<DistEnv> ReadDistEnv() {
  const char* rank = std::getenv(kEnvRank);
  const char* procid = std::getenv("SLURM_PROCID");
  if ((rank == nullptr || *rank == '\0') && procid != nullptr && *procid != '\0') {
    return ReadSlurmDistEnv();
  }
  DistEnv env;
  bool seen = false;
  for (auto [name, field] : {std::pair{kEnvRank, &env.rank},
                             {kEnvLocalRank, &env.local_rank},
                             {kEnvWorldSize, &env.world_size},
                             {kEnvLocalWorldSize, &env.local_world_size},
                             {kEnvMasterPort, &env.master_port}}) {
    if (absl::Status s = ReadInt(name, field, &seen); !s.ok()) return s;
  }
  if (const char* addr = std::getenv(kEnvMasterAddr); addr != nullptr && *addr) {
    env.master_addr = addr;
  }
  if (!seen) return env;
  if (std::getenv(kEnvLocalWorldSize) == nullptr) env.local_world_size = env.world_size;
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

std::vector<std::string> RankEnvEntries(const RankEnv& env) {
  std::vector<std::string> out = {
      absl::StrCat(kEnvRank, "=", env.dist.rank),
      absl::StrCat(kEnvLocalRank, "=", env.dist.local_rank),
      absl::StrCat(kEnvWorldSize, "=", env.dist.world_size),
      absl::StrCat(kEnvLocalWorldSize, "=", env.dist.local_world_size),
      absl::StrCat(kEnvMasterAddr, "=", env.dist.master_addr),
      absl::StrCat(kEnvMasterPort, "=", env.dist.master_port),
      absl::StrCat(kEnvCudaVisibleDevices, "=", env.cuda_visible_devices),
      absl::StrCat(kEnvCoordinator, "=", env.coordinator.address),
      absl::StrCat(kEnvJobId, "=", env.coordinator.job_id),
      absl::StrCat(kEnvAttempt, "=", env.coordinator.attempt)};
  if (!env.coordinator.token.empty())
    out.push_back(absl::StrCat(kEnvToken, "=", env.coordinator.token));
  if (!env.coordinator.tls_ca.empty()) {
    out.push_back(absl::StrCat(kEnvTlsCa, "=", env.coordinator.tls_ca));
  }
  return out;
}

bool IsRankEnvEntry(absl::string_view entry) {
  for (const char* name : {kEnvRank, kEnvLocalRank, kEnvWorldSize, kEnvLocalWorldSize,
                           kEnvMasterAddr, kEnvMasterPort, kEnvCudaVisibleDevices}) {
    if (absl::StartsWith(entry, absl::StrCat(name, "="))) return true;
  }
  return absl::StartsWith(entry, "MATBERT_");
}

absl::StatusOr<std::optional<CoordinatorEnv>> ReadCoordinatorEnv() {
  const char* address = std::getenv(kEnvCoordinator);
  if (address == nullptr || *address == '\0') return std::nullopt;
  CoordinatorEnv env;
  env.address = address;
  if (const char* token = std::getenv(kEnvToken); token != nullptr) env.token = token;
  if (const char* ca = std::getenv(kEnvTlsCa); ca != nullptr) env.tls_ca = ca;
  const char* job = std::getenv(kEnvJobId);
  if (job == nullptr || *job == '\0') {
    return absl::InvalidArgumentError(
        absl::StrCat(kEnvJobId, " must be set with ", kEnvCoordinator));
  }
  env.job_id = job;
  const char* attempt = std::getenv(kEnvAttempt);
  if (attempt == nullptr || !absl::SimpleAtoi(attempt, &env.attempt) || env.attempt < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat(kEnvAttempt, " must be a number >= 1, got \"", attempt ? attempt : "", "\""));
  }
  return env;
}

}  // namespace matbert
