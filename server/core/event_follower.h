// What WatchJob streams, without the stream: a job's stored events after a seq, then the new
// ones as they are stored, with the ranks' log lines between pages when asked, until the job
// has ended and everything is read. The RPC layer writes what Next returns and waits on its
// stream between calls; nothing here knows gRPC.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "server/core/coordinator.h"
#include "server/core/run_files.h"

namespace matbert {

class EventFollower {
 public:
  // Follows `job_id` from `after_seq` (0: from its first event); `wake` is called (on some
  // thread, no lock held; it must not block) whenever the job gets an event. `coordinator`
  // must outlive the follower.
  EventFollower(Coordinator* coordinator, std::string job_id, int64_t after_seq, bool include_logs,
                std::function<void()> wake);
  ~EventFollower();
  EventFollower(const EventFollower&) = delete;
  EventFollower& operator=(const EventFollower&) = delete;

  struct Batch {
    std::vector<EventRecord> events;  // in seq order, after the last batch's
    std::vector<RankLogLine> logs;    // complete lines written since the last batch
    bool ended = false;               // the job has ended and nothing follows these
    bool more = false;                // a full page: call again at once
  };
  // NOT_FOUND for an unknown job.
  absl::StatusOr<Batch> Next();
  // How long the caller may wait for a wake before calling Next again: logs are polled.
  std::chrono::milliseconds poll_interval() const {
    return std::chrono::milliseconds(include_logs_ ? 200 : 5000);
  }
  int64_t seq() const { return seq_; }

  static constexpr int kPage = 256;

 private:
  Coordinator* const coordinator_;
  const std::string job_id_;
  const bool include_logs_;
  int64_t seq_;
  int64_t handle_;
  RankLogs logs_;  // every rank's log from its start, rank by rank as they appear
};

}  // namespace matbert
