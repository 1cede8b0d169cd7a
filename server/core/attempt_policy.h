// The attempt policy: pure rules for how an attempt ends and what follows (DESIGN.md §7) —
// which rank's end to name when several ended at once, when silence fails an attempt, what
// state an ended attempt leaves its job in, and whether it is retried. The coordinator
// gathers the facts and applies the verdicts; attempt_policy_test.cc holds the scenarios.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "server/executor/executor.h"
#include "server/store/job_record.h"

namespace matbert {

// A rank found ended in one poll, with what it reported of itself before.
struct RankEnd {
  int rank = 0;
  ProcessStatus status;        // as the executor saw it
  bool reported_exit = false;  // its ReportExit arrived
  int reported_code = 0;
  std::string message;         // its exit message ("" when none)
  int64_t reported_at_ms = 0;  // when its ReportExit arrived
};

struct AttemptFailure {
  std::string reason;        // "rank 1 was killed by signal 9 (Killed)", …
  bool interrupted = false;  // lost to a restart of matbertd, not to the job
};

// The failure that ranks found ended in the same poll add up to, or nullopt when none fails
// the attempt. Ranks that exited with 0 fail nothing; one that ended while matbertd was down
// is taken at its reported exit code, and fails nothing after a completed run. Of the rest,
// the likeliest cause is named: a rank killed from outside, then the first to report its own
// error, then one that ended unseen, last one killed by SIGPIPE (writing to a peer that had
// gone); ties go to the lower rank.
std::optional<AttemptFailure> FailureOf(const std::vector<RankEnd>& ended, RunEnd run_end);

// A rank still running, as heartbeats see it.
struct RankPulse {
  int rank = 0;
  bool registered = false;
  int64_t last_heartbeat_ms = 0;  // or when it was started, before it registered
};

// The failure of the first rank silent for longer than `timeout_s` at `now_ms`, if any.
std::optional<std::string> SilenceOf(const std::vector<RankPulse>& running, int64_t now_ms,
                                     int timeout_s);

struct Verdict {
  JobState state;
  std::string reason;
};

// The state an attempt ended in once all its ranks have: CANCELLED when a client asked,
// FAILED with the first failure or when a signal from outside stopped the run (at `step`),
// else SUCCEEDED.
Verdict AttemptOutcome(bool cancel_requested, const std::string& failure, RunEnd run_end,
                       int64_t step);

// What the job does after its newest attempt (the last of `attempts`, all finished, oldest
// first) ended: RETRYING while restarts remain — attempts interrupted by a restart of
// matbertd use none — else the attempt's own state, with the reason clients see.
Verdict AfterAttempt(const std::vector<AttemptRecord>& attempts, int max_restarts);

}  // namespace matbert
