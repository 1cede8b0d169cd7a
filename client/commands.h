// The commands of matbertctl (DESIGN.md §1). Each takes the connection and its options and
// returns the process exit code (client/exit_codes.h); main.cc only parses flags.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "client/connection.h"

namespace matbert {

struct SubmitOptions {
  std::string file;                    // job spec (TOML)
  std::vector<std::string> overrides;  // "section.key=value"
  std::optional<std::string> name;     // --name: job.name
  std::optional<int> nodes;            // --nodes: job.nodes
  std::optional<int> gpus;             // --gpus: job.gpus
  std::optional<int> priority;         // --priority: job.priority
  bool watch = false;                  // follow the job to its end after submitting
  bool quiet = false;                  // print only the id
};
int RunSubmit(Connection& conn, const SubmitOptions& options);

// `status` (all jobs; `mine`: the caller's only) or `status JOB`.
int RunStatus(Connection& conn, const std::string& job_id, int limit, bool mine);

int RunCancel(Connection& conn, const std::string& job_id, bool force);

// Follows a job to its end; exit code by its final state.
int RunWatch(Connection& conn, const std::string& job_id);

struct LogsOptions {
  std::string job_id;
  bool follow = false;
  std::optional<int> rank;
  int tail = 0;  // last N lines per rank; 0 = all
};
int RunLogs(Connection& conn, const LogsOptions& options);

int RunCheckpoints(Connection& conn, const std::string& job_id);

struct DownloadOptions {
  std::string job_id;
  std::optional<int64_t> step;  // unset = the latest
  std::string output_dir;       // default ./<job>-step-NNNNNNN
  bool overwrite = false;
};
int RunDownload(Connection& conn, const DownloadOptions& options);

int RunCluster(Connection& conn);

}  // namespace matbert
