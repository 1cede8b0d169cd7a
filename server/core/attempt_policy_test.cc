// The attempt policy's rules as scenario tables: each row is a situation the coordinator
// meets (ranks found ended together, silence, an ended attempt, a job's attempt history) and
// the verdict the rule must give.
#include "server/core/attempt_policy.h"

#include <signal.h>

#include "gtest/gtest.h"

namespace matbert {
namespace {

ProcessStatus Exited(int code) { return {ProcessStatus::kExited, code}; }
ProcessStatus Killed(int signal) { return {ProcessStatus::kSignaled, signal}; }
const ProcessStatus kGone{ProcessStatus::kGone, 0};

RankEnd End(int rank, ProcessStatus status) { return {rank, status, false, 0, "", 0}; }
// A rank that sent ReportExit(code, message) at `at_ms` before it ended.
RankEnd Reported(int rank, ProcessStatus status, int code, std::string message, int64_t at_ms) {
  return {rank, status, true, code, std::move(message), at_ms};
}

TEST(AttemptPolicy, FailureOfNamesTheLikeliestCause) {
  struct Scenario {
    const char* what;
    std::vector<RankEnd> ended;
    RunEnd run_end;
    std::optional<std::string> reason;  // nullopt: the attempt has not failed
    bool interrupted;
  };
  const std::vector<Scenario> scenarios = {
      {"clean exits fail nothing",
       {End(0, Exited(0)), End(1, Exited(0))},
       RunEnd::kUnknown,
       std::nullopt,
       false},
      {"a rank killed from outside, not the peer that then hit SIGPIPE",
       {End(0, Killed(SIGPIPE)), End(1, Killed(SIGKILL))},
       RunEnd::kUnknown,
       "rank 1 was killed by signal 9 (Killed)",
       false},
      {"the rank that reported its error first",
       {Reported(0, Exited(1), 1, "Connection closed by peer", 15),
        Reported(1, Exited(1), 1, "Connection closed by peer", 15),
        Reported(2, Exited(1), 1, "shape mismatch", 10)},
       RunEnd::kUnknown,
       "rank 2 exited with code 1: shape mismatch",
       false},
      {"an error exit before one that ended unseen",
       {End(0, kGone), End(1, Exited(2))},
       RunEnd::kUnknown,
       "rank 1 exited with code 2",
       false},
      {"equal causes: the lower rank",
       {End(3, Exited(2)), End(1, Exited(2))},
       RunEnd::kUnknown,
       "rank 1 exited with code 2",
       false},
      {"SIGPIPE alone is still a failure",
       {End(0, Killed(SIGPIPE))},
       RunEnd::kUnknown,
       "rank 0 was killed by signal 13 (Broken pipe)",
       false},
      {"gone while matbertd was down: lost to the restart",
       {End(0, kGone)},
       RunEnd::kUnknown,
       "rank 0 ended while matbertd was down",
       true},
      {"gone after a completed run", {End(0, kGone)}, RunEnd::kCompleted, std::nullopt, false},
      {"gone after reporting code 0",
       {Reported(0, kGone, 0, "", 5)},
       RunEnd::kUnknown,
       std::nullopt,
       false},
      {"gone after reporting an error: taken at its word",
       {Reported(0, kGone, 1, "LibTorch error: out of memory", 5)},
       RunEnd::kUnknown,
       "rank 0 exited with code 1: LibTorch error: out of memory",
       false},
      {"nothing ended", {}, RunEnd::kUnknown, std::nullopt, false},
  };
  for (const Scenario& s : scenarios) {
    const std::optional<AttemptFailure> failure = FailureOf(s.ended, s.run_end);
    ASSERT_EQ(failure.has_value(), s.reason.has_value()) << s.what;
    if (!failure) continue;
    EXPECT_EQ(failure->reason, *s.reason) << s.what;
    EXPECT_EQ(failure->interrupted, s.interrupted) << s.what;
  }
}

TEST(AttemptPolicy, SilenceOfFailsTheFirstRankPastTheTimeout) {
  const int64_t now = 100'000;
  EXPECT_EQ(SilenceOf({{0, true, now - 30'000}, {1, true, now}}, now, 30), std::nullopt)
      << "exactly the timeout is still in time";
  EXPECT_EQ(SilenceOf({{0, true, now}, {1, true, now - 30'001}}, now, 30),
            "rank 1 sent no heartbeat for 30 s");
  EXPECT_EQ(SilenceOf({{2, false, now - 31'000}}, now, 30), "rank 2 did not register within 30 s");
  EXPECT_EQ(SilenceOf({}, now, 30), std::nullopt);
}

TEST(AttemptPolicy, AttemptOutcome) {
  struct Scenario {
    bool cancel;
    std::string failure;
    RunEnd run_end;
    JobState state;
    std::string reason;
  };
  const std::vector<Scenario> scenarios = {
      {false, "", RunEnd::kCompleted, JobState::kSucceeded, "all ranks exited with code 0"},
      {false, "", RunEnd::kUnknown, JobState::kSucceeded, "all ranks exited with code 0"},
      {false, "rank 0 exited with code 1", RunEnd::kUnknown, JobState::kFailed,
       "rank 0 exited with code 1"},
      {false, "", RunEnd::kStopped, JobState::kFailed,
       "stopped by a signal from outside matbertd after step 42"},
      {true, "rank 0 was killed by signal 15 (Terminated)", RunEnd::kStopped, JobState::kCancelled,
       "cancelled by a client"},
  };
  for (const Scenario& s : scenarios) {
    const Verdict v = AttemptOutcome(s.cancel, s.failure, s.run_end, 42);
    EXPECT_EQ(v.state, s.state) << s.reason;
    EXPECT_EQ(v.reason, s.reason);
  }
}

AttemptRecord Ended(JobState state, bool interrupted = false) {
  AttemptRecord a;
  a.state = state;
  a.interrupted = interrupted;
  a.reason = state == JobState::kFailed ? "rank 0 exited with code 1" : "ok";
  return a;
}

TEST(AttemptPolicy, AfterAttemptRetriesWhileRestartsRemain) {
  const AttemptRecord failed = Ended(JobState::kFailed);
  const AttemptRecord lost = Ended(JobState::kFailed, /*interrupted=*/true);
  struct Scenario {
    std::vector<AttemptRecord> attempts;
    int max_restarts;
    JobState state;
    std::string reason;
  };
  const std::vector<Scenario> scenarios = {
      {{Ended(JobState::kSucceeded)}, 3, JobState::kSucceeded, "ok"},
      {{Ended(JobState::kCancelled)}, 3, JobState::kCancelled, "ok"},
      {{failed}, 0, JobState::kFailed, "rank 0 exited with code 1"},
      {{failed}, 1, JobState::kRetrying, "rank 0 exited with code 1; retry 1 of 1"},
      {{failed, failed}, 1, JobState::kFailed, "rank 0 exited with code 1"},
      {{failed, failed}, 2, JobState::kRetrying, "rank 0 exited with code 1; retry 2 of 2"},
      {{lost},
       0,
       JobState::kRetrying,
       "rank 0 exited with code 1; retrying (not counted as a restart)"},
      {{failed, lost, lost},
       0,
       JobState::kRetrying,
       "rank 0 exited with code 1; retrying (not counted as a restart)"},
      {{lost, failed}, 1, JobState::kRetrying, "rank 0 exited with code 1; retry 1 of 1"},
      {{failed, lost, failed}, 1, JobState::kFailed, "rank 0 exited with code 1"},
  };
  for (size_t i = 0; i < scenarios.size(); ++i) {
    const Verdict v = AfterAttempt(scenarios[i].attempts, scenarios[i].max_restarts);
    EXPECT_EQ(v.state, scenarios[i].state) << "scenario " << i;
    EXPECT_EQ(v.reason, scenarios[i].reason) << "scenario " << i;
  }
}

}  // namespace
}  // namespace matbert
