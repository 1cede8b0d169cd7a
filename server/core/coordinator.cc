#include "server/core/coordinator.h"

#include <signal.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <random>
#include <utility>

#include "absl/cleanup/cleanup.h"
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

// For the executor's health: how long its calls take, whatever `now_ms` a test injects.
int64_t SteadyNowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// How often the executor thread asks an executor that does not answer whether it does again.
constexpr int64_t kPingIntervalMs = 2000;

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
  if (c->options_.control_thread) {
    c->control_ = std::thread([raw = c.get()] { raw->ControlLoop(); });
    c->executor_thread_ = std::thread([raw = c.get()] { raw->ExecutorLoop(); });
  }
  return c;
}

Coordinator::Coordinator(CoordinatorOptions options, Executor* executor,
                         std::unique_ptr<JobStore> store)
    : options_(std::move(options)),
      executor_(executor),
      store_(std::move(store)),
      events_(store_.get()),
      scheduler_(static_cast<int>(options_.devices.size())),
      journal_(store_.get(), &events_, options_.state_dir) {}

Coordinator::~Coordinator() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    shutdown_ = true;
  }
  control_cv_.notify_all();
  executor_cv_.notify_all();
  if (control_.joinable()) control_.join();
  // A call in flight ends first (each executor call is bounded); queued signals are left to
  // the next daemon, which adopts the attempts.
  if (executor_thread_.joinable()) executor_thread_.join();
  journal_.Flush();  // what the last passes decided
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
    entry.live = std::make_unique<LiveAttempt>();
    LiveAttempt* live = entry.live.get();
    live_jobs_.insert(r.id);
    live->record = attempts.back();
    live->grace_period_s = r.grace_period_s;
    live->devices = r.devices;
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
      StopAttempt(entry, absl::StrCat("cannot adopt the attempt's ranks: ", adopted.message()),
                  /*force=*/true);
    }
    if (absl::Status held = scheduler_.Hold(r.id, r.devices); !held.ok()) {
      live->failure = absl::StrCat("its devices changed across a daemon restart: ", held.message());
      live->record.interrupted = true;
      StopAttempt(entry, live->failure, /*force=*/true);
    }
    if (r.cancel_requested) StopAttempt(entry, "cancelled by a client", false);
  }
  return absl::OkStatus();
}

std::string Coordinator::NewJobId() const {
  static const char kAlphabet[] = "abcdefghjkmnpqrstuvwxyz23456789";
  static std::mt19937_64 rng(std::random_device{}());
  for (;;) {
    std::string id(1, kAlphabet[rng() % 23]);  // starts with a letter
    for (int i = 0; i < 5; ++i) id += kAlphabet[rng() % (sizeof(kAlphabet) - 1)];
    if (!jobs_.count(id) && !reserved_ids_.count(id)) return id;
  }
}

absl::StatusOr<JobView> Coordinator::Submit(const SubmitRequest& request) {
  JobRecord job;
  {
    std::lock_guard<std::mutex> lock(mu_);
    AdmissionLimits limits;
    limits.spec_root = options_.spec_root;
    limits.data_root = options_.state_dir + "/data/";
    limits.num_devices = scheduler_.num_devices();
    limits.device_kind = options_.devices[0].kind;
    limits.queued = static_cast<int>(scheduler_.queue_size());
    limits.max_queued = options_.max_queued;
    limits.default_grace_period_s = options_.grace_period_s;
    limits.max_nodes = options_.max_nodes;
    ASSIGN_OR_RETURN(job, Admit(request, NewJobId(), limits));
    reserved_ids_.insert(job.id);
  }
  absl::Cleanup unreserve = [this, id = job.id] {
    std::lock_guard<std::mutex> lock(mu_);
    reserved_ids_.erase(id);
  };
  // Outside the lock: the executor's fit check may run a program (sbatch --test-only), and
  // the run directory is written with fsync. An executor that does not answer is not asked:
  // the job is checked before it starts instead.
  bool fits_unchecked = !ExecutorTrouble().empty();
  if (!fits_unchecked) {
    absl::Status fits = CallExecutor("fit check", [&] {
      return executor_->CheckFits(job.nodes, job.devices_requested / job.nodes);
    });
    if (absl::IsUnavailable(fits)) {
      NoteUnanswered(std::string(fits.message()));
      fits_unchecked = true;
    } else if (!fits.ok()) {
      return fits;
    }
  }
  const std::string run_dir = RunDir(job.id);
  std::error_code ec;
  fs::create_directories(run_dir + "/logs", ec);
  if (ec) return ErrnoStatus(ec.value(), "cannot create run directory", run_dir);
  RETURN_IF_ERROR(WriteFileAtomically(RunSpecPath(run_dir), job.spec_toml));

  // The job is stored before anyone hears of it: the caller's acknowledgement is the
  // promise that a crash will not lose it.
  int64_t insert;
  {
    std::lock_guard<std::mutex> lock(mu_);
    job.order = next_order_++;
    job.submit_ms = Now();
    job.reason = "submitted";
    insert = journal_.InsertJob(job);
  }
  journal_.Flush();
  RETURN_IF_ERROR(journal_.Outcome(insert));

  std::unique_lock<std::mutex> lock(mu_);
  RETURN_IF_ERROR(scheduler_.Enqueue({job.id, job.priority, job.order, job.devices_requested}));
  JobEntry& entry = jobs_[job.id];
  entry.record = job;
  entry.fits_unchecked = fits_unchecked;
  AppendEvent(job.id, kStateEventKind,
              EncodePayload(StateEvent{JobState::kQueued, 0, "submitted"}));
  JobView view = ViewOf(entry, ExecutorTrouble());
  wake_control_ = true;
  control_cv_.notify_all();
  Publish(lock);
  return view;
}

JobView Coordinator::ViewOf(const JobEntry& entry, const std::string& trouble) const {
  JobView view;
  view.job = entry.record;
  view.attempts = entry.attempts;
  if (entry.live) {
    view.attempts.push_back(entry.live->record);
    view.nodes = entry.live->where;
  }
  view.queue_position = scheduler_.QueuePosition(entry.record.id);
  view.run_dir = RunDir(entry.record.id);
  // What a waiting job waits for, when it is not its turn or devices but the executor.
  if (view.queue_position > 0 && !trouble.empty()) {
    view.job.reason = absl::StrCat("waits for ", trouble);
  }
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
  return ViewOf(*entry, ExecutorTrouble());
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
  const std::string trouble = ExecutorTrouble();  // once, not per job
  for (const JobEntry* e : entries) views.push_back(ViewOf(*e, trouble));
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
    // While its start is in flight the signals wait for its ranks (ApplyStart).
    StopAttempt(entry, "cancelled by a client", force);
  }
  JobView view = ViewOf(entry, ExecutorTrouble());
  wake_control_ = true;
  control_cv_.notify_all();
  WakeExecutor();
  Publish(lock);
  return view;
}

ClusterView Coordinator::Cluster() const {
  ClusterView view;
  // May run programs: not under the lock, and not at all while the executor does not answer
  // (its last answer is shown, with its age).
  view.executor_trouble = ExecutorTrouble();
  if (view.executor_trouble.empty()) {
    ExecutorCluster fresh =
        CallExecutor("cluster description", [this] { return executor_->DescribeCluster(); });
    std::lock_guard<std::mutex> health(health_mu_);
    last_cluster_ = fresh;
    last_cluster_ms_ = SteadyNowMs();
    view.executor = std::move(fresh);
  } else {
    std::lock_guard<std::mutex> health(health_mu_);
    view.executor = last_cluster_;
    if (last_cluster_ms_ > 0) view.executor_age_s = (SteadyNowMs() - last_cluster_ms_) / 1000;
  }
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
  for (int s = static_cast<int>(JobState::kQueued); s <= static_cast<int>(JobState::kPending);
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
    ended = IsFinal(entry->record.state) && !journal_.EventsWait(job_id);
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
  journal_.Flush();
  events_.NotifyPending();
}

void Coordinator::AppendEvent(const std::string& job_id, const std::string& kind,
                              const std::string& payload) {
  (void)journal_.AppendEvent(job_id, Now(), kind, payload, "",
                             IsFinal(jobs_.at(job_id).record.state));
}

int64_t Coordinator::AppendReport(const std::string& job_id, const std::string& kind,
                                  const std::string& payload, const std::string& dedupe_key) {
  return journal_.AppendEvent(job_id, Now(), kind, payload, dedupe_key,
                              IsFinal(jobs_.at(job_id).record.state));
}

absl::Status Coordinator::ReportOutcome(int64_t ticket) {
  absl::Status stored = journal_.Outcome(ticket);
  if (stored.ok()) return stored;
  // The rank keeps its report and sends it again; one already stored is a no-op then.
  return absl::UnavailableError(absl::StrCat("matbertd cannot store this report now (",
                                             stored.message(), "); send it again"));
}

void Coordinator::SaveJob(const JobRecord& job) { journal_.SaveJob(job); }

void Coordinator::SaveAttempt(const AttemptRecord& attempt) { journal_.SaveAttempt(attempt); }

void Coordinator::SetState(JobEntry& entry, JobState state, const std::string& reason) {
  entry.record.state = state;
  entry.record.reason = reason;
  SaveJob(entry.record);
  const int attempt = entry.live ? entry.live->record.number : entry.record.attempts;
  // The job's life at info level, failures at warn: what an operator greps the log for.
  spdlog::log(state == JobState::kFailed ? spdlog::level::warn : spdlog::level::info,
              "job {} ({}) {}{}{}", entry.record.id, entry.record.name, JobStateName(state),
              attempt > 0 ? absl::StrCat(", attempt ", attempt) : "",
              reason.empty() ? "" : absl::StrCat(": ", reason));
  AppendEvent(entry.record.id, kStateEventKind, EncodePayload(StateEvent{state, attempt, reason}));
}

// ---- attempts ------------------------------------------------------------------------
//
// An attempt is placed under the lock (StartAttempt: devices held, the attempt recorded, a
// start queued), started outside it by the executor thread (Launch: the newest intact
// checkpoint, the fit check if submission could not make it, the executor's Start), and
// its result applied under the lock again (ApplyStart). Polls go the same way (ApplyPoll);
// signals are decided under the lock and sent by the executor thread in the order decided.

void Coordinator::StartAttempt(JobEntry& entry, const std::vector<int>& devices) {
  JobRecord& job = entry.record;
  auto live = std::make_unique<LiveAttempt>();
  live->record.job_id = job.id;
  live->record.number = ++job.attempts;
  live->record.start_ms = Now();
  live->record.state = JobState::kStarting;
  live->launching = true;
  live->grace_period_s = job.grace_period_s;
  live->devices = devices;
  job.devices = devices;
  // STARTING from now, without an event: the event comes with the start's outcome, which
  // says where it resumes from.
  job.state = JobState::kStarting;
  job.reason = absl::StrCat("attempt ", live->record.number, " is being started");
  if (job.start_ms == 0) {
    job.start_ms = live->record.start_ms;
    if (options_.on_scheduled) options_.on_scheduled((job.start_ms - job.submit_ms) / 1000.0);
  }
  // Recorded before anything starts: a daemon that stops meanwhile finds an attempt with no
  // ranks, which it retries without using a restart.
  SaveAttempt(live->record);
  SaveJob(job);
  entry.live = std::move(live);
  live_jobs_.insert(job.id);
  start_queue_.push_back(job.id);
  WakeExecutor();
}

Coordinator::StartResult Coordinator::Launch(StartOrder order) {
  StartResult result;
  const JobRecord& job = order.job;
  if (order.check_fits) {
    result.fits = CallExecutor("fit check", [&] {
      return executor_->CheckFits(job.nodes, job.devices_requested / job.nodes);
    });
    if (absl::IsUnavailable(result.fits)) {
      NoteUnanswered(std::string(result.fits.message()));
      result.retry = std::string(result.fits.message());
      result.order = std::move(order);
      return result;
    }
    if (!result.fits.ok()) {
      result.failure = std::string(result.fits.message());
      result.order = std::move(order);
      return result;
    }
  }
  RankPlanInput input;
  input.worker_path = options_.worker_path;
  input.run_dir = RunDir(job.id);
  input.devices = order.devices;
  input.attempt = order.attempt;
  // Resume from the newest checkpoint that is still what was written (SHA256SUMS); damaged
  // newer ones are set aside and named in the attempt's start. Hashing: outside the lock.
  if (job.kind == "train") result.resume = NewestIntactCheckpoint(input.run_dir);
  input.resume_step = result.resume.step;
  for (const std::string& skipped : result.resume.skipped) {
    spdlog::warn("job {}: not resuming from checkpoint {}", job.id, skipped);
  }
  input.base_env = BaseEnvironment();
  input.master_addr = options_.master_addr;
  input.coordinator.address = options_.coordinator_address;
  if (options_.rank_credential) input.coordinator.token = options_.rank_credential(job.id);
  input.coordinator.tls_ca = options_.tls_ca_file;
  if (absl::StatusOr<int> port = PickFreeLoopbackPort(); port.ok()) {
    input.master_port = *port;
  } else {
    result.failure = std::string(port.status().message());
  }
  const AttemptPlan plan = PlanAttempt(job, input);
  if (result.failure.empty()) {
    result.started = CallExecutor("start", [&] { return executor_->Start(plan); });
    if (absl::IsUnavailable(result.started.status) && result.started.workers.empty()) {
      NoteUnanswered(std::string(result.started.status.message()));
      result.retry = std::string(result.started.status.message());
    } else if (!result.started.status.ok()) {
      result.failure = std::string(result.started.status.message());
    }
  }
  result.resume.step = plan.resumed_from_step;  // what the ranks were told
  result.order = std::move(order);
  return result;
}

void Coordinator::ApplyStart(StartResult result) {
  auto it = jobs_.find(result.order.job_id);
  if (it == jobs_.end() || !it->second.live ||
      it->second.live->record.number != result.order.attempt) {
    return;
  }
  JobEntry& entry = it->second;
  LiveAttempt& live = *entry.live;
  if (!result.retry.empty()) {
    // Placed it stays; started once the executor answers (a stop meanwhile drops it).
    live.start_taken = false;
    start_queue_.insert(start_queue_.begin(), entry.record.id);
    entry.record.reason = absl::StrCat("attempt ", live.record.number, " waits for ",
                                       executor_->Name(), ": ", result.retry);
    return;
  }
  if (result.order.check_fits && result.fits.ok()) entry.fits_unchecked = false;
  StartOutcome outcome;
  outcome.workers = std::move(result.started.workers);
  outcome.executor_ref = std::move(result.started.executor_ref);
  outcome.resumed_from_step = result.resume.step;
  outcome.failure = result.failure;
  outcome.never_fits =
      !result.failure.empty() && !result.fits.ok() && !absl::IsUnavailable(result.fits);
  const std::string starting = absl::StrCat(
      "attempt ", live.record.number, " on ",
      absl::StrJoin(live.devices, ",",
                    [this](std::string* out, int d) { out->append(options_.devices[d].id); }),
      result.resume.step > 0 ? absl::StrCat(", resuming from step ", result.resume.step) : "",
      result.resume.skipped.empty()
          ? ""
          : absl::StrCat(" (skipped corrupt checkpoint ",
                         absl::StrJoin(result.resume.skipped, "; "), ")"));
  Apply(entry, Started(live, std::move(outcome), starting, Now()));
}

void Coordinator::Apply(JobEntry& entry, AttemptEffects effects) {
  LiveAttempt& live = *entry.live;
  for (int signal : effects.signals) QueueSignal(live.record, signal);
  if (effects.save) SaveAttempt(live.record);
  if (!effects.warning.empty()) {
    spdlog::warn("job {} attempt {}: {}", entry.record.id, live.record.number, effects.warning);
  }
  if (effects.state) {
    SetState(entry, *effects.state, effects.reason);
  } else if (!effects.reason.empty()) {
    entry.record.reason = effects.reason;
  }
  if (effects.finished) FinishAttempt(entry);
}

void Coordinator::QueueSignal(const AttemptRecord& attempt, int signal) {
  if (attempt.workers.empty() && attempt.executor_ref.empty()) return;
  signals_.push_back({attempt, signal});
  WakeExecutor();
}

void Coordinator::WakeExecutor() {
  wake_executor_ = true;
  executor_cv_.notify_all();
}

void Coordinator::StopAttempt(JobEntry& entry, const std::string& failure, bool force) {
  Apply(entry, Stop(*entry.live, failure, force, Now()));
}

void Coordinator::ApplyPoll(const PollResult& result) {
  auto it = jobs_.find(result.job_id);
  if (it == jobs_.end() || !it->second.live || it->second.live->record.number != result.attempt) {
    return;
  }
  JobEntry& entry = it->second;
  Apply(entry, Polled(*entry.live, result.statuses, entry.record.state, executor_->Name(), Now()));
}

void Coordinator::FinishAttempt(JobEntry& entry) {
  std::unique_ptr<LiveAttempt> live = std::move(entry.live);
  live_jobs_.erase(entry.record.id);
  JobRecord& job = entry.record;
  // Some process of the attempt may still linger (a grandchild, a rank we never saw start).
  QueueSignal(live->record, SIGKILL);
  scheduler_.Release(job.id);
  job.devices.clear();
  live->record.end_ms = Now();
  const Verdict outcome =
      AttemptOutcome(job.cancel_requested, live->failure, live->record.run_end, job.step);
  live->record.state = outcome.state;
  live->record.reason = outcome.reason;
  SaveAttempt(live->record);
  entry.attempts.push_back(live->record);

  const Verdict next = live->never_fits ? outcome : AfterAttempt(entry.attempts, job.max_restarts);
  if (next.state == JobState::kRetrying) {
    job.failure = outcome.reason;
    SetState(entry, JobState::kRetrying, next.reason);
    (void)scheduler_.Enqueue({job.id, job.priority, job.order, job.devices_requested});
    wake_control_ = true;
    return;
  }
  job.end_ms = live->record.end_ms;
  job.failure = next.state == JobState::kSucceeded ? "" : next.reason;
  SetState(entry, next.state, next.reason);
  wake_control_ = true;  // devices came free
}

absl::StatusOr<LiveAttempt*> Coordinator::LiveFor(const WorkerKey& worker) {
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
  // Executors that know their ranks' pids (the local one) check them.
  const int known_pid = live->record.workers[worker.rank].pid;
  if (pid > 0 && known_pid > 0 && pid != known_pid) {
    return absl::FailedPreconditionError(absl::StrCat(
        "rank ", worker.rank, " of job ", worker.job_id, " is pid ", known_pid, ", not ", pid));
  }
  JobEntry& entry = jobs_.at(worker.job_id);
  Apply(entry, Registered(*live, worker.rank, entry.record.state, Now()));
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
  std::vector<int64_t> tickets;
  for (const MetricsRecord& record : records) {
    tickets.push_back(
        AppendReport(job.id, kMetricsEventKind, EncodePayload(MetricsEvent{worker.attempt, record}),
                     absl::StrCat("a", worker.attempt, "/", record.kind, "/", record.step)));
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
  Publish(lock);  // stores them, outside the lock
  // Any refused: the rank sends them all again, and those stored are dropped as duplicates.
  absl::Status stored = absl::OkStatus();
  for (int64_t ticket : tickets) {
    if (absl::Status s = ReportOutcome(ticket); !s.ok() && stored.ok()) stored = s;
  }
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
  const int64_t ticket =
      AppendReport(worker.job_id, kCheckpointEventKind,
                   EncodePayload(CheckpointEvent{worker.attempt, step, relative}),
                   absl::StrCat("a", worker.attempt, "/checkpoint/", step));
  Publish(lock);
  return ReportOutcome(ticket);
}

absl::Status Coordinator::ReportExit(const WorkerKey& worker, int exit_code,
                                     const std::string& message, RunEnd run_end) {
  std::unique_lock<std::mutex> lock(mu_);
  ASSIGN_OR_RETURN(LiveAttempt * live, LiveFor(worker));
  RankLive& rank = live->ranks[worker.rank];
  rank.reported_exit = true;
  rank.reported_code = exit_code;
  rank.reported_message = message;
  rank.reported_at_ms = Now();
  int64_t ticket = 0;
  if (worker.rank == 0 && run_end != RunEnd::kUnknown) {
    // Stored before the rank hears OK: a restarted daemon that finds the rank gone must still
    // know the run finished. Refused, the rank sends it again.
    live->record.run_end = run_end;
    ticket = journal_.SaveAttempt(live->record, /*ticketed=*/true);
  }
  Publish(lock);
  return ticket == 0 ? absl::OkStatus() : ReportOutcome(ticket);
}

// ---- control loop -----------------------------------------------------------------------

void Coordinator::TickForTest() {
  ControlPass();
  ExecutorPass();
}

void Coordinator::ControlLoop() {
  std::unique_lock<std::mutex> lock(mu_);
  // The monotonic clock keeps counting while the process is stopped (SIGSTOP, a frozen VM).
  // Only the wait is measured: a wait of tick_ms that took far longer means matbertd itself
  // did not run, never that an executor call or a store write was slow.
  while (!shutdown_) {
    const auto before = std::chrono::steady_clock::now();
    control_cv_.wait_for(lock, std::chrono::milliseconds(options_.tick_ms),
                         [this] { return wake_control_ || shutdown_; });
    if (shutdown_) break;
    wake_control_ = false;
    lock.unlock();
    const int64_t gap_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                               std::chrono::steady_clock::now() - before)
                               .count();
    if (gap_ms > options_.heartbeat_interval_ms + options_.tick_ms) ForgiveSilence(gap_ms);
    ControlPass();
    lock.lock();
  }
}

void Coordinator::ExecutorLoop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!shutdown_) {
    executor_cv_.wait_for(lock, std::chrono::milliseconds(options_.tick_ms),
                          [this] { return wake_executor_ || shutdown_; });
    if (shutdown_) break;
    wake_executor_ = false;
    lock.unlock();
    ExecutorPass();
    lock.lock();
  }
}

void Coordinator::ForgiveSilence(int64_t gap_ms) {
  std::lock_guard<std::mutex> lock(mu_);
  ++forgiven_gaps_;
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

void Coordinator::PlaceJobs() {
  // Nothing starts while the executor does not answer: a start it might carry out later,
  // unseen, would run the job twice. The jobs wait QUEUED with the trouble as their reason.
  if (!ExecutorTrouble().empty()) return;
  for (const Placement& placement : scheduler_.Schedule()) {
    StartAttempt(jobs_.at(placement.job_id), placement.devices);
  }
}

void Coordinator::ControlPass() {
  std::unique_lock<std::mutex> lock(mu_);
  // Publish stores what was decided here, and retries what a refusing store left queued.
  for (const std::string& id : live_jobs_) {
    JobEntry& entry = jobs_.at(id);
    Apply(entry, Timers(*entry.live, Now(), options_.heartbeat_timeout_s));
  }
  PlaceJobs();
  Publish(lock);
}

std::string Coordinator::ExecutorTrouble() const {
  const int64_t now = SteadyNowMs();
  std::lock_guard<std::mutex> health(health_mu_);
  // The oldest call in flight, whichever thread made it.
  if (!in_flight_.empty() && now - in_flight_.begin()->first > options_.executor_stall_ms) {
    return absl::StrCat(executor_->Name(), ", which has not answered for ",
                        (now - in_flight_.begin()->first) / 1000, " s (",
                        in_flight_.begin()->second, ")");
  }
  if (const int64_t unanswered = unanswered_since_ms_.load(); unanswered > 0) {
    return absl::StrCat(executor_->Name(), ", which has not answered for ",
                        (now - unanswered) / 1000, " s (", unanswered_why_, ")");
  }
  return "";
}

template <typename F>
auto Coordinator::CallExecutor(const char* what, F call) const -> decltype(call()) {
  // Calls from several threads (fit checks, cluster descriptions) may overlap: the oldest
  // one in flight is the one that says how long the executor has not answered.
  const int64_t started = SteadyNowMs();
  std::multimap<int64_t, const char*>::iterator mine;
  {
    std::lock_guard<std::mutex> health(health_mu_);
    mine = in_flight_.emplace(started, what);
  }
  absl::Cleanup done = [&] {
    {
      std::lock_guard<std::mutex> health(health_mu_);
      in_flight_.erase(mine);
    }
    if (SteadyNowMs() - started > options_.executor_stall_ms) {
      // Slow enough to count as not answering until a ping says otherwise.
      NoteUnanswered(absl::StrCat("a ", what, " took ", (SteadyNowMs() - started) / 1000, " s"),
                     started);
    }
  };
  return call();
}

void Coordinator::NoteUnanswered(const std::string& why, int64_t since_ms) const {
  std::lock_guard<std::mutex> health(health_mu_);
  if (unanswered_since_ms_.load() != 0) return;
  unanswered_since_ms_.store(since_ms > 0 ? since_ms : SteadyNowMs());
  unanswered_why_ = why;
  spdlog::warn("{} is slow or does not answer: {}; no attempt starts until it answers a ping",
               executor_->Name(), why);
}

void Coordinator::PingIfUnanswered() {
  const int64_t unanswered = unanswered_since_ms_.load();
  if (unanswered == 0 || SteadyNowMs() - last_ping_ms_ < kPingIntervalMs) return;
  last_ping_ms_ = SteadyNowMs();
  absl::Status ping = CallExecutor("ping", [this] { return executor_->Ping(); });
  // A ping that took longer than a stall is no answer either.
  const bool prompt = SteadyNowMs() - last_ping_ms_ <= options_.executor_stall_ms;
  std::lock_guard<std::mutex> health(health_mu_);
  if (ping.ok() && prompt && unanswered_since_ms_.load() == unanswered) {
    spdlog::info("{} answers again (after {} s)", executor_->Name(),
                 (SteadyNowMs() - unanswered) / 1000);
    unanswered_since_ms_.store(0);
    unanswered_why_.clear();
  } else if (!ping.ok()) {
    unanswered_why_ = std::string(ping.message());
  }
}

void Coordinator::ExecutorPass() {
  // An executor that did not answer is asked again now and then; until it answers nothing
  // is started (a start it carried out late, unseen, would run the job twice) and nothing
  // is polled (each poll would wait out its timeout): signals still go.
  PingIfUnanswered();
  const bool unanswered = unanswered_since_ms_.load() > 0;
  std::vector<SignalOrder> signals;
  std::vector<StartOrder> starts;
  std::vector<PollResult> polls;  // statuses filled outside the lock
  std::vector<AttemptRecord> to_poll;
  {
    std::lock_guard<std::mutex> lock(mu_);
    signals.swap(signals_);
    // Starts in the order they were placed; one stopped before it was taken is dropped.
    std::vector<std::string> placed, later;
    placed.swap(start_queue_);
    const bool troubled = !ExecutorTrouble().empty();
    for (const std::string& id : placed) {
      JobEntry& entry = jobs_.at(id);
      if (!entry.live || !entry.live->launching || entry.live->start_taken) continue;
      LiveAttempt& live = *entry.live;
      if (live.stopping) {
        live.launching = false;
        FinishAttempt(entry);
        continue;
      }
      if (troubled) {
        later.push_back(id);
        continue;
      }
      live.start_taken = true;
      StartOrder order{id, live.record.number, entry.record, {}, entry.fits_unchecked};
      for (int d : live.devices) order.devices.push_back(options_.devices[d]);
      starts.push_back(std::move(order));
    }
    start_queue_.insert(start_queue_.begin(), later.begin(), later.end());
    for (const std::string& id : live_jobs_) {
      const LiveAttempt& live = *jobs_.at(id).live;
      if (live.launching || unanswered) continue;
      polls.push_back({id, live.record.number, {}});
      to_poll.push_back(live.record);
    }
  }
  for (const SignalOrder& s : signals) {
    CallExecutor("signal", [&] {
      executor_->Signal(s.attempt, s.signal);
      return 0;
    });
  }
  // Each start checks again: the one before may have found the executor not answering.
  std::vector<StartResult> started;
  std::vector<StartOrder> not_started;
  for (StartOrder& order : starts) {
    if (!ExecutorTrouble().empty()) {
      not_started.push_back(std::move(order));
      continue;
    }
    started.push_back(Launch(std::move(order)));
  }
  for (size_t i = 0; i < polls.size(); ++i) {
    polls[i].statuses = CallExecutor("poll", [&] { return executor_->Poll(to_poll[i]); });
  }
  std::unique_lock<std::mutex> lock(mu_);
  for (StartResult& result : started) ApplyStart(std::move(result));
  for (auto it = not_started.rbegin(); it != not_started.rend(); ++it) {
    auto entry = jobs_.find(it->job_id);
    if (entry == jobs_.end() || !entry->second.live ||
        entry->second.live->record.number != it->attempt) {
      continue;
    }
    entry->second.live->start_taken = false;
    start_queue_.insert(start_queue_.begin(), it->job_id);
  }
  for (const PollResult& result : polls) ApplyPoll(result);
  // Attempts that ended freed devices: place what waits at once, not a tick later.
  PlaceJobs();
  if (wake_control_) control_cv_.notify_all();
  Publish(lock);
}

}  // namespace matbert
