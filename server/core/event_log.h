// The job event log: every event a job gets (state changes, metrics records, checkpoints),
// numbered seq = 1, 2, … per job and stored in SQLite before anyone is told about it; the
// newest events of running jobs kept in memory so that watchers read memory, not SQLite;
// and the watchers themselves, woken after the events they wait for are stored.
//
// Thread-safe, with a lock of its own: the coordinator appends under its lock and calls
// NotifyPending() after releasing it, so a watcher's wake never runs under a lock.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "server/store/job_store.h"

namespace matbert {

class EventLog {
 public:
  // `store` must outlive the log.
  explicit EventLog(JobStore* store) : store_(store) {}

  // Stores an event of the job at `time_ms`. Returns its seq, or 0 when `dedupe_key` (if not
  // empty) names an event the job already has: a report the sender resent.
  absl::StatusOr<int64_t> Append(const std::string& job_id, int64_t time_ms,
                                 const std::string& kind, const std::string& payload,
                                 const std::string& dedupe_key = "");
  // The job has ended: no event follows, so it needs no memory copy any more.
  void Close(const std::string& job_id);

  // Stored events with seq > after_seq, at most `limit`, from memory when it holds them.
  absl::StatusOr<std::vector<EventRecord>> After(const std::string& job_id, int64_t after_seq,
                                                 int limit) const;
  // The seq of the job's newest stored event; 0 when it has none.
  int64_t LastSeq(const std::string& job_id) const { return store_->LastSeq(job_id); }

  // `wake` is called (on some thread, with no lock held; it must not block) whenever the job
  // gets an event. Returns a handle for Unsubscribe.
  int64_t Subscribe(const std::string& job_id, std::function<void()> wake);
  void Unsubscribe(int64_t handle);
  // Wakes the watchers of every job that got an event since the last call.
  void NotifyPending();

  static constexpr size_t kRecentEvents = 1024;

 private:
  JobStore* const store_;
  mutable std::mutex mu_;
  std::map<std::string, std::deque<EventRecord>> recent_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> pending_ ABSL_GUARDED_BY(mu_);
  int64_t next_handle_ ABSL_GUARDED_BY(mu_) = 1;
  std::map<int64_t, std::pair<std::string, std::function<void()>>> watchers_ ABSL_GUARDED_BY(mu_);
};

}  // namespace matbert
