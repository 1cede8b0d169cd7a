#include "server/core/attempt_machine.h"

#include <signal.h>

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "server/core/attempt_policy.h"

namespace matbert {

void AttemptEffects::Merge(AttemptEffects later) {
  signals.insert(signals.end(), later.signals.begin(), later.signals.end());
  if (later.state) state = later.state;
  if (!later.reason.empty()) reason = std::move(later.reason);
  if (!later.warning.empty()) warning = std::move(later.warning);
  save = save || later.save;
  finished = finished || later.finished;
}

AttemptEffects Stop(LiveAttempt& live, const std::string& failure, bool force, int64_t now_ms) {
  AttemptEffects effects;
  if (live.failure.empty()) live.failure = failure;
  if (live.launching) {
    live.stopping = true;
    live.killed = live.killed || force;
    return effects;
  }
  // An attempt with no process (nothing started) has nothing to signal.
  const bool processes = !live.record.workers.empty() || !live.record.executor_ref.empty();
  if (!live.stopping) {
    live.stopping = true;
    live.kill_at_ms = now_ms + int64_t{1000} * live.grace_period_s;
    if (processes) effects.signals.push_back(SIGTERM);
  }
  if (force && !live.killed) {
    live.killed = true;
    if (processes) effects.signals.push_back(SIGKILL);
  }
  return effects;
}

AttemptEffects Started(LiveAttempt& live, StartOutcome outcome, const std::string& starting_reason,
                       int64_t now_ms) {
  AttemptEffects effects;
  live.launching = false;
  live.record.resumed_from_step = std::max<int64_t>(0, outcome.resumed_from_step);
  live.record.workers = std::move(outcome.workers);
  live.record.executor_ref = std::move(outcome.executor_ref);
  live.ranks.assign(live.record.workers.size(), RankLive{});
  for (RankLive& rank : live.ranks) rank.last_heartbeat_ms = now_ms;
  live.never_fits = outcome.never_fits;
  effects.save = true;
  effects.state = JobState::kStarting;
  effects.reason = starting_reason;
  // A stop decided while the start was in flight was only remembered: it goes now.
  const bool was_stopping = live.stopping, was_killed = live.killed;
  live.stopping = live.killed = false;
  if (!outcome.failure.empty()) {
    effects.Merge(Stop(live, outcome.failure, /*force=*/true, now_ms));
  } else if (was_stopping) {
    effects.Merge(Stop(live, live.failure, was_killed, now_ms));
  }
  effects.finished = live.record.workers.empty();  // nothing started: nothing to wait for
  return effects;
}

AttemptEffects Polled(LiveAttempt& live, const std::vector<ProcessStatus>& statuses,
                      JobState job_state, const std::string& executor, int64_t now_ms) {
  AttemptEffects effects;
  if (live.launching || statuses.size() != live.ranks.size()) return effects;
  std::vector<RankEnd> ended;  // ranks found ended in this poll
  bool any_running = false;
  for (size_t i = 0; i < live.ranks.size(); ++i) {
    RankLive& rank = live.ranks[i];
    if (rank.ended) continue;
    const ProcessStatus& status = statuses[i];
    if (status.kind == ProcessStatus::kUnknown) {
      any_running = true;  // no news: what was known holds (waiting, running, silent or not)
      continue;
    }
    if (status.kind == ProcessStatus::kWaiting) {
      // Held by the executor's own queue: silence counts from when the rank starts.
      rank.waiting = true;
      rank.last_heartbeat_ms = now_ms;
      if (status.why != live.waiting && !live.stopping) {
        live.waiting = status.why;
        effects.state = JobState::kPending;
        effects.reason = absl::StrCat("attempt ", live.record.number, " waits: ", live.waiting);
        job_state = JobState::kPending;
      }
      any_running = true;
      continue;
    }
    if (status.kind == ProcessStatus::kRunning) {
      if (!status.where.empty()) live.where = status.where;
      if (rank.waiting) rank.last_heartbeat_ms = now_ms;  // started just now
      rank.waiting = false;
      rank.seen_running = true;
      any_running = true;
      continue;
    }
    rank.ended = true;
    ended.push_back({live.record.workers[i].rank, status, rank.reported_exit, rank.reported_code,
                     rank.reported_message, rank.reported_at_ms});
  }
  if (job_state == JobState::kPending && !live.stopping &&
      std::none_of(live.ranks.begin(), live.ranks.end(),
                   [](const RankLive& r) { return r.waiting; })) {
    live.waiting.clear();
    effects.state = JobState::kStarting;
    effects.reason =
        absl::StrCat("attempt ", live.record.number, ": ", executor, " started its ranks");
  }
  if (std::optional<AttemptFailure> failed = FailureOf(ended, live.record.run_end);
      failed && !live.stopping) {
    live.record.interrupted = failed->interrupted;
    AttemptEffects stop = Stop(live, failed->reason, /*force=*/false, now_ms);
    stop.reason = failed->reason;
    effects.Merge(std::move(stop));
  }
  effects.finished = !any_running;
  return effects;
}

AttemptEffects Registered(LiveAttempt& live, int rank, JobState job_state, int64_t now_ms) {
  AttemptEffects effects;
  if (rank < 0 || rank >= static_cast<int>(live.ranks.size())) return effects;
  live.ranks[rank].registered = true;
  live.ranks[rank].last_heartbeat_ms = now_ms;
  const bool all = std::all_of(live.ranks.begin(), live.ranks.end(),
                               [](const RankLive& r) { return r.registered; });
  if (all && !live.stopping &&
      (job_state == JobState::kStarting || job_state == JobState::kPending)) {
    live.record.state = JobState::kRunning;
    effects.save = true;
    effects.state = JobState::kRunning;
    effects.reason = live.ranks.size() == 1
                         ? std::string("the rank registered")
                         : absl::StrCat("all ", live.ranks.size(), " ranks registered");
  }
  return effects;
}

AttemptEffects Timers(LiveAttempt& live, int64_t now_ms, int heartbeat_timeout_s) {
  AttemptEffects effects;
  if (live.launching) return effects;
  // Ranks that talk to us (registered), or that a poll found running: a rank whose executor
  // has not said it runs (held in its queue, or the executor does not answer) cannot be
  // silent. Ended ones are the poll's to judge.
  std::vector<RankPulse> running;
  for (size_t i = 0; i < live.ranks.size(); ++i) {
    const RankLive& rank = live.ranks[i];
    if (rank.ended || rank.waiting || !(rank.registered || rank.seen_running)) continue;
    running.push_back({live.record.workers[i].rank, rank.registered, rank.last_heartbeat_ms});
  }
  if (std::optional<std::string> silent = SilenceOf(running, now_ms, heartbeat_timeout_s);
      silent && !live.stopping) {
    effects = Stop(live, *silent, /*force=*/true, now_ms);
    effects.reason = *silent;
    effects.warning = absl::StrCat(*silent, "; stopping the attempt");
  }
  if (live.stopping && !live.killed && now_ms >= live.kill_at_ms) {
    live.killed = true;
    effects.signals.push_back(SIGKILL);
  }
  return effects;
}

}  // namespace matbert
