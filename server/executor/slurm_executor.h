// The Slurm executor (DESIGN.md §11): each attempt is one Slurm job of `nodes` nodes × the
// ranks per node, submitted with sbatch; its batch script starts the ranks with one srun,
// which gives each rank SLURM_PROCID and friends (the worker reads them as RANK, …; its
// MASTER_ADDR is the allocation's first node). Followed with `scontrol show job`, signalled
// with scancel. matbertd's state directory must be on a filesystem every node sees at the
// same path: the ranks read their spec and write logs and checkpoints there.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "server/executor/executor.h"

namespace matbert {

struct SlurmOptions {
  std::string partition;                 // sbatch --partition; "" = the cluster's default
  std::string account;                   // sbatch --account; "" = none
  std::vector<std::string> sbatch_args;  // more sbatch options, each one argument
  bool gpus = false;                     // ask for --gres=gpu:<ranks per node>
  int poll_interval_ms = 1000;           // scontrol at most this often per attempt
};

// What `scontrol show job --oneliner` says of a job that matters here.
struct SlurmJobInfo {
  std::string state;   // PENDING, RUNNING, COMPLETED, FAILED, CANCELLED, NODE_FAIL, …
  std::string reason;  // why it is pending or ended ("Resources", "NonZeroExitCode", …)
  int exit_code = 0;   // ExitCode=<code>:<signal>
  int exit_signal = 0;
  std::string node_list;  // NodeList=
  std::string std_out;    // StdOut=: the batch script's output, where srun names failed ranks
};
// Whether what a Slurm client printed on failing says that slurmctld did not answer (timed
// out, refused, unreachable), as opposed to refusing the request.
bool SlurmControllerUnreachable(const std::string& output);

// Parses one line of `scontrol show job --oneliner` (KEY=value words).
SlurmJobInfo ParseScontrolJob(const std::string& line);
// How the ranks of a Slurm job in `info` are, as one ProcessStatus for all of them.
ProcessStatus StatusOfSlurmJob(const std::string& job_id, const SlurmJobInfo& info);

// job.priority (-1000..1000, higher first) as sbatch's --nice (0..2000, lower first): among
// matbert's jobs Slurm keeps matbertd's order, and none outranks other users' jobs.
std::string SlurmNice(int priority);

// Lines of `sinfo -h -N -o %N|%T|%c|%C|%G|%P` (one per node and partition) as nodes.
std::vector<ExecutorCluster::Node> ParseSinfoNodes(const std::string& output);

// Whether `dir` is on a filesystem that compute nodes can share (NFS, Lustre, GPFS, CephFS,
// BeeGFS, …): OK, or FAILED_PRECONDITION naming the local filesystem it is on. A heuristic
// from statfs(2)'s type; a shared mount of another kind reads as local.
absl::Status CheckSharedFilesystem(const std::string& dir);

// What srun said of the ranks that ended badly, from its lines in the batch output
// ("srun: error: node2: task 1: Killed", "… tasks 0-1: Exited with exit code 3"): by rank,
// with the node in `why` ("on node node2 was killed by signal 9 (Killed)").
std::map<int, ProcessStatus> ParseSrunTaskErrors(const std::string& output);

// Each of `ranks` once its Slurm job has ended: for a job that FAILED, the ranks srun names in
// `batch_output` carry the failure and the others ended cleanly; for any other end (CANCELLED,
// NODE_FAIL, TIMEOUT, …) every rank carries the job's own state, the cause. A FAILED job
// whose output (info.std_out) is absent here (`batch_output` empty) ran on nodes that do not
// share matbertd's state directory, and the reason says so.
std::vector<ProcessStatus> StatusOfEndedRanks(const std::string& job_id, const SlurmJobInfo& info,
                                              const std::optional<std::string>& batch_output,
                                              const std::vector<int>& ranks);

// Ranks srun could not launch at all ("srun: error: task 1 launch failed: Slurmd could not
// connect IO"), which leave the job RUNNING with the other ranks waiting; `log_pattern` is the
// ranks' --output ("…/logs/rank-%t.log"), named in `why` as the likely cause.
std::map<int, ProcessStatus> ParseSrunLaunchFailures(const std::string& output,
                                                     const std::string& log_pattern);

class SlurmExecutor : public Executor {
 public:
  explicit SlurmExecutor(SlurmOptions options) : options_(std::move(options)) {}

  std::string Name() const override { return "Slurm's controller"; }
  // `scontrol ping`: UNAVAILABLE when slurmctld does not say it is UP within 3 s.
  absl::Status Ping() override;
  Started Start(const AttemptPlan& plan) override;
  std::vector<ProcessStatus> Poll(const AttemptRecord& attempt) override;
  void Signal(const AttemptRecord& attempt, int signal) override;
  absl::Status Adopt(const AttemptRecord& attempt) override;
  // `sbatch --test-only`: Slurm's own reason for a request it can never run.
  absl::Status CheckFits(int nodes, int ranks_per_node) override;
  // sinfo (nodes) and squeue (the queue); what it cannot read is left out.
  ExecutorCluster DescribeCluster() override;

 private:
  std::vector<std::string> SbatchArgs(int nodes, int ranks_per_node) const;
  void RetrySignal(const std::string& slurm_job);

  const SlurmOptions options_;
  std::mutex mu_;
  struct Seen {
    int64_t at_ms = 0;
    ProcessStatus status;
  };
  std::map<std::string, Seen> seen_ ABSL_GUARDED_BY(mu_);  // by Slurm job id
  // scancel that did not reach Slurm, by Slurm job id: sent again before the job's next poll.
  std::map<std::string, int> unsent_signals_ ABSL_GUARDED_BY(mu_);
  // Job names (matbert-<job>-<attempt>) whose sbatch did not answer: looked up before they
  // are submitted again.
  std::set<std::string> maybe_submitted_ ABSL_GUARDED_BY(mu_);
};

}  // namespace matbert
