// An executor runs whole attempts: it starts the ranks of an attempt's plan, says how each
// is, signals all of them, and takes over the ranks of an attempt that outlived a restart of
// matbertd. The coordinator decides what runs and when; the executor decides only how. The
// local executor (posix_spawn on this host) is the one built; a cluster's executor (Slurm)
// sits beside it behind the same interface.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "server/store/job_record.h"

namespace matbert {

// What to start for an attempt: made by the coordinator's rank plan (server/core/rank_plan.h).
struct RankLaunch {
  int rank = 0;
  std::vector<std::string> argv;  // argv[0] is the worker's path
  std::vector<std::string> env;   // the whole environment, "NAME=value"
  std::string log_path;           // stdout and stderr, appended
  std::string log_header;         // written to the log first: attempts share one log
};

struct AttemptPlan {
  std::string job_id;
  int attempt = 0;
  std::string run_dir;            // the working directory of every rank
  int nodes = 1;                  // hosts; ranks.size() / nodes ranks on each
  int priority = 0;               // job.priority, -1000..1000: higher runs first
  int64_t resumed_from_step = 0;  // 0 = a fresh start
  std::vector<RankLaunch> ranks;  // by rank
};

// How a rank is.
struct ProcessStatus {
  enum Kind {
    kRunning,
    kWaiting,   // not started yet: the executor's scheduler (Slurm) holds it; why in `why`
    kExited,    // exit code in `code`
    kSignaled,  // signal number in `code`
    kGone,      // not ours to wait for and no longer alive: its exit status is unknown
    kUnknown,   // the executor cannot say now (its controller does not answer): what was
                // known of the rank holds
  };
  ProcessStatus() = default;
  ProcessStatus(Kind kind, int code, std::string why = "")
      : kind(kind), code(code), why(std::move(why)) {}

  Kind kind = kRunning;
  int code = 0;
  std::string why;    // the executor's own words for an end, e.g. Slurm's state; "" = none
  std::string where;  // where it runs, when the executor places ranks itself (Slurm's node
                      // list, "node[1-2]"); "" = not known, or this host

  // `why` when set, else "exited with code 1", "was killed by signal 9 (Killed)",
  // "ended (exit status unknown)".
  std::string Describe() const;
};

// What an executor that manages a cluster of its own says of it (Slurm's nodes and queue).
struct ExecutorCluster {
  std::string backend = "local";
  struct Node {
    std::string name, state, gres;
    int cpus = 0, cpus_allocated = 0;
    std::vector<std::string> partitions;
  };
  std::vector<Node> nodes;
  struct QueueEntry {
    std::string id, name, state, reason, nodes;
  };
  std::vector<QueueEntry> queue;
};

// Thread safety: the coordinator calls Start, Poll, Signal and Adopt from one thread at a
// time (its executor thread, never under its lock); CheckFits, Ping and DescribeCluster may
// be called from other threads at the same time, so they must be thread-safe.
class Executor {
 public:
  virtual ~Executor() = default;

  // What runs the ranks, for messages: "Slurm's controller", "the local executor".
  virtual std::string Name() const { return "the executor"; }
  // Whether the executor can be asked anything now: UNAVAILABLE saying why when it cannot
  // (Slurm's controller does not answer). Cheap when it can; bounded when it cannot.
  virtual absl::Status Ping() { return absl::OkStatus(); }

  struct Started {
    // The ranks that started, by rank: those before the first that could not start, too, so
    // that the caller can stop and reap them.
    std::vector<WorkerProcess> workers;
    absl::Status status;       // not OK: which rank could not start, and why
    std::string executor_ref;  // stored with the attempt (AttemptRecord::executor_ref)
  };
  virtual Started Start(const AttemptPlan& plan) = 0;
  // How each of the attempt's workers is, in the order of `attempt.workers`. Non-blocking;
  // ranks that ended are reaped.
  virtual std::vector<ProcessStatus> Poll(const AttemptRecord& attempt) = 0;
  // Sends `signal` to every process of every rank of the attempt.
  virtual void Signal(const AttemptRecord& attempt, int signal) = 0;
  // After a restart of matbertd: takes over the attempt's ranks, which may have ended since
  // (Poll then says kGone, or what it can learn).
  virtual absl::Status Adopt(const AttemptRecord& attempt) = 0;
  // The cluster behind the executor, for GetCluster; the local executor has none.
  virtual ExecutorCluster DescribeCluster() { return {}; }
  // Whether a job of `nodes` × `ranks_per_node` ranks could ever run here; checked at
  // submission so that it fails then, not by waiting forever. INVALID_ARGUMENT saying why;
  // UNAVAILABLE when the executor cannot be asked now (the job is then checked before it
  // starts).
  virtual absl::Status CheckFits(int nodes, int ranks_per_node) {
    (void)nodes;
    (void)ranks_per_node;
    return absl::OkStatus();
  }
};

}  // namespace matbert
