// An Executor whose ranks exist only in its tables, for the coordinator's tests: ranks get
// pids 100, 101, … in the order they start, end when a test sets their status, and record
// every signal. Faults are scripted: starts that fail, fit checks and pings that refuse, and a
// hook run inside Start (outside the coordinator's lock) to race a call against a start.
//
// Thread-safe: the coordinator's executor thread calls it while a test reads and scripts it.
#pragma once

#include <signal.h>
#include <sys/types.h>

#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "server/executor/executor.h"

namespace matbert {

class ScriptedExecutor : public Executor {
 public:
  std::string Name() const override { return "the scripted executor"; }
  absl::Status Ping() override {
    std::lock_guard<std::mutex> lock(mu);
    return ping;
  }
  Started Start(const AttemptPlan& plan) override {
    std::function<void()> hook;
    {
      std::lock_guard<std::mutex> lock(mu);
      hook = std::move(on_start);
      on_start = nullptr;
    }
    if (hook) hook();
    std::lock_guard<std::mutex> lock(mu);
    Started started;
    if (unanswered_starts > 0) {
      --unanswered_starts;
      started.status = absl::UnavailableError("sbatch did not get an answer: timed out");
      return started;
    }
    for (const RankLaunch& rank : plan.ranks) {
      if (fail_starts > 0) {
        --fail_starts;
        started.status = absl::NotFoundError(absl::StrCat(
            "cannot start rank ", rank.rank, ": cannot start /nonexistent/matbert-worker"));
        break;
      }
      launched.push_back(rank);
      const int pid = next_pid++;
      started.workers.push_back({rank.rank, pid, 1000 + pid});
    }
    return started;
  }
  std::vector<ProcessStatus> Poll(const AttemptRecord& attempt) override {
    std::lock_guard<std::mutex> lock(mu);
    std::vector<ProcessStatus> out;
    for (const WorkerProcess& w : attempt.workers) {
      auto it = status.find(w.pid);
      out.push_back(it == status.end() ? ProcessStatus{} : it->second);
    }
    return out;
  }
  // Recorded as (rank 0's pid, signal).
  void Signal(const AttemptRecord& attempt, int signal) override {
    std::lock_guard<std::mutex> lock(mu);
    signals.push_back({attempt.workers.empty() ? 0 : attempt.workers[0].pid, signal});
  }
  absl::Status Adopt(const AttemptRecord& attempt) override {
    std::lock_guard<std::mutex> lock(mu);
    adopted.push_back(attempt.job_id);
    return absl::OkStatus();
  }
  absl::Status CheckFits(int nodes, int ranks_per_node) override {
    (void)nodes;
    (void)ranks_per_node;
    std::lock_guard<std::mutex> lock(mu);
    if (fits.empty()) return absl::OkStatus();
    absl::Status next = fits.front();
    fits.erase(fits.begin());
    return next;
  }

  void ExitAll(int code) {
    std::lock_guard<std::mutex> lock(mu);
    for (int pid = 100; pid < next_pid; ++pid) status[pid] = {ProcessStatus::kExited, code};
  }
  void SetStatus(int pid, ProcessStatus s) {
    std::lock_guard<std::mutex> lock(mu);
    status[pid] = std::move(s);
  }
  size_t Launched() {
    std::lock_guard<std::mutex> lock(mu);
    return launched.size();
  }
  std::vector<std::pair<pid_t, int>> Signals() {
    std::lock_guard<std::mutex> lock(mu);
    return signals;
  }

  // Guards everything below; tests driving one thread may read the fields directly.
  std::mutex mu;
  int fail_starts = 0;
  int unanswered_starts = 0;  // starts that start nothing and say UNAVAILABLE
  int next_pid = 100;
  std::vector<absl::Status> fits;  // CheckFits answers, in turn; then OK
  absl::Status ping;               // what Ping says
  std::function<void()> on_start;  // run once, at the next Start, before anything starts
  std::vector<RankLaunch> launched;
  std::map<int, ProcessStatus> status;
  std::vector<std::pair<pid_t, int>> signals;
  std::vector<std::string> adopted;
};

}  // namespace matbert
