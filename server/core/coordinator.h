// The core of matbertd: accepts jobs (admission.h), keeps them in the JobStore and their
// events in the EventLog, asks the GangScheduler for placements, has an Executor start each
// attempt's ranks as the rank plan says (rank_plan.h), follows them (exit codes, heartbeats,
// metrics, checkpoints), ends and retries attempts as the attempt policy says
// (attempt_policy.h), and recovers all of it after a restart. Knows nothing about gRPC: the
// services in server/ translate protos and call these methods.
//
// Thread-safe. Decisions are made under one lock; nothing slow happens under it. Two
// threads drive the jobs:
//  - the control thread, every `tick_ms`: heartbeat silence, kill deadlines, placements,
//    storing what waits — memory work under the lock, never an executor call;
//  - the executor thread: every call of the Executor (start, poll, signal, ping), the
//    checkpoint hashing before a start, each done outside the lock and its result applied
//    under it again. A stalled executor (Slurm's controller stopped) delays only the work
//    that needs it: reads, submissions, heartbeats and reports go on, and jobs wait QUEUED
//    with the executor's trouble as their reason until it answers again.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "common/worker_report.h"
#include "server/core/admission.h"
#include "server/core/attempt_machine.h"
#include "server/core/attempt_policy.h"
#include "server/core/devices.h"
#include "server/core/event_log.h"
#include "server/core/run_files.h"
#include "server/core/store_journal.h"
#include "server/executor/executor.h"
#include "server/scheduler/gang_scheduler.h"
#include "server/store/job_store.h"

namespace matbert {

struct CoordinatorOptions {
  std::string state_dir = "var/matbert";  // matbert.db, runs/<job>/, data/
  std::string worker_path;                // the matbert-worker executable
  std::string coordinator_address;        // what workers dial: MATBERT_COORDINATOR
  std::string spec_root = ".";            // model.arch of submitted specs resolves here
  std::vector<DeviceInfo> devices;        // GPUs or CPU slots, all of one kind; under Slurm,
                                          // rank slots ("slurm") that Slurm places
  int max_nodes = 1;                      // hosts a job may span (1: this host alone)
  int max_queued = 10000;                 // SubmitJob beyond this: ResourceExhausted
  int grace_period_s = 30;                // SIGTERM → SIGKILL, when a job does not set one
  int heartbeat_interval_ms = 2000;       // told to workers at Register
  int heartbeat_timeout_s = 30;           // silence (or no Register) that fails an attempt
  int tick_ms = 100;                      // control loop period
  // An executor call running longer than this makes the executor "not answering": no new
  // attempts start, submissions skip its fit check, GetCluster shows its last answer.
  int executor_stall_ms = 5000;
  bool control_thread = true;  // false: no threads; nothing runs until TickForTest() (tests)
  std::string master_addr = "127.0.0.1";  // MASTER_ADDR of the ranks
  // The credential handed to the ranks of a job as MATBERT_TOKEN ("" or unset: none).
  std::function<std::string(const std::string& job_id)> rank_credential;
  std::string tls_ca_file;          // handed to ranks as MATBERT_TLS_CA; "" = plaintext
  std::function<int64_t()> now_ms;  // Unix ms; default: the system clock
  // Called with the seconds from submission to the ranks' start of each job's first
  // attempt (the scheduling latency histogram). Must be cheap and thread-safe.
  std::function<void(double)> on_scheduled;
};

// A job as clients see it.
struct JobView {
  JobRecord job;
  std::vector<AttemptRecord> attempts;
  int queue_position = 0;  // 1-based while waiting, else 0
  std::string run_dir;
  std::string nodes;  // where an executor that places ranks itself (Slurm) runs them; "" = not yet
};

struct ClusterView {
  std::vector<DeviceInfo> devices;
  std::vector<std::string> holders;  // per device; "" when free
  std::vector<JobRecord> queue;      // in placement order
  std::map<std::string, int> jobs_by_state;
  ExecutorCluster executor;  // the executor's own cluster (Slurm's nodes and queue), if any
  // Set while the executor does not answer: "Slurm's controller has not answered for 42 s
  // (scontrol ping: …)"; `executor` is then its last answer, from `executor_age_s` ago.
  std::string executor_trouble;
  int64_t executor_age_s = 0;
};

// What /metrics shows (DESIGN.md §9), taken in one pass under the lock.
struct MetricsSnapshot {
  std::map<std::string, int> jobs_by_state;  // every state, 0 included
  int queue_depth = 0;                       // jobs waiting for devices (QUEUED, RETRYING)
  int devices_total = 0;
  int devices_allocated = 0;
  struct Job {
    std::string id, name;
    JobState state = JobState::kQueued;
    std::map<std::string, double> train;  // latest "train" record of rank 0
    std::map<std::string, double> eval;   // latest "eval" record
  };
  // Jobs that have not ended, or ended less than the retention ago, with any metrics.
  std::vector<Job> jobs;
};

struct WorkerKey {
  std::string job_id;
  int attempt = 0;
  int rank = 0;
};

class Coordinator {
 public:
  // Opens the store under options.state_dir, recovers jobs (adopting live attempts through
  // `executor`), and starts the control thread. `executor` must outlive the coordinator.
  static absl::StatusOr<std::unique_ptr<Coordinator>> Create(CoordinatorOptions options,
                                                             Executor* executor);
  // Stops the control thread. Running workers are left alone: a new coordinator adopts them.
  ~Coordinator();

  absl::StatusOr<JobView> Submit(const SubmitRequest& request);
  absl::StatusOr<JobView> Get(const std::string& job_id) const;
  // Newest first; `states` empty = all; `limit` 0 = all; `owner` set: that user's jobs only.
  std::vector<JobView> List(const std::vector<JobState>& states, int limit,
                            const std::optional<std::string>& owner = std::nullopt) const;
  absl::StatusOr<JobView> Cancel(const std::string& job_id, bool force);
  ClusterView Cluster() const;
  // `retention_ms`: how long an ended job's training series stay visible.
  MetricsSnapshot Metrics(int64_t retention_ms) const;

  // Stored events with seq > after_seq (at most `limit`), and whether the job has ended
  // (so no event will follow the last one). NotFound for an unknown job.
  struct EventPage {
    std::vector<EventRecord> events;
    bool job_ended = false;
  };
  absl::StatusOr<EventPage> Events(const std::string& job_id, int64_t after_seq, int limit) const;
  // Every stored event of the job, in order (for reports over the whole log).
  absl::StatusOr<std::vector<EventRecord>> AllEvents(const std::string& job_id) const;
  // Calls `wake` (on some internal thread, with no lock held; it must not block) whenever the
  // job gets an event. Returns a handle for Unsubscribe.
  int64_t Subscribe(const std::string& job_id, std::function<void()> wake) {
    return events_.Subscribe(job_id, std::move(wake));
  }
  void Unsubscribe(int64_t handle) { events_.Unsubscribe(handle); }

  // Worker service. FailedPrecondition when the attempt is not the job's live one.
  absl::StatusOr<int> Register(const WorkerKey& worker, int pid);  // → heartbeat interval
  absl::Status Heartbeat(const WorkerKey& worker, int64_t step);
  absl::Status ReportMetrics(const WorkerKey& worker, const std::vector<MetricsRecord>& records);
  absl::Status AnnounceCheckpoint(const WorkerKey& worker, int64_t step, const std::string& path);
  // `run_end`: how rank 0 says the run ended (kUnknown from other ranks).
  absl::Status ReportExit(const WorkerKey& worker, int exit_code, const std::string& message,
                          RunEnd run_end = RunEnd::kUnknown);

  // runs/<job>/ under the state dir (whether or not it exists yet).
  std::string RunDir(const std::string& job_id) const;
  const CoordinatorOptions& options() const { return options_; }
  // For tests and benchmarks: run one control-loop pass now.
  void TickForTest();
  void ForgiveSilenceForTest(int64_t gap_ms) { ForgiveSilence(gap_ms); }
  // How often the control loop found that matbertd itself had not run.
  int ForgivenGapsForTest() const { return forgiven_gaps_.load(); }

 private:
  struct JobEntry {
    JobRecord record;
    std::vector<AttemptRecord> attempts;  // finished ones; the live one is in `live`
    std::unique_ptr<LiveAttempt> live;
    bool fits_unchecked = false;  // submitted while the executor could not be asked
    // Latest metrics records for /metrics (not persisted: refilled by the next report).
    std::map<std::string, double> latest_train, latest_eval;
  };
  // An executor call decided under the lock and made outside it.
  struct SignalOrder {
    AttemptRecord attempt;
    int signal = 0;
  };
  struct StartOrder {
    std::string job_id;
    int attempt = 0;
    JobRecord job;                    // a copy, as it was placed
    std::vector<DeviceInfo> devices;  // what it was placed on
    bool check_fits = false;
  };
  struct StartResult {
    StartOrder order;
    absl::Status fits;  // CheckFits, when asked; INVALID_ARGUMENT: never fits
    Executor::Started started;
    std::string failure;  // the attempt cannot run (no port, no start); "" = started
    ResumePoint resume;
    // The executor did not answer (its fit check, or a start that started nothing): the
    // attempt stays placed and is started once it answers, using no restart.
    std::string retry;
  };
  struct PollResult {
    std::string job_id;
    int attempt = 0;
    std::vector<ProcessStatus> statuses;
  };

  Coordinator(CoordinatorOptions options, Executor* executor, std::unique_ptr<JobStore> store);
  absl::Status Recover();
  void ControlLoop();
  void ExecutorLoop();
  // One pass of each thread's work (TickForTest runs both, in this order).
  void ControlPass();
  void ExecutorPass();
  // Asks an executor marked as not answering whether it does again (every 2 s at most).
  void PingIfUnanswered();
  // Outside the lock: everything a start needs that is slow (checkpoint hashes, the fit
  // check, the executor's Start).
  StartResult Launch(StartOrder order);
  void ApplyStart(StartResult result) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ApplyPoll(const PollResult& result) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Carries out what a transition of the entry's live attempt (attempt_machine.h) says.
  void Apply(JobEntry& entry, AttemptEffects effects) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void PlaceJobs() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The executor's trouble now ("" when it answers); see CoordinatorOptions::executor_stall_ms.
  std::string ExecutorTrouble() const;
  // Bookkeeping of an executor call around `call` (what a stall report names).
  template <typename F>
  auto CallExecutor(const char* what, F call) const -> decltype(call());
  // The executor did not answer (`why`), from `since_ms` (steady clock; 0 = now) until a
  // prompt ping.
  void NoteUnanswered(const std::string& why, int64_t since_ms = 0) const;
  void QueueSignal(const AttemptRecord& attempt, int signal) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void WakeExecutor() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Writes to the store go through journal_ (store_journal.h): queued under the lock, stored
  // by Publish after it is released.
  void SaveAttempt(const AttemptRecord& attempt) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The control loop did not run for `gap_ms` (matbertd stopped, frozen or starved): the ranks'
  // heartbeats of that time went unheard through no fault of theirs, so their silence counts
  // from now.
  void ForgiveSilence(int64_t gap_ms);
  void StartAttempt(JobEntry& entry, const std::vector<int>& devices)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void StopAttempt(JobEntry& entry, const std::string& failure, bool force)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void FinishAttempt(JobEntry& entry) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void SetState(JobEntry& entry, JobState state, const std::string& reason)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void SaveJob(const JobRecord& job) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Queues an event of matbertd's own: stored by the next Publish, kept through an outage.
  void AppendEvent(const std::string& job_id, const std::string& kind, const std::string& payload)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Queues a rank's report (`dedupe_key` makes a resend a no-op); its ticket is for
  // ReportOutcome after the Publish that stores it.
  int64_t AppendReport(const std::string& job_id, const std::string& kind,
                       const std::string& payload, const std::string& dedupe_key)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // OK once the report is stored; UNAVAILABLE (send it again) when the store refused it.
  absl::Status ReportOutcome(int64_t ticket);
  absl::StatusOr<LiveAttempt*> LiveFor(const WorkerKey& worker) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The job's entry; NOT_FOUND naming the id when there is none.
  absl::StatusOr<JobEntry*> FindJob(const std::string& job_id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<const JobEntry*> FindJob(const std::string& job_id) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // `trouble`: ExecutorTrouble(), asked once by the caller.
  JobView ViewOf(const JobEntry& entry, const std::string& trouble) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::string NewJobId() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  int64_t Now() const { return options_.now_ms(); }
  // Releases `lock` (held on mu_), stores what was queued meanwhile (journal_), then wakes
  // the watchers of jobs that got events.
  void Publish(std::unique_lock<std::mutex>& lock);

  const CoordinatorOptions options_;
  Executor* const executor_;
  const std::unique_ptr<JobStore> store_;
  EventLog events_;

  mutable std::mutex mu_;
  std::map<std::string, JobEntry> jobs_ ABSL_GUARDED_BY(mu_);
  // Ids handed out to submissions still being written (outside the lock).
  std::set<std::string> reserved_ids_ ABSL_GUARDED_BY(mu_);
  // Jobs with a live attempt: what the control loop polls (not every job ever submitted).
  std::set<std::string> live_jobs_ ABSL_GUARDED_BY(mu_);
  GangScheduler scheduler_ ABSL_GUARDED_BY(mu_);
  int64_t next_order_ ABSL_GUARDED_BY(mu_) = 1;
  bool shutdown_ ABSL_GUARDED_BY(mu_) = false;
  bool wake_control_ ABSL_GUARDED_BY(mu_) = false;
  bool wake_executor_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<SignalOrder> signals_ ABSL_GUARDED_BY(mu_);      // in the order decided
  std::vector<std::string> start_queue_ ABSL_GUARDED_BY(mu_);  // placed jobs, in order
  StoreJournal journal_;  // thread-safe; its writes happen outside mu_
  std::condition_variable control_cv_, executor_cv_;

  // The executor's health, read without the lock (steady-clock ms; 0 = none).
  mutable std::atomic<int64_t> unanswered_since_ms_{0};  // a call found it not answering then
  mutable std::mutex health_mu_;  // taken after mu_ where both are held, never before
  // Executor calls in flight, by start (steady clock): "poll", "start", …
  mutable std::multimap<int64_t, const char*> in_flight_ ABSL_GUARDED_BY(health_mu_);
  mutable std::string unanswered_why_ ABSL_GUARDED_BY(health_mu_);
  mutable ExecutorCluster last_cluster_ ABSL_GUARDED_BY(health_mu_);
  mutable int64_t last_cluster_ms_ ABSL_GUARDED_BY(health_mu_) = 0;  // steady clock
  int64_t last_ping_ms_ = 0;                                         // executor thread only
  std::atomic<int> forgiven_gaps_{0};

  std::thread control_, executor_thread_;
};

}  // namespace matbert
