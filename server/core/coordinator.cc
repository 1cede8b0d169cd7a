#include "server/core/coordinator.h"

#include <signal.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <random>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/dist_env.h"
#include "common/file_util.h"
#include "common/free_port.h"
#include "common/run_layout.h"
#include "common/status_macros.h"
#include "server/core/event_payload.h"
#include "server/core/rank_plan.h"
#include "server/core/run_files.h"

extern char** environ;

namespace matbert {
namespace {

namespace fs = std::filesystem;

int64_t SystemNowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// The daemon's environment minus what the rank plan sets per rank.
std::vector<std::string> BaseEnvironment() {
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    if (!IsRankEnvEntry(*e)) env.push_back(*e);
  }
  return env;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Coordinator>> Coordinator::Create(CoordinatorOptions options,
                                                                 Executor* executor) {
  if (!options.now_ms) options.now_ms = SystemNowMs;
  if (options.devices.empty()) return absl::InvalidArgumentError("no devices to schedule");
  std::error_code ec;
  fs::create_directories(options.state_dir + "/runs", ec);
  if (ec) return ErrnoStatus(ec.value(), "cannot create state directory", options.state_dir);
  fs::create_directories(options.state_dir + "/data", ec);
  options.state_dir = fs::absolute(options.state_dir).lexically_normal().string();
  ASSIGN_OR_RETURN(std::unique_ptr<JobStore> store,
                   JobStore::Open(options.state_dir + "/matbert.db"));
  std::unique_ptr<Coordinator> c(new Coordinator(std::move(options), executor, std::move(store)));
  RETURN_IF_ERROR(c->Recover());
  if (c->options_.control_thread)
    c->control_ = std::thread([raw = c.get()] { raw->ControlLoop(); });
  return c;
}

Coordinator::Coordinator(CoordinatorOptions options, Executor* executor,
                         std::unique_ptr<JobStore> store)
    : options_(std::move(options)),
      executor_(executor),
      store_(std::move(store)),
      events_(store_.get()),
      scheduler_(static_cast<int>(options_.devices.size())) {}

Coordinator::~Coordinator() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    shutdown_ = true;
  }
  cv_.notify_all();
  if (control_.joinable()) control_.join();
}

std::string Coordinator::RunDir(const std::string& job_id) const {
  return options_.state_dir + "/runs/" + job_id;
}

// Jobs come back as they were: waiting ones queue again in their old order; live attempts
// are adopted — their ranks get a fresh heartbeat window to reconnect, and ranks found dead
// end the attempt, which is then retried from its latest checkpoint.
absl::Status Coordinator::Recover() {
  ASSIGN_OR_RETURN(std::vector<JobRecord> jobs, store_->LoadJobs());
  std::lock_guard<std::mutex> lock(mu_);
  for (JobRecord& job : jobs) {
    next_order_ = std::max(next_order_, job.order + 1);
    JobEntry& entry = jobs_[job.id];
    entry.record = std::move(job);
    ASSIGN_OR_RETURN(std::vector<AttemptRecord> attempts, store_->LoadAttempts(entry.record.id));
    JobRecord& r = entry.record;
    if (r.state == JobState::kQueued || r.state == JobState::kRetrying) {
      entry.attempts = std::move(attempts);
      (void)scheduler_.Enqueue({r.id, r.priority, r.order, r.devices_requested});
      continue;
    }
    if (IsFinal(r.state) || attempts.empty() || attempts.back().number != r.attempts) {
      entry.attempts = std::move(attempts);
      continue;
    }
    auto live = std::make_unique<LiveAttempt>();
    live->record = attempts.back();
    attempts.pop_back();
    entry.attempts = std::move(attempts);
    live->ranks.resize(live->record.workers.size());
    for (RankLive& rank : live->ranks) rank.last_heartbeat_ms = Now();
    if (live->ranks.empty()) {
      // The daemon stopped between recording the attempt and starting its first rank.
      live->failure = "no rank had started when matbertd stopped";
      live->record.interrupted = true;
    } else if (absl::Status adopted = executor_->Adopt(live->record); !adopted.ok()) {
      live->record.interrupted = true;
      StopAttempt(*live, absl::StrCat("cannot adopt the attempt's ranks: ", adopted.message()),
                  /*force=*/true);
    }
    if (absl::Status held = scheduler_.Hold(r.id, r.devices); !held.ok()) {
      live->failure = absl::StrCat("its devices changed across a daemon restart: ", held.message());
      live->record.interrupted = true;
      StopAttempt(*live, live->failure, /*force=*/true);
    }
    if (r.cancel_requested) StopAttempt(*live, "cancelled by a client", false);
    entry.live = std::move(live);
    live_jobs_.insert(r.id);
  }
  return absl::OkStatus();
}

std::string Coordinator::NewJobId() const {
  static const char kAlphabet[] = "abcdefghjkmnpqrstuvwxyz23456789";
  static std::mt19937_64 rng(std::random_device{}());
  for (;;) {
    std::string id(1, kAlphabet[rng() % 23]);  // starts with a letter
    for (int i = 0; i < 5; ++i) id += kAlphabet[rng() % (sizeof(kAlphabet) - 1)];
    if (!jobs_.count(id)) return id;
  }
}

absl::StatusOr<JobView> Coordinator::Submit(const SubmitRequest& request) {
  std::unique_lock<std::mutex> lock(mu_);
  AdmissionLimits limits;
  limits.spec_root = options_.spec_root;
  limits.data_root = options_.state_dir + "/data/";
  limits.num_devices = scheduler_.num_devices();
  limits.device_kind = options_.devices[0].kind;
  limits.queued = static_cast<int>(scheduler_.queue_size());
  limits.max_queued = options_.max_queued;
  limits.default_grace_period_s = options_.grace_period_s;
  limits.max_nodes = options_.max_nodes;
  ASSIGN_OR_RETURN(JobRecord job, Admit(request, NewJobId(), limits));
  RETURN_IF_ERROR(executor_->CheckFits(job.nodes, job.devices_requested / job.nodes));
  job.order = next_order_++;
  job.submit_ms = Now();

  const std::string run_dir = RunDir(job.id);
  std::error_code ec;
  fs::create_directories(run_dir + "/logs", ec);
  if (ec) return ErrnoStatus(ec.value(), "cannot create run directory", run_dir);
  RETURN_IF_ERROR(WriteFileAtomically(RunSpecPath(run_dir), job.spec_toml));
  RETURN_IF_ERROR(store_->InsertJob(job));
  RETURN_IF_ERROR(scheduler_.Enqueue({job.id, job.priority, job.order, job.devices_requested}));
  JobEntry& entry = jobs_[job.id];
  entry.record = job;
  (void)AppendEvent(job.id, kStateEventKind,
                    EncodePayload(StateEvent{JobState::kQueued, 0, "submitted"}));
  JobView view = ViewOf(entry);
  wake_ = true;
  Publish(lock);
  cv_.notify_all();
  return view;
}

JobView Coordinator::ViewOf(const JobEntry& entry) const {
  JobView view;
  view.job = entry.record;
  view.attempts = entry.attempts;
  if (entry.live) view.attempts.push_back(entry.live->record);
  view.queue_position = scheduler_.QueuePosition(entry.record.id);
  view.run_dir = RunDir(entry.record.id);
  return view;
}

absl::StatusOr<const Coordinator::JobEntry*> Coordinator::FindJob(const std::string& job_id) const {
  auto it = jobs_.find(job_id);
  if (it == jobs_.end()) {
    return absl::NotFoundError(absl::StrCat("no job with id \"", job_id, "\""));
  }
  return &it->second;
}

absl::StatusOr<Coordinator::JobEntry*> Coordinator::FindJob(const std::string& job_id) {
  ASSIGN_OR_RETURN(const JobEntry* entry, std::as_const(*this).FindJob(job_id));
  return const_cast<JobEntry*>(entry);
}

absl::StatusOr<JobView> Coordinator::Get(const std::string& job_id) const {
  std::lock_guard<std::mutex> lock(mu_);
  ASSIGN_OR_RETURN(const JobEntry* entry, FindJob(job_id));
  return ViewOf(*entry);
}

std::vector<JobView> Coordinator::List(const std::vector<JobState>& states, int limit,
                                       const std::optional<std::string>& owner) const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<const JobEntry*> entries;
  for (const auto& [id, entry] : jobs_) {
    if (owner && entry.record.owner != *owner) continue;
    if (states.empty() ||
        std::find(states.begin(), states.end(), entry.record.state) != states.end()) {
      entries.push_back(&entry);
    }
  }
  std::sort(entries.begin(), entries.end(),
            [](const JobEntry* a, const JobEntry* b) { return a->record.order > b->record.order; });
  if (limit > 0 && static_cast<int>(entries.size()) > limit) entries.resize(limit);
  std::vector<JobView> views;
  for (const JobEntry* e : entries) views.push_back(ViewOf(*e));
  return views;
}

absl::StatusOr<JobView> Coordinator::Cancel(const std::string& job_id, bool force) {
  std::unique_lock<std::mutex> lock(mu_);
  ASSIGN_OR_RETURN(JobEntry * found, FindJob(job_id));
  JobEntry& entry = *found;
  if (IsFinal(entry.record.state)) {
    return absl::FailedPreconditionError(absl::StrCat("job ", job_id, " has already ended (",
                                                      JobStateName(entry.record.state), ")"));
  }
  entry.record.cancel_requested = true;
  if (scheduler_.Dequeue(job_id)) {
    entry.record.failure = "cancelled by a client before it started";
    entry.record.end_ms = Now();
    SetState(entry, JobState::kCancelled, entry.record.failure);
  } else if (entry.live) {
    SaveJob(entry.record);
    StopAttempt(*entry.live, "cancelled by a client", force);
  }
  JobView view = ViewOf(entry);
  wake_ = true;
  Publish(lock);
  cv_.notify_all();
  return view;
}

ClusterView Coordinator::Cluster() const {
  ClusterView view;
  view.executor = executor_->DescribeCluster();  // may run programs: not under the lock
  std::lock_guard<std::mutex> lock(mu_);
  view.devices = options_.devices;
  for (int d = 0; d < scheduler_.num_devices(); ++d) view.holders.push_back(scheduler_.holder(d));
  for (const QueuedJob& q : scheduler_.Queue()) view.queue.push_back(jobs_.at(q.id).record);
  for (const auto& [id, entry] : jobs_) ++view.jobs_by_state[JobStateName(entry.record.state)];
  return view;
}

MetricsSnapshot Coordinator::Metrics(int64_t retention_ms) const {
  std::lock_guard<std::mutex> lock(mu_);
  MetricsSnapshot m;
  for (int s = static_cast<int>(JobState::kQueued); s <= static_cast<int>(JobState::kCancelled);
       ++s) {
    m.jobs_by_state[JobStateName(static_cast<JobState>(s))] = 0;
  }
  m.queue_depth = static_cast<int>(scheduler_.queue_size());
  m.devices_total = scheduler_.num_devices();
  m.devices_allocated = scheduler_.num_devices() - scheduler_.free_devices();
  const int64_t horizon = Now() - retention_ms;
  for (const auto& [id, entry] : jobs_) {
    const JobRecord& r = entry.record;
    ++m.jobs_by_state[JobStateName(r.state)];
    if (entry.latest_train.empty() && entry.latest_eval.empty()) continue;
    if (IsFinal(r.state) && r.end_ms < horizon) continue;
    m.jobs.push_back({r.id, r.name, r.state, entry.latest_train, entry.latest_eval});
  }
  return m;
}

absl::StatusOr<std::vector<EventRecord>> Coordinator::AllEvents(const std::string& job_id) const {
  std::vector<EventRecord> out;
  for (int64_t seq = 0;;) {
    ASSIGN_OR_RETURN(EventPage page, Events(job_id, seq, 1000));
    if (page.events.empty()) return out;
    seq = page.events.back().seq;
    out.insert(out.end(), page.events.begin(), page.events.end());
  }
}

absl::StatusOr<Coordinator::EventPage> Coordinator::Events(const std::string& job_id,
                                                           int64_t after_seq, int limit) const {
  bool ended;
  {
    std::lock_guard<std::mutex> lock(mu_);
    ASSIGN_OR_RETURN(const JobEntry* entry, FindJob(job_id));
    // Its last events may still wait for room on the disk.
    ended = IsFinal(entry->record.state) && !unstored_events_.contains(job_id);
  }
  // Read after looking at the state: a job that had ended has all its events stored.
  EventPage page;
  ASSIGN_OR_RETURN(page.events, events_.After(job_id, after_seq, limit));
  page.job_ended =
      ended && (page.events.empty() || events_.LastSeq(job_id) == page.events.back().seq);
  return page;
}

void Coordinator::Publish(std::unique_lock<std::mutex>& lock) {
  lock.unlock();
  events_.NotifyPending();
}

absl::Status Coordinator::AppendEvent(const std::string& job_id, const std::string& kind,
                                      const std::string& payload, const std::string& dedupe_key) {
  // Usually nothing waits: the event is stored at once, and no waiting entry is made.
  const bool behind = unstored_events_.contains(job_id);
  absl::Status status =
      absl::ResourceExhaustedError("earlier events of the job are not stored yet");
  if (!behind) {
    status = events_.Append(job_id, Now(), kind, payload, dedupe_key).status();
    if (status.ok()) {
      if (IsFinal(jobs_.at(job_id).record.state)) events_.Close(job_id);
      return status;
    }
    NoteStoreFailure(status);
  }
  if (!dedupe_key.empty()) {
    // A rank's report: refused, so that the rank keeps it and sends it again.
    return absl::UnavailableError(absl::StrCat("matbertd cannot store this report now (",
                                               status.message(), "); send it again"));
  }
  // matbertd's own event: kept in order, and stored by the control loop once there is room.
  unstored_events_[job_id].push_back({Now(), kind, payload});
  return absl::OkStatus();
}

void Coordinator::SaveJob(const JobRecord& job) {
  if (absl::Status s = store_->UpdateJob(job); !s.ok()) {
    NoteStoreFailure(s);
    unsaved_jobs_.insert(job.id);
  }
}

void Coordinator::SaveAttempt(const AttemptRecord& attempt) {
  if (absl::Status s = store_->PutAttempt(attempt); !s.ok()) {
    NoteStoreFailure(s);
    unsaved_jobs_.insert(attempt.job_id);
  }
}

void Coordinator::NoteStoreFailure(const absl::Status& status) {
  if (store_failing_) return;  // said once per outage
  store_failing_ = true;
  if (absl::IsResourceExhausted(status)) {
    spdlog::error(
        "the filesystem of {} is full ({}): job states and events wait in memory and are "
        "stored once there is room; ranks' reports are refused until then; free space there "
        "(runs/*/checkpoints hold the large files)",
        options_.state_dir, std::string(status.message()));
  } else {
    spdlog::error("cannot write the job database: {}; retrying", status.ToString());
  }
}

void Coordinator::StoreWhatWaits() {
  if (unsaved_jobs_.empty() && unstored_events_.empty()) return;
  for (auto it = unsaved_jobs_.begin(); it != unsaved_jobs_.end();) {
    const JobEntry& entry = jobs_.at(*it);
    absl::Status s = store_->UpdateJob(entry.record);
    for (const AttemptRecord& a : entry.attempts) {
      if (s.ok()) s = store_->PutAttempt(a);
    }
    if (s.ok() && entry.live) s = store_->PutAttempt(entry.live->record);
    if (!s.ok()) return;
    it = unsaved_jobs_.erase(it);
  }
  for (auto it = unstored_events_.begin(); it != unstored_events_.end();) {
    std::deque<UnstoredEvent>& waiting = it->second;
    while (!waiting.empty()) {
      const UnstoredEvent& e = waiting.front();
      if (!events_.Append(it->first, e.time_ms, e.kind, e.payload, "").ok()) return;
      waiting.pop_front();
    }
    if (IsFinal(jobs_.at(it->first).record.state)) events_.Close(it->first);
    it = unstored_events_.erase(it);
  }
  spdlog::info("the job database is writable again; every waiting state and event is stored");
  store_failing_ = false;
}

void Coordinator::SetState(JobEntry& entry, JobState state, const std::string& reason) {
  entry.record.state = state;
  SaveJob(entry.record);
  const int attempt = entry.live ? entry.live->record.number : entry.record.attempts;
  // The job's life at info level, failures at warn: what an operator greps the log for.
  spdlog::log(state == JobState::kFailed ? spdlog::level::warn : spdlog::level::info,
              "job {} ({}) {}{}{}", entry.record.id, entry.record.name, JobStateName(state),
              attempt > 0 ? absl::StrCat(", attempt ", attempt) : "",
              reason.empty() ? "" : absl::StrCat(": ", reason));
  (void)AppendEvent(entry.record.id, kStateEventKind,
                    EncodePayload(StateEvent{state, attempt, reason}));
}

// ---- attempts ------------------------------------------------------------------------

void Coordinator::StartAttempt(JobEntry& entry, const std::vector<int>& devices) {
  JobRecord& job = entry.record;
  auto live = std::make_unique<LiveAttempt>();
  live->record.job_id = job.id;
  live->record.number = ++job.attempts;
  live->record.start_ms = Now();
  live->record.state = JobState::kStarting;
  job.devices = devices;
  if (job.start_ms == 0) {
    job.start_ms = live->record.start_ms;
    if (options_.on_scheduled) options_.on_scheduled((job.start_ms - job.submit_ms) / 1000.0);
  }

  RankPlanInput input;
  input.worker_path = options_.worker_path;
  input.run_dir = RunDir(job.id);
  for (int d : devices) input.devices.push_back(options_.devices[d]);
  input.attempt = live->record.number;
  // Resume from the newest checkpoint that is still what was written (SHA256SUMS); damaged
  // newer ones are set aside and named in the attempt's start.
  ResumePoint resume;
  if (job.kind == "train") resume = NewestIntactCheckpoint(input.run_dir);
  input.resume_step = resume.step;
  for (const std::string& skipped : resume.skipped) {
    spdlog::warn("job {}: not resuming from checkpoint {}", job.id, skipped);
  }
  input.base_env = BaseEnvironment();
  input.master_addr = options_.master_addr;
  input.coordinator.address = options_.coordinator_address;
  if (options_.rank_credential) input.coordinator.token = options_.rank_credential(job.id);
  input.coordinator.tls_ca = options_.tls_ca_file;
  std::string failure;
  if (absl::StatusOr<int> port = PickFreeLoopbackPort(); port.ok()) {
    input.master_port = *port;
  } else {
    failure = std::string(port.status().message());
  }
  const AttemptPlan plan = PlanAttempt(job, input);
  live->record.resumed_from_step = plan.resumed_from_step;
  if (failure.empty()) {
    Executor::Started started = executor_->Start(plan);
    live->record.workers = std::move(started.workers);
    live->record.executor_ref = std::move(started.executor_ref);
    if (!started.status.ok()) failure = std::string(started.status.message());
  }
  live->ranks.resize(live->record.workers.size());
  for (RankLive& rank : live->ranks) rank.last_heartbeat_ms = Now();
  SaveAttempt(live->record);
  entry.live = std::move(live);
  live_jobs_.insert(job.id);
  SetState(
      entry, JobState::kStarting,
      absl::StrCat(
          "attempt ", entry.live->record.number, " on ",
          absl::StrJoin(devices, ",",
                        [this](std::string* out, int d) { out->append(options_.devices[d].id); }),
          entry.live->record.resumed_from_step > 0
              ? absl::StrCat(", resuming from step ", entry.live->record.resumed_from_step)
              : "",
          resume.skipped.empty() ? ""
                                 : absl::StrCat(" (skipped corrupt checkpoint ",
                                                absl::StrJoin(resume.skipped, "; "), ")")));
  if (!failure.empty()) StopAttempt(*entry.live, failure, /*force=*/true);
}

void Coordinator::StopAttempt(LiveAttempt& live, const std::string& failure, bool force) {
  if (live.failure.empty()) live.failure = failure;
  if (!live.stopping) {
    live.stopping = true;
    live.kill_at_ms = Now() + int64_t{1000} * jobs_.at(live.record.job_id).record.grace_period_s;
    executor_->Signal(live.record, SIGTERM);
  }
  if (force) live.kill_at_ms = Now();
}

void Coordinator::PollAttempt(JobEntry& entry) {
  LiveAttempt& live = *entry.live;
  const int64_t now = Now();
  const std::vector<ProcessStatus> statuses = executor_->Poll(live.record);
  std::vector<RankEnd> ended;  // ranks found ended in this pass
  std::vector<RankPulse> running;
  for (size_t i = 0; i < live.ranks.size(); ++i) {
    RankLive& rank = live.ranks[i];
    if (rank.ended) continue;
    const int number = live.record.workers[i].rank;
    if (statuses[i].kind == ProcessStatus::kWaiting) {
      // Held by the executor's own queue: silence counts from when the rank starts.
      rank.last_heartbeat_ms = now;
      if (statuses[i].why != live.waiting && !live.stopping) {
        live.waiting = statuses[i].why;
        SetState(entry, JobState::kStarting,
                 absl::StrCat("attempt ", live.record.number, " waits: ", live.waiting));
      }
    }
    if (statuses[i].kind == ProcessStatus::kRunning ||
        statuses[i].kind == ProcessStatus::kWaiting) {
      running.push_back({number, rank.registered, rank.last_heartbeat_ms});
      continue;
    }
    rank.ended = true;
    ended.push_back({number, statuses[i], rank.reported_exit, rank.reported_code,
                     rank.reported_message, rank.reported_at_ms});
  }
  if (std::optional<AttemptFailure> failed = FailureOf(ended, live.record.run_end);
      failed && !live.stopping) {
    live.record.interrupted = failed->interrupted;
    StopAttempt(live, failed->reason, false);
  }
  if (std::optional<std::string> silent = SilenceOf(running, now, options_.heartbeat_timeout_s);
      silent && !live.stopping) {
    StopAttempt(live, *silent, /*force=*/true);
  }
  if (live.stopping && !live.killed && now >= live.kill_at_ms) {
    live.killed = true;
    executor_->Signal(live.record, SIGKILL);
  }
  if (running.empty()) FinishAttempt(entry);
}

void Coordinator::FinishAttempt(JobEntry& entry) {
  std::unique_ptr<LiveAttempt> live = std::move(entry.live);
  live_jobs_.erase(entry.record.id);
  JobRecord& job = entry.record;
  // Some process of the attempt may still linger (a grandchild, a rank we never saw start).
  executor_->Signal(live->record, SIGKILL);
  scheduler_.Release(job.id);
  job.devices.clear();
  live->record.end_ms = Now();
  const Verdict outcome =
      AttemptOutcome(job.cancel_requested, live->failure, live->record.run_end, job.step);
  live->record.state = outcome.state;
  live->record.reason = outcome.reason;
  SaveAttempt(live->record);
  entry.attempts.push_back(live->record);

  const Verdict next = AfterAttempt(entry.attempts, job.max_restarts);
  if (next.state == JobState::kRetrying) {
    job.failure = outcome.reason;
    SetState(entry, JobState::kRetrying, next.reason);
    (void)scheduler_.Enqueue({job.id, job.priority, job.order, job.devices_requested});
    return;
  }
  job.end_ms = live->record.end_ms;
  job.failure = next.state == JobState::kSucceeded ? "" : next.reason;
  SetState(entry, next.state, next.reason);
}

absl::StatusOr<Coordinator::LiveAttempt*> Coordinator::LiveFor(const WorkerKey& worker) {
  ASSIGN_OR_RETURN(JobEntry * entry, FindJob(worker.job_id));
  LiveAttempt* live = entry->live.get();
  if (live == nullptr || live->record.number != worker.attempt) {
    return absl::FailedPreconditionError(absl::StrCat("attempt ", worker.attempt, " of job ",
                                                      worker.job_id, " is not running; stop"));
  }
  if (worker.rank < 0 || worker.rank >= static_cast<int>(live->ranks.size())) {
    return absl::InvalidArgumentError(absl::StrCat("rank ", worker.rank, " is not in attempt ",
                                                   worker.attempt, " of job ", worker.job_id));
  }
  return live;
}

absl::StatusOr<int> Coordinator::Register(const WorkerKey& worker, int pid) {
  std::unique_lock<std::mutex> lock(mu_);
  ASSIGN_OR_RETURN(LiveAttempt * live, LiveFor(worker));
  RankLive& rank = live->ranks[worker.rank];
  // Executors that know their ranks' pids (the local one) check them.
  const int known_pid = live->record.workers[worker.rank].pid;
  if (pid > 0 && known_pid > 0 && pid != known_pid) {
    return absl::FailedPreconditionError(absl::StrCat(
        "rank ", worker.rank, " of job ", worker.job_id, " is pid ", known_pid, ", not ", pid));
  }
  rank.registered = true;
  rank.last_heartbeat_ms = Now();
  JobEntry& entry = jobs_.at(worker.job_id);
  const bool all = std::all_of(live->ranks.begin(), live->ranks.end(),
                               [](const RankLive& r) { return r.registered; });
  if (all && !live->stopping && entry.record.state == JobState::kStarting) {
    live->record.state = JobState::kRunning;
    SaveAttempt(live->record);
    SetState(entry, JobState::kRunning,
             live->ranks.size() == 1
                 ? std::string("the rank registered")
                 : absl::StrCat("all ", live->ranks.size(), " ranks registered"));
  }
  Publish(lock);
  return options_.heartbeat_interval_ms;
}

absl::Status Coordinator::Heartbeat(const WorkerKey& worker, int64_t step) {
  bool registered;
  {
    std::lock_guard<std::mutex> lock(mu_);
    ASSIGN_OR_RETURN(LiveAttempt * live, LiveFor(worker));
    RankLive& rank = live->ranks[worker.rank];
    rank.last_heartbeat_ms = Now();
    registered = rank.registered;
    JobRecord& job = jobs_.at(worker.job_id).record;
    if (worker.rank == 0) job.step = std::max(job.step, step);
  }
  // A rank of an adopted attempt heartbeats without registering again.
  if (!registered) return Register(worker, 0).status();
  return absl::OkStatus();
}

absl::Status Coordinator::ReportMetrics(const WorkerKey& worker,
                                        const std::vector<MetricsRecord>& records) {
  std::unique_lock<std::mutex> lock(mu_);
  RETURN_IF_ERROR(LiveFor(worker).status());
  JobEntry& entry = jobs_.at(worker.job_id);
  JobRecord& job = entry.record;
  absl::Status stored = absl::OkStatus();
  for (const MetricsRecord& record : records) {
    if (absl::Status s = AppendEvent(
            job.id, kMetricsEventKind, EncodePayload(MetricsEvent{worker.attempt, record}),
            absl::StrCat("a", worker.attempt, "/", record.kind, "/", record.step));
        !s.ok()) {
      stored = s;  // the rank sends them all again; those stored are dropped as duplicates
      break;
    }
    if (record.kind == "train") {
      entry.latest_train = record.values;
      entry.latest_train["step"] = static_cast<double>(record.step);
      if (auto it = record.values.find("loss"); it != record.values.end()) {
        job.loss = it->second;
        job.has_loss = true;
      }
    } else if (record.kind == "eval") {
      entry.latest_eval = record.values;
      entry.latest_eval["step"] = static_cast<double>(record.step);
    }
    if (record.kind != "eval") job.step = std::max(job.step, record.step);
  }
  SaveJob(job);
  Publish(lock);
  return stored;
}

absl::Status Coordinator::AnnounceCheckpoint(const WorkerKey& worker, int64_t step,
                                             const std::string& path) {
  std::unique_lock<std::mutex> lock(mu_);
  RETURN_IF_ERROR(LiveFor(worker).status());
  // Paths are reported relative to the run directory.
  std::string relative = path;
  const std::string prefix = RunDir(worker.job_id) + "/";
  if (absl::StartsWith(relative, prefix)) relative = relative.substr(prefix.size());
  absl::Status stored = AppendEvent(worker.job_id, kCheckpointEventKind,
                                    EncodePayload(CheckpointEvent{worker.attempt, step, relative}),
                                    absl::StrCat("a", worker.attempt, "/checkpoint/", step));
  Publish(lock);
  return stored;
}

absl::Status Coordinator::ReportExit(const WorkerKey& worker, int exit_code,
                                     const std::string& message, RunEnd run_end) {
  std::lock_guard<std::mutex> lock(mu_);
  ASSIGN_OR_RETURN(LiveAttempt * live, LiveFor(worker));
  RankLive& rank = live->ranks[worker.rank];
  rank.reported_exit = true;
  rank.reported_code = exit_code;
  rank.reported_message = message;
  rank.reported_at_ms = Now();
  if (worker.rank == 0 && run_end != RunEnd::kUnknown) {
    // Stored at once: a restarted daemon that finds the rank gone must still know the run
    // finished.
    live->record.run_end = run_end;
    SaveAttempt(live->record);
  }
  return absl::OkStatus();
}

// ---- control loop -----------------------------------------------------------------------

void Coordinator::TickForTest() { Tick(); }

void Coordinator::ControlLoop() {
  std::unique_lock<std::mutex> lock(mu_);
  // The monotonic clock keeps counting while the process is stopped (SIGSTOP, a frozen VM).
  auto last_tick = std::chrono::steady_clock::now();
  while (!shutdown_) {
    cv_.wait_for(lock, std::chrono::milliseconds(options_.tick_ms),
                 [this] { return wake_ || shutdown_; });
    if (shutdown_) break;
    wake_ = false;
    lock.unlock();
    const auto now = std::chrono::steady_clock::now();
    const int64_t gap_ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(now - last_tick).count();
    last_tick = now;
    if (gap_ms > options_.heartbeat_interval_ms + options_.tick_ms) ForgiveSilence(gap_ms);
    Tick();
    lock.lock();
  }
}

void Coordinator::ForgiveSilence(int64_t gap_ms) {
  std::lock_guard<std::mutex> lock(mu_);
  spdlog::warn(
      "matbertd did not run for {} ms (stopped or starved); the heartbeats ranks sent meanwhile "
      "went unheard, so their silence counts from now",
      gap_ms);
  const int64_t now = Now();
  for (const std::string& id : live_jobs_) {
    LiveAttempt* live = jobs_.at(id).live.get();
    if (live == nullptr) continue;
    for (RankLive& rank : live->ranks) rank.last_heartbeat_ms = now;
  }
}

void Coordinator::Tick() {
  std::unique_lock<std::mutex> lock(mu_);
  StoreWhatWaits();
  // PollAttempt may finish an attempt, which leaves live_jobs_: iterate over a copy.
  const std::vector<std::string> live(live_jobs_.begin(), live_jobs_.end());
  for (const std::string& id : live) PollAttempt(jobs_.at(id));
  for (const Placement& placement : scheduler_.Schedule()) {
    StartAttempt(jobs_.at(placement.job_id), placement.devices);
  }
  Publish(lock);
}

}  // namespace matbert
