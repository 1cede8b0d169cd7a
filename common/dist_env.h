// The environment of a rank (DESIGN.md §6), defined once for both sides: matbertd writes it
// for every rank it starts (RankEnvEntries), and matbert-worker reads it (ReadDistEnv,
// ReadCoordinatorEnv). The torchrun part is what torchrun and Slurm launchers set too.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace matbert {

// The variables' names.
inline constexpr char kEnvRank[] = "RANK";
inline constexpr char kEnvLocalRank[] = "LOCAL_RANK";
inline constexpr char kEnvWorldSize[] = "WORLD_SIZE";
inline constexpr char kEnvLocalWorldSize[] = "LOCAL_WORLD_SIZE";
inline constexpr char kEnvMasterAddr[] = "MASTER_ADDR";
inline constexpr char kEnvMasterPort[] = "MASTER_PORT";
inline constexpr char kEnvCudaVisibleDevices[] = "CUDA_VISIBLE_DEVICES";
inline constexpr char kEnvCoordinator[] = "MATBERT_COORDINATOR";  // host:port of matbertd
inline constexpr char kEnvJobId[] = "MATBERT_JOB_ID";
inline constexpr char kEnvAttempt[] = "MATBERT_ATTEMPT";  // 1, 2, …
inline constexpr char kEnvToken[] = "MATBERT_TOKEN";      // the rank's credential
inline constexpr char kEnvTlsCa[] = "MATBERT_TLS_CA";     // certificate to trust for matbertd

// RANK, LOCAL_RANK, WORLD_SIZE, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT.
struct DistEnv {
  int rank = 0;
  int local_rank = 0;
  int world_size = 1;
  int local_world_size = 1;
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
};

// What matbertd tells a rank it reports to it: MATBERT_*.
struct CoordinatorEnv {
  std::string address;  // MATBERT_COORDINATOR
  std::string job_id;
  int attempt = 1;
  std::string token;   // empty: none
  std::string tls_ca;  // empty: plaintext
};

// Everything matbertd sets for one rank.
struct RankEnv {
  DistEnv dist;
  std::string cuda_visible_devices;
  CoordinatorEnv coordinator;
};

// "NAME=value" entries for a rank's environment (token and TLS CA only when set).
std::vector<std::string> RankEnvEntries(const RankEnv& env);
// Whether an "NAME=value" entry is one of RankEnvEntries' variables (MATBERT_* included), so
// that the daemon's own copies are not passed on to a rank.
bool IsRankEnvEntry(absl::string_view entry);

// Reads the torchrun variables; all unset means one rank alone. INVALID_ARGUMENT naming the
// variable when one is malformed or inconsistent. Without RANK, under `srun` (SLURM_PROCID
// set), the same values come from Slurm's: SLURM_PROCID, SLURM_LOCALID, SLURM_NTASKS,
// SLURM_NNODES, and MASTER_ADDR the first node of SLURM_JOB_NODELIST (unless MASTER_ADDR
// is set), MASTER_PORT 20000 + SLURM_JOB_ID mod 20000 (unless MASTER_PORT is set).
absl::StatusOr<DistEnv> ReadDistEnv();

// The first host name of a Slurm host list: "node[3-5,9]" → "node3", "gpu-[007-8]-ib,x" →
// "gpu-007-ib", "a,b" → "a". Empty for an empty list.
std::string FirstSlurmHost(absl::string_view hostlist);

// Reads MATBERT_*: nullopt when MATBERT_COORDINATOR is unset (run by hand); INVALID_ARGUMENT
// naming the variable when the others are missing or malformed.
absl::StatusOr<std::optional<CoordinatorEnv>> ReadCoordinatorEnv();

}  // namespace matbert
