// Starting and watching worker processes. The coordinator goes through this interface so
// tests can inject failures; PosixProcessLauncher is the real one (posix_spawn).
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "server/store/job_record.h"

namespace matbert {

struct SpawnRequest {
  std::vector<std::string> argv;  // argv[0] is the program's path
  std::vector<std::string> env;   // the whole environment, "KEY=VALUE"
  std::string log_path;           // stdout and stderr, appended; created if missing
  std::string cwd;                // working directory; empty = the daemon's
  pid_t process_group = 0;        // join this group; 0 = lead a new one
  int rank = 0;                   // copied into the returned WorkerProcess
};

// What Poll() saw of a process.
struct ProcessStatus {
  enum Kind {
    kRunning,
    kExited,    // exit code in `code`
    kSignaled,  // signal number in `code`
    kGone,      // not our child and no longer alive: its exit status is unknown
  };
  Kind kind = kRunning;
  int code = 0;

  // "exited with code 1", "was killed by signal 9 (Killed)", "ended (status unknown)".
  std::string Describe() const;
};

class ProcessLauncher {
 public:
  virtual ~ProcessLauncher() = default;
  virtual absl::StatusOr<WorkerProcess> Spawn(const SpawnRequest& request) = 0;
  // Non-blocking. Reaps the process if it is our child and has ended.
  virtual ProcessStatus Poll(const WorkerProcess& process) = 0;
  // Sends `signal` to every process of the group; false if the group no longer exists.
  virtual bool SignalGroup(pid_t group, int signal) = 0;
};

class PosixProcessLauncher : public ProcessLauncher {
 public:
  absl::StatusOr<WorkerProcess> Spawn(const SpawnRequest& request) override;
  ProcessStatus Poll(const WorkerProcess& process) override;
  bool SignalGroup(pid_t group, int signal) override;
};

// The start time of a process in clock ticks since boot (/proc/<pid>/stat field 22), or -1
// if it does not exist. Together with the pid it names one process for good.
int64_t ProcessStartTicks(pid_t pid);

}  // namespace matbert
