#include "server/core/attempt_policy.h"

#include <signal.h>

#include <algorithm>
#include <climits>
#include <tuple>

#include "absl/strings/str_cat.h"

namespace matbert {
namespace {

// How likely a rank's unclean end caused its attempt's failure rather than followed from a
// peer's: 0 killed from outside, 1 failed by itself, 2 ended unseen, 3 killed by SIGPIPE.
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

}  // namespace

std::optional<AttemptFailure> FailureOf(const std::vector<RankEnd>& ended, RunEnd run_end) {
  std::vector<RankEnd> failed;
  for (RankEnd rank : ended) {
    // Ranks adopted after a restart are not our children: trust what they reported.
    if (rank.status.kind == ProcessStatus::kGone && rank.reported_exit) {
      rank.status = {ProcessStatus::kExited, rank.reported_code};
    }
    if (rank.status.kind == ProcessStatus::kExited && rank.status.code == 0) continue;
    if (rank.status.kind == ProcessStatus::kGone && run_end == RunEnd::kCompleted) continue;
    failed.push_back(std::move(rank));
  }
  if (failed.empty()) return std::nullopt;
  auto order = [](const RankEnd& r) {
    return std::make_tuple(CauseClass(r.status), r.reported_exit ? r.reported_at_ms : INT64_MAX,
                           r.rank);
  };
  const RankEnd& cause =
      *std::min_element(failed.begin(), failed.end(),
                        [&](const RankEnd& a, const RankEnd& b) { return order(a) < order(b); });
  AttemptFailure failure;
  failure.interrupted = cause.status.kind == ProcessStatus::kGone;
  failure.reason =
      absl::StrCat("rank ", cause.rank, " ",
                   failure.interrupted ? "ended while matbertd was down" : cause.status.Describe());
  if (!cause.message.empty()) absl::StrAppend(&failure.reason, ": ", cause.message);
  return failure;
}

std::optional<std::string> SilenceOf(const std::vector<RankPulse>& running, int64_t now_ms,
                                     int timeout_s) {
  for (const RankPulse& rank : running) {
    if (now_ms - rank.last_heartbeat_ms > int64_t{1000} * timeout_s) {
      return absl::StrCat("rank ", rank.rank,
                          rank.registered ? " sent no heartbeat for " : " did not register within ",
                          timeout_s, " s");
    }
  }
  return std::nullopt;
}

Verdict AttemptOutcome(bool cancel_requested, const std::string& failure, RunEnd run_end,
                       int64_t step) {
  if (cancel_requested) return {JobState::kCancelled, "cancelled by a client"};
  if (!failure.empty()) return {JobState::kFailed, failure};
  if (run_end == RunEnd::kStopped) {
    return {JobState::kFailed,
            absl::StrCat("stopped by a signal from outside matbertd after step ", step)};
  }
  return {JobState::kSucceeded, "all ranks exited with code 0"};
}

Verdict AfterAttempt(const std::vector<AttemptRecord>& attempts, int max_restarts) {
  const AttemptRecord& last = attempts.back();
  if (last.state != JobState::kFailed) return {last.state, last.reason};
  if (last.interrupted) {
    return {JobState::kRetrying,
            absl::StrCat(last.reason, "; retrying (not counted as a restart)")};
  }
  const int restarts_used =
      static_cast<int>(std::count_if(attempts.begin(), attempts.end(), [](const AttemptRecord& a) {
        return a.state == JobState::kFailed && !a.interrupted;
      }));
  if (restarts_used <= max_restarts) {
    return {JobState::kRetrying,
            absl::StrCat(last.reason, "; retry ", restarts_used, " of ", max_restarts)};
  }
  return {JobState::kFailed, last.reason};
}

}  // namespace matbert
