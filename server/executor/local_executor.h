// The local executor: the ranks of an attempt are child processes of matbertd on this host,
// started with posix_spawn in one process group (that of rank 0), so that one kill() reaches
// every rank and anything a rank started. Adopted ranks (after a restart) are not our
// children: they are followed through /proc, by pid and start time.
#pragma once

#include <sys/types.h>

#include <cstdint>

#include "server/executor/executor.h"

namespace matbert {

class LocalExecutor : public Executor {
 public:
  std::string Name() const override { return "the local executor"; }
  Started Start(const AttemptPlan& plan) override;
  std::vector<ProcessStatus> Poll(const AttemptRecord& attempt) override;
  void Signal(const AttemptRecord& attempt, int signal) override;
  absl::Status Adopt(const AttemptRecord& attempt) override;
};

// The start time of a process in clock ticks since boot (/proc/<pid>/stat field 22), or -1
// if it does not exist. Together with the pid it names one process for good.
int64_t ProcessStartTicks(pid_t pid);

}  // namespace matbert
