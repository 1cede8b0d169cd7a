// What a rank started by matbertd tells its coordinator (proto WorkerService): Register at
// start, a Heartbeat every interval, rank 0's metrics records and checkpoints as they are
// written, and ReportExit at the end. Runs on its own thread; nothing here blocks training.
// Calls that fail because the daemon is away are retried with backoff, in order, until it is
// back (it may restart and adopt this rank), so nothing it was told is lost.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "common/worker_report.h"

namespace matbert {

class CoordinatorReporter {
 public:
  // From MATBERT_COORDINATOR, MATBERT_JOB_ID, MATBERT_ATTEMPT and RANK. Returns nullptr when
  // MATBERT_COORDINATOR is unset (run by hand); InvalidArgument naming a bad variable.
  static absl::StatusOr<std::unique_ptr<CoordinatorReporter>> FromEnvironment();
  ~CoordinatorReporter();

  // Starts the reporting thread. `stop` is set when the coordinator says this attempt is
  // over (it was replaced or cancelled while the daemon was away).
  void Start(std::atomic<bool>* stop);
  // One line of metrics.jsonl (a JSON object). Thread-safe.
  void OnRecord(const std::string& json_line);
  // Queues ReportExit (with how rank 0's run ended) and waits up to `timeout_s` for
  // everything queued to be delivered.
  void Finish(int exit_code, const std::string& message, RunEnd run_end, double timeout_s);

  struct Impl;

 private:
  explicit CoordinatorReporter(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace matbert
