// What matbertd writes to the job store, in the order it decided it, written outside the
// coordinator's lock: the coordinator queues writes under its lock (no I/O), and Flush —
// called with no lock held, by whoever needs them stored — writes them to SQLite (each a
// commit with its fsync). A store that refuses writes (a full disk, a failing database)
// keeps matbertd's own writes queued, in order, for the next Flush; a write with a ticket
// (a rank's report, a new job) is dropped instead and its ticket says UNAVAILABLE, so that
// the rank sends it again or the client is told. Nothing is acknowledged before it is stored.
//
// Thread-safe. Queueing takes a lock of the journal's own for a moment, so it may be called
// under the coordinator's lock; Flush must not be.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <string>
#include <variant>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "server/core/event_log.h"
#include "server/store/job_record.h"
#include "server/store/job_store.h"

namespace matbert {

class StoreJournal {
 public:
  // `store` and `events` (the log over the same store) must outlive the journal;
  // `state_dir` is named when the disk is full.
  StoreJournal(JobStore* store, EventLog* events, std::string state_dir)
      : store_(store), events_(events), state_dir_(std::move(state_dir)) {}

  // Queue a write; each returns a ticket for Outcome when `ticketed`, else 0 (matbertd's own
  // write, kept through an outage). A new job's insert is always ticketed.
  // A record write replaces an older one of the same job or attempt still queued (matbertd's
  // own: not a ticketed one), and goes last: an outage keeps one record each, not one per
  // change, and a record is never stored ahead of the events queued before it.
  int64_t InsertJob(const JobRecord& job);
  void SaveJob(const JobRecord& job);
  int64_t SaveAttempt(const AttemptRecord& attempt, bool ticketed = false);
  // An event of the job. `dedupe_key` (a rank's report: its key makes a resend a no-op) or
  // `ticketed` give a ticket. `job_ended`: no event follows, so the job's memory copy in the
  // log closes once this one is stored.
  int64_t AppendEvent(const std::string& job_id, int64_t time_ms, const std::string& kind,
                      const std::string& payload, const std::string& dedupe_key, bool job_ended,
                      bool ticketed = false);

  // Writes everything queued so far, in order, and returns when it is stored or the store
  // refused a write (what is left then: matbertd's own writes stay queued, ticketed ones are
  // dropped). One Flush writes at a time. REQUIRES: no coordinator lock held.
  void Flush();
  // After a Flush that followed the ticket's write: OK (stored, or a duplicate of a stored
  // report) or the store's refusal (RESOURCE_EXHAUSTED for a full disk). Forgets the ticket.
  absl::Status Outcome(int64_t ticket);

  // Whether events of the job are queued, not stored yet.
  bool EventsWait(const std::string& job_id) const;
  // Whether anything is queued.
  bool Waiting() const;

 private:
  struct JobWrite {
    JobRecord job;
    bool insert = false;
  };
  struct EventWrite {
    std::string job_id;
    int64_t time_ms = 0;
    std::string kind, payload, dedupe_key;
    bool job_ended = false;
  };
  struct Write {
    std::variant<JobWrite, AttemptRecord, EventWrite> what;
    int64_t ticket = 0;  // 0: matbertd's own, kept through an outage
  };
  int64_t Queue(Write write) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status Store(const Write& write);  // outside mu_
  // Said in the log once per outage.
  void NoteFailure(const absl::Status& status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  JobStore* const store_;
  EventLog* const events_;
  const std::string state_dir_;

  std::mutex write_mu_;  // held by the one Flush that writes; taken before mu_
  mutable std::mutex mu_;
  std::deque<Write> queue_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, int> queued_events_ ABSL_GUARDED_BY(mu_);  // by job
  std::map<int64_t, absl::Status> outcomes_ ABSL_GUARDED_BY(mu_);
  int64_t next_ticket_ ABSL_GUARDED_BY(mu_) = 1;
  bool failing_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace matbert
