#include "server/core/coordinator.h"

#include <signal.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <random>
#include <tuple>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/dist_env.h"
#include "common/file_util.h"
#include "common/free_port.h"
#include "common/job_spec.h"
#include "common/run_layout.h"
#include "common/status_macros.h"
#include "nlohmann/json.hpp"
#include "server/core/run_files.h"

extern char** environ;

namespace matbert {
namespace {

using Json = nlohmann::json;
namespace fs = std::filesystem;

int64_t SystemNowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// How likely a rank's unclean end caused its attempt's failure rather than followed from a
// peer's: killed from outside first; then failed by itself (its own exit code or message);
// then ended unseen; last, killed by SIGPIPE, the mark of writing to a peer that had gone.
int CauseClass(const ProcessStatus& status) {
  switch (status.kind) {
    case ProcessStatus::kSignaled:
      return status.code == SIGPIPE ? 3 : 0;
    case ProcessStatus::kExited:
      return 1;
    default:
      return 2;
  }
}

// The daemon's environment minus what the launcher sets per rank.
std::vector<std::string> BaseEnvironment() {
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    if (!IsRankEnvEntry(*e)) env.push_back(*e);
  }
  return env;
}

Json StatePayload(JobState state, int attempt, const std::string& reason) {
  return {{"state", JobStateName(state)}, {"attempt", attempt}, {"reason", reason}};
}

}  // namespace

absl::StatusOr<std::unique_ptr<Coordinator>> Coordinator::Create(CoordinatorOptions options,
                                                                 ProcessLauncher* launcher) {
  if (!options.now_ms) options.now_ms = SystemNowMs;
  if (options.devices.empty()) return absl::InvalidArgumentError("no devices to schedule");
  std::error_code ec;
  fs::create_directories(options.state_dir + "/runs", ec);
  if (ec) return ErrnoStatus(ec.value(), "cannot create state directory", options.state_dir);
  fs::create_directories(options.state_dir + "/data", ec);
  options.state_dir = fs::absolute(options.state_dir).lexically_normal().string();
  ASSIGN_OR_RETURN(std::unique_ptr<JobStore> store,
                   JobStore::Open(options.state_dir + "/matbert.db"));
  std::unique_ptr<Coordinator> c(new Coordinator(std::move(options), launcher, std::move(store)));
  RETURN_IF_ERROR(c->Recover());
  if (c->options_.control_thread)
    c->control_ = std::thread([raw = c.get()] { raw->ControlLoop(); });
  return c;
}

Coordinator::Coordinator(CoordinatorOptions options, ProcessLauncher* launcher,
                         std::unique_ptr<JobStore> store)
    : options_(std::move(options)),
      launcher_(launcher),
      store_(std::move(store)),
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
    for (const WorkerProcess& w : live->record.workers) {
      RankLive rank;
      rank.process = w;
      rank.last_heartbeat_ms = Now();
      live->ranks.push_back(rank);
    }
    if (!live->ranks.empty()) {
      live->group = live->ranks[0].process.pid;
    } else {
      // The daemon stopped between recording the attempt and starting its first rank.
      live->failure = "no rank had started when matbertd stopped";
      live->record.interrupted = true;
    }
    // Did rank 0 already report the end of a finished run?
    auto events = store_->EventsAfter(r.id, 0, 1 << 30);
    if (events.ok()) {
      for (const EventRecord& e : *events) {
        if (e.kind != "metrics") continue;
        Json p = Json::parse(e.payload, nullptr, false);
        if (p.is_object() && p.value("attempt", 0) == live->record.number &&
            p.value("kind", "") == "summary") {
          live->run_end = p["values"].value("stopped", 0.0) == 0 ? LiveAttempt::RunEnd::kCompleted
                                                                 : LiveAttempt::RunEnd::kStopped;
        }
      }
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
  std::vector<Override> overrides;
  for (const std::string& text : request.overrides) {
    ASSIGN_OR_RETURN(Override o, ParseSetOverride(text));
    overrides.push_back(std::move(o));
  }
  const std::string source = request.source_name.empty() ? "spec" : request.source_name;
  ASSIGN_OR_RETURN(JobSpec spec, ParseJobSpec(request.spec_toml, source, options_.spec_root,
                                              overrides, /*confine_arch=*/true));
  // Paths in a spec from a client stay inside the daemon's data directory.
  const std::string data_root = options_.state_dir + "/data/";
  for (std::string* path : {&spec.matrix.dataset, &spec.generate.output_dir}) {
    if (path->empty()) continue;
    if (!IsConfinedPath(*path)) {
      return absl::InvalidArgumentError(absl::StrCat(
          source, ": ", path == &spec.matrix.dataset ? "matrix.dataset" : "generate.output_dir",
          " must be a relative path inside the server's data directory (no \"..\"), got \"", *path,
          "\""));
    }
    *path = data_root + *path;
  }
  if (request.grace_period_s < 0) {
    return absl::InvalidArgumentError("grace_period_seconds must be >= 0");
  }

  std::unique_lock<std::mutex> lock(mu_);
  if (static_cast<int>(scheduler_.queue_size()) >= options_.max_queued) {
    return absl::ResourceExhaustedError(absl::StrCat("the queue is full: ", scheduler_.queue_size(),
                                                     " jobs wait (--max-queued ",
                                                     options_.max_queued, "); try again later"));
  }
  if (spec.job.gpus > scheduler_.num_devices()) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": job.gpus must be between 1 and ", scheduler_.num_devices(),
                     " (the ", options_.devices[0].kind == "gpu" ? "GPUs" : "CPU slots",
                     " of this server), got ", spec.job.gpus));
  }
  JobRecord job;
  job.id = NewJobId();
  if (spec.job.kind == "generate" && spec.generate.output_dir.empty()) {
    spec.generate.output_dir = data_root + job.id;
  }
  job.name = spec.job.name;
  job.kind = spec.job.kind;
  job.priority = spec.job.priority;
  job.devices_requested = spec.job.gpus;
  job.max_restarts = spec.job.max_restarts;
  job.grace_period_s =
      request.grace_period_s > 0 ? request.grace_period_s : options_.grace_period_s;
  job.spec_toml = spec.ToToml();
  job.order = next_order_++;
  job.submit_ms = Now();
  job.total_steps = job.kind == "generate" ? spec.generate.n_samples : spec.training.steps;

  const std::string run_dir = RunDir(job.id);
  std::error_code ec;
  fs::create_directories(run_dir + "/logs", ec);
  if (ec) return ErrnoStatus(ec.value(), "cannot create run directory", run_dir);
  RETURN_IF_ERROR(WriteFileAtomically(RunSpecPath(run_dir), job.spec_toml));
  RETURN_IF_ERROR(store_->InsertJob(job));
  RETURN_IF_ERROR(scheduler_.Enqueue({job.id, job.priority, job.order, job.devices_requested}));
  JobEntry& entry = jobs_[job.id];
  entry.record = job;
  AppendEvent(job.id, "state", StatePayload(JobState::kQueued, 0, "submitted").dump());
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

std::vector<JobView> Coordinator::List(const std::vector<JobState>& states, int limit) const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<const JobEntry*> entries;
  for (const auto& [id, entry] : jobs_) {
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
  std::lock_guard<std::mutex> lock(mu_);
  ClusterView view;
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
    ended = IsFinal(entry->record.state);
    const std::deque<EventRecord>& recent = entry->recent;
    if (!ended && !recent.empty() && recent.front().seq <= after_seq + 1) {
      EventPage page;
      for (auto e = recent.begin() + std::max<int64_t>(0, after_seq + 1 - recent.front().seq);
           e != recent.end() && static_cast<int>(page.events.size()) < limit; ++e) {
        page.events.push_back(*e);
      }
      return page;
    }
  }
  // Read after looking at the state: a job that had ended has all its events stored.
  ASSIGN_OR_RETURN(std::vector<EventRecord> events, store_->EventsAfter(job_id, after_seq, limit));
  EventPage page;
  page.job_ended = ended && (events.empty() || store_->LastSeq(job_id) == events.back().seq);
  page.events = std::move(events);
  return page;
}

int64_t Coordinator::Subscribe(const std::string& job_id, std::function<void()> wake) {
  std::lock_guard<std::mutex> lock(watch_mu_);
  const int64_t handle = next_handle_++;
  watchers_[handle] = {job_id, std::move(wake)};
  return handle;
}

void Coordinator::Unsubscribe(int64_t handle) {
  std::lock_guard<std::mutex> lock(watch_mu_);
  watchers_.erase(handle);
}

void Coordinator::Publish(std::unique_lock<std::mutex>& lock) {
  std::vector<std::string> jobs = std::move(pending_notify_);
  pending_notify_.clear();
  lock.unlock();
  std::sort(jobs.begin(), jobs.end());
  jobs.erase(std::unique(jobs.begin(), jobs.end()), jobs.end());
  for (const std::string& id : jobs) NotifyWatchers(id);
}

void Coordinator::NotifyWatchers(const std::string& job_id) {
  std::vector<std::function<void()>> wakes;
  {
    std::lock_guard<std::mutex> lock(watch_mu_);
    for (const auto& [handle, watcher] : watchers_) {
      if (watcher.first == job_id) wakes.push_back(watcher.second);
    }
  }
  for (const auto& wake : wakes) wake();
}

void Coordinator::AppendEvent(const std::string& job_id, const std::string& kind,
                              const std::string& payload, const std::string& dedupe_key) {
  const int64_t now = Now();
  auto seq = store_->AppendEvent(job_id, now, kind, payload, dedupe_key);
  if (!seq.ok()) {
    spdlog::error("cannot store an event of job {}: {}", job_id, seq.status().ToString());
    return;
  }
  if (*seq == 0) return;  // a resent duplicate
  JobEntry& entry = jobs_.at(job_id);
  if (entry.recent.empty() || entry.recent.back().seq == *seq - 1) {
    entry.recent.push_back({*seq, now, kind, payload});
    if (entry.recent.size() > kRecentEvents) entry.recent.pop_front();
  } else {
    entry.recent.clear();  // a gap (cannot happen with one writer); let SQLite answer
  }
  if (IsFinal(entry.record.state)) entry.recent.clear();
  pending_notify_.push_back(job_id);
}

void Coordinator::SaveJob(const JobRecord& job) {
  if (absl::Status s = store_->UpdateJob(job); !s.ok()) {
    spdlog::error("cannot store job {}: {}", job.id, s.ToString());
  }
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
  AppendEvent(entry.record.id, "state", StatePayload(state, attempt, reason).dump());
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

  const std::string run_dir = RunDir(job.id);
  std::vector<std::string> args;
  int world = static_cast<int>(devices.size());
  if (job.kind == "generate") {
    // One process with a generator thread per slot: the output is byte-identical for any
    // thread count, so the slots are used without splitting the dataset across processes.
    args = {options_.worker_path,  "generate",   "--config", RunSpecPath(run_dir), "--threads",
            std::to_string(world), "--overwrite"};
    world = 1;
  } else {
    args = {options_.worker_path, "train", "--config", RunSpecPath(run_dir), "--run-dir", run_dir};
    const std::vector<CheckpointDir> checkpoints = ListCheckpointDirs(run_dir);
    if (!checkpoints.empty()) {
      args.insert(args.end(), {"--checkpoint.load_step", "-1"});
      live->record.resumed_from_step = checkpoints.back().step;
    }
  }
  std::vector<std::string> visible;
  for (int d : devices) {
    if (options_.devices[d].kind == "gpu")
      visible.push_back(std::to_string(options_.devices[d].index));
  }
  absl::StatusOr<int> port = PickFreeLoopbackPort();
  std::string failure;
  if (!port.ok()) failure = std::string(port.status().message());
  const std::vector<std::string> base_env = BaseEnvironment();
  for (int rank = 0; rank < world && failure.empty(); ++rank) {
    SpawnRequest request;
    request.argv = args;
    request.env = base_env;
    RankEnv env;
    env.dist = {.rank = rank,
                .local_rank = rank,
                .world_size = world,
                .local_world_size = world,
                .master_addr = options_.master_addr,
                .master_port = *port};
    env.cuda_visible_devices = absl::StrJoin(visible, ",");
    env.coordinator = {.address = options_.coordinator_address,
                       .job_id = job.id,
                       .attempt = live->record.number,
                       .token = options_.token,
                       .tls_ca = options_.tls_ca_file};
    for (std::string& entry : RankEnvEntries(env)) request.env.push_back(std::move(entry));
    request.log_path = RunLogPath(run_dir, rank);
    request.cwd = run_dir;
    request.process_group = live->group;
    request.rank = rank;
    // Attempts append to the same log; a header line tells them apart.
    (void)AppendToFile(request.log_path,
                       absl::StrCat("=== matbertd: job ", job.id, " attempt ", live->record.number,
                                    ", rank ", rank, " of ", world, " ===\n"));
    absl::StatusOr<WorkerProcess> process = launcher_->Spawn(request);
    if (!process.ok()) {
      failure = absl::StrCat("cannot start rank ", rank, ": ", process.status().message());
      break;
    }
    if (rank == 0) live->group = process->pid;
    RankLive r;
    r.process = *process;
    r.last_heartbeat_ms = Now();
    live->ranks.push_back(r);
    live->record.workers.push_back(*process);
  }
  (void)store_->PutAttempt(live->record);
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
              : ""));
  if (!failure.empty()) StopAttempt(*entry.live, failure, /*force=*/true);
}

void Coordinator::StopAttempt(LiveAttempt& live, const std::string& failure, bool force) {
  if (live.failure.empty()) live.failure = failure;
  if (!live.stopping) {
    live.stopping = true;
    live.kill_at_ms = Now() + int64_t{1000} * jobs_.at(live.record.job_id).record.grace_period_s;
    if (live.group > 0) launcher_->SignalGroup(live.group, SIGTERM);
  }
  if (force) live.kill_at_ms = Now();
}

void Coordinator::PollAttempt(JobEntry& entry) {
  LiveAttempt& live = *entry.live;
  const int64_t now = Now();
  std::vector<RankLive*> failed;  // ranks found ended unclean in this pass
  bool all_ended = true;
  for (RankLive& rank : live.ranks) {
    if (!rank.ended) {
      ProcessStatus status = launcher_->Poll(rank.process);
      if (status.kind != ProcessStatus::kRunning) {
        rank.ended = true;
        rank.status = status;
        // Processes adopted after a restart are not our children: trust what they reported.
        if (status.kind == ProcessStatus::kGone && rank.reported_exit) {
          rank.status = {ProcessStatus::kExited, rank.reported_code};
        }
        if (!(rank.status.kind == ProcessStatus::kExited && rank.status.code == 0)) {
          failed.push_back(&rank);
        }
      }
    }
    all_ended = all_ended && rank.ended;
  }
  // When one rank dies its peers soon fail too, often within the same pass: name the likeliest
  // cause, not the lowest rank.
  auto order = [](const RankLive* r) {
    return std::make_tuple(CauseClass(r->status), r->reported_exit ? r->reported_at_ms : INT64_MAX,
                           r->process.rank);
  };
  std::sort(failed.begin(), failed.end(),
            [&](const RankLive* a, const RankLive* b) { return order(a) < order(b); });
  for (RankLive* rank : failed) {
    if (live.stopping) break;
    const bool gone = rank->status.kind == ProcessStatus::kGone;
    std::string cause =
        absl::StrCat("rank ", rank->process.rank, " ",
                     gone ? "ended while matbertd was down" : rank->status.Describe());
    if (gone) {
      // Unless rank 0 had already reported a finished run, this attempt was lost to the
      // daemon's restart, not to the job.
      live.record.interrupted = live.run_end != LiveAttempt::RunEnd::kCompleted;
      if (live.run_end == LiveAttempt::RunEnd::kCompleted) continue;
    }
    if (!rank->reported_message.empty()) absl::StrAppend(&cause, ": ", rank->reported_message);
    StopAttempt(live, cause, false);
  }
  for (const RankLive& rank : live.ranks) {
    if (live.stopping) break;
    if (!rank.ended &&
        now - rank.last_heartbeat_ms > int64_t{1000} * options_.heartbeat_timeout_s) {
      StopAttempt(
          live,
          absl::StrCat("rank ", rank.process.rank,
                       rank.registered ? " sent no heartbeat for " : " did not register within ",
                       options_.heartbeat_timeout_s, " s"),
          /*force=*/true);
    }
  }
  if (live.stopping && !live.killed && now >= live.kill_at_ms) {
    live.killed = true;
    if (live.group > 0) launcher_->SignalGroup(live.group, SIGKILL);
  }
  if (all_ended) FinishAttempt(entry);
}

void Coordinator::FinishAttempt(JobEntry& entry) {
  std::unique_ptr<LiveAttempt> live = std::move(entry.live);
  live_jobs_.erase(entry.record.id);
  JobRecord& job = entry.record;
  // Some rank of the group may still linger (a grandchild, a rank we never saw start).
  if (live->group > 0) launcher_->SignalGroup(live->group, SIGKILL);
  scheduler_.Release(job.id);
  job.devices.clear();
  live->record.end_ms = Now();

  JobState outcome;
  std::string reason;
  if (job.cancel_requested) {
    outcome = JobState::kCancelled;
    reason = "cancelled by a client";
  } else if (!live->failure.empty()) {
    outcome = JobState::kFailed;
    reason = live->failure;
  } else if (live->run_end == LiveAttempt::RunEnd::kStopped) {
    outcome = JobState::kFailed;
    reason = absl::StrCat("stopped by a signal from outside matbertd after step ", job.step);
  } else {
    outcome = JobState::kSucceeded;
    reason = "all ranks exited with code 0";
  }
  live->record.state = outcome;
  live->record.reason = reason;
  (void)store_->PutAttempt(live->record);
  entry.attempts.push_back(live->record);

  if (outcome == JobState::kFailed) {
    const int restarts_used = static_cast<int>(std::count_if(
        entry.attempts.begin(), entry.attempts.end(),
        [](const AttemptRecord& a) { return a.state == JobState::kFailed && !a.interrupted; }));
    if (live->record.interrupted || restarts_used <= job.max_restarts) {
      job.failure = reason;
      SetState(entry, JobState::kRetrying,
               live->record.interrupted
                   ? absl::StrCat(reason, "; retrying (not counted as a restart)")
                   : absl::StrCat(reason, "; retry ", restarts_used, " of ", job.max_restarts));
      (void)scheduler_.Enqueue({job.id, job.priority, job.order, job.devices_requested});
      return;
    }
  }
  job.end_ms = live->record.end_ms;
  job.failure = outcome == JobState::kSucceeded ? "" : reason;
  SetState(entry, outcome, reason);
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
  if (pid > 0 && pid != rank.process.pid) {
    return absl::FailedPreconditionError(absl::StrCat("rank ", worker.rank, " of job ",
                                                      worker.job_id, " is pid ", rank.process.pid,
                                                      ", not ", pid));
  }
  rank.registered = true;
  rank.last_heartbeat_ms = Now();
  JobEntry& entry = jobs_.at(worker.job_id);
  const bool all = std::all_of(live->ranks.begin(), live->ranks.end(),
                               [](const RankLive& r) { return r.registered; });
  if (all && !live->stopping && entry.record.state == JobState::kStarting) {
    live->record.state = JobState::kRunning;
    (void)store_->PutAttempt(live->record);
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
  ASSIGN_OR_RETURN(LiveAttempt * live, LiveFor(worker));
  JobEntry& entry = jobs_.at(worker.job_id);
  JobRecord& job = entry.record;
  for (const MetricsRecord& record : records) {
    Json values = Json::object();
    for (const auto& [key, value] : record.values) values[key] = value;
    Json payload = {{"attempt", worker.attempt},
                    {"kind", record.kind},
                    {"step", record.step},
                    {"values", values}};
    AppendEvent(job.id, "metrics", payload.dump(),
                absl::StrCat("a", worker.attempt, "/", record.kind, "/", record.step));
    if (record.kind == "train") {
      entry.latest_train = record.values;
      entry.latest_train["step"] = static_cast<double>(record.step);
      job.step = std::max(job.step, record.step);
      if (auto it = record.values.find("loss"); it != record.values.end()) {
        job.loss = it->second;
        job.has_loss = true;
      }
    } else if (record.kind == "eval") {
      entry.latest_eval = record.values;
      entry.latest_eval["step"] = static_cast<double>(record.step);
    } else if (record.kind == "summary") {
      auto it = record.values.find("stopped");
      live->run_end = it != record.values.end() && it->second != 0
                          ? LiveAttempt::RunEnd::kStopped
                          : LiveAttempt::RunEnd::kCompleted;
      job.step = std::max(job.step, record.step);
    } else if (record.kind == "generate") {
      job.step = std::max(job.step, record.step);
    }
  }
  SaveJob(job);
  Publish(lock);
  return absl::OkStatus();
}

absl::Status Coordinator::AnnounceCheckpoint(const WorkerKey& worker, int64_t step,
                                             const std::string& path) {
  std::unique_lock<std::mutex> lock(mu_);
  ASSIGN_OR_RETURN(LiveAttempt * live, LiveFor(worker));
  (void)live;
  // Paths are reported relative to the run directory.
  std::string relative = path;
  const std::string prefix = RunDir(worker.job_id) + "/";
  if (absl::StartsWith(relative, prefix)) relative = relative.substr(prefix.size());
  Json payload = {{"attempt", worker.attempt}, {"step", step}, {"path", relative}};
  AppendEvent(worker.job_id, "checkpoint", payload.dump(),
              absl::StrCat("a", worker.attempt, "/checkpoint/", step));
  Publish(lock);
  return absl::OkStatus();
}

absl::Status Coordinator::ReportExit(const WorkerKey& worker, int exit_code,
                                     const std::string& message) {
  std::lock_guard<std::mutex> lock(mu_);
  ASSIGN_OR_RETURN(LiveAttempt * live, LiveFor(worker));
  RankLive& rank = live->ranks[worker.rank];
  rank.reported_exit = true;
  rank.reported_code = exit_code;
  rank.reported_message = message;
  rank.reported_at_ms = Now();
  return absl::OkStatus();
}

// ---- control loop -----------------------------------------------------------------------

void Coordinator::TickForTest() { Tick(); }

void Coordinator::ControlLoop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!shutdown_) {
    cv_.wait_for(lock, std::chrono::milliseconds(options_.tick_ms),
                 [this] { return wake_ || shutdown_; });
    if (shutdown_) break;
    wake_ = false;
    lock.unlock();
    Tick();
    lock.lock();
  }
}

void Coordinator::Tick() {
  std::unique_lock<std::mutex> lock(mu_);
  // PollAttempt may finish an attempt, which leaves live_jobs_: iterate over a copy.
  const std::vector<std::string> live(live_jobs_.begin(), live_jobs_.end());
  for (const std::string& id : live) PollAttempt(jobs_.at(id));
  for (const Placement& placement : scheduler_.Schedule()) {
    StartAttempt(jobs_.at(placement.job_id), placement.devices);
  }
  Publish(lock);
}

}  // namespace matbert
