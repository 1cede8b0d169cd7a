// The live attempt's transitions as scenarios: each is a sequence of facts (a start's
// outcome, polls, registrations, the clock, stops) and what the machine must say after the
// last one — the signals, the job state and reason, and whether the attempt has finished.
#include "server/core/attempt_machine.h"

#include <signal.h>

#include <functional>

#include "gtest/gtest.h"

namespace matbert {
namespace {

const ProcessStatus kRunning{ProcessStatus::kRunning, 0};
ProcessStatus Waiting(std::string why) { return {ProcessStatus::kWaiting, 0, std::move(why)}; }
ProcessStatus Exited(int code) { return {ProcessStatus::kExited, code}; }
ProcessStatus Killed(int signal) { return {ProcessStatus::kSignaled, signal}; }
const ProcessStatus kUnknown{ProcessStatus::kUnknown, 0, "scontrol: Socket timed out"};

constexpr int64_t kT0 = 1'000'000;
constexpr int kTimeout = 30;  // heartbeat timeout, s

// A placed attempt of `ranks` ranks whose start returned at kT0 (grace period 10 s).
LiveAttempt StartedAttempt(int ranks) {
  LiveAttempt live;
  live.record.number = 1;
  live.grace_period_s = 10;
  live.launching = true;
  StartOutcome outcome;
  for (int r = 0; r < ranks; ++r) outcome.workers.push_back({r, 100 + r, 0});
  (void)Started(live, outcome, "attempt 1 on cpu:0", kT0);
  return live;
}

struct Expect {
  std::vector<int> signals;
  std::optional<JobState> state;
  std::string reason;
  bool finished = false;
};

void Check(const char* what, const AttemptEffects& got, const Expect& want) {
  EXPECT_EQ(got.signals, want.signals) << what;
  EXPECT_EQ(got.state, want.state) << what;
  EXPECT_EQ(got.reason, want.reason) << what;
  EXPECT_EQ(got.finished, want.finished) << what;
}

TEST(AttemptMachine, StartsAndStops) {
  struct Scenario {
    const char* what;
    std::function<AttemptEffects(LiveAttempt&)> facts;  // run on a placed attempt
    Expect want;
  };
  auto placed = [] {
    LiveAttempt live;
    live.record.number = 1;
    live.grace_period_s = 10;
    live.launching = true;
    return live;
  };
  const std::vector<Scenario> scenarios = {
      {"a start that started every rank",
       [](LiveAttempt& l) {
         return Started(l, {{{0, 100, 0}, {1, 101, 0}}, "", 40, "", false},
                        "attempt 1 on cpu:0,cpu:1", kT0);
       },
       {{}, JobState::kStarting, "attempt 1 on cpu:0,cpu:1", false}},
      {"a start that started nothing has nothing to wait for",
       [](LiveAttempt& l) {
         return Started(l, {{}, "", 0, "cannot start rank 0", false}, "attempt 1 on cpu:0", kT0);
       },
       {{}, JobState::kStarting, "attempt 1 on cpu:0", true}},
      {"a start that started some: they are killed at once",
       [](LiveAttempt& l) {
         return Started(l, {{{0, 100, 0}}, "", 0, "cannot start rank 1", false}, "s", kT0);
       },
       {{SIGTERM, SIGKILL}, JobState::kStarting, "s", false}},
      {"a stop during the start is only remembered …",
       [](LiveAttempt& l) { return Stop(l, "cancelled by a client", false, kT0); },
       {{}, std::nullopt, "", false}},
      {"… and sent when the start returns",
       [](LiveAttempt& l) {
         (void)Stop(l, "cancelled by a client", false, kT0);
         return Started(l, {{{0, 100, 0}}, "", 0, "", false}, "s", kT0);
       },
       {{SIGTERM}, JobState::kStarting, "s", false}},
      {"a forced stop during the start: both signals when it returns",
       [](LiveAttempt& l) {
         (void)Stop(l, "cancelled by a client", true, kT0);
         return Started(l, {{{0, 100, 0}}, "", 0, "", false}, "s", kT0);
       },
       {{SIGTERM, SIGKILL}, JobState::kStarting, "s", false}},
  };
  for (const Scenario& s : scenarios) {
    LiveAttempt live = placed();
    Check(s.what, s.facts(live), s.want);
  }
  // What a remembered stop keeps: its cause, not the later one.
  LiveAttempt live = placed();
  (void)Stop(live, "cancelled by a client", false, kT0);
  (void)Started(live, {{{0, 100, 0}}, "", 0, "", false}, "s", kT0);
  (void)Stop(live, "rank 0 was killed", true, kT0);
  EXPECT_EQ(live.failure, "cancelled by a client");
}

TEST(AttemptMachine, PollsWaitingRunningAndEnded) {
  struct Scenario {
    const char* what;
    std::vector<std::vector<ProcessStatus>> polls;  // in order; effects of the last are checked
    JobState job_state;                             // before the last poll
    Expect want;
  };
  const std::vector<Scenario> scenarios = {
      {"running ranks change nothing", {{kRunning, kRunning}}, JobState::kStarting, {}},
      {"held in the executor's queue: PENDING with its reason",
       {{Waiting("Slurm job 7 is PENDING (Resources)"),
         Waiting("Slurm job 7 is PENDING (Resources)")}},
       JobState::kStarting,
       {{}, JobState::kPending, "attempt 1 waits: Slurm job 7 is PENDING (Resources)", false}},
      {"the same reason again: no second state",
       {{Waiting("w"), Waiting("w")}, {Waiting("w"), Waiting("w")}},
       JobState::kPending,
       {}},
      {"a new reason: a new state",
       {{Waiting("w"), Waiting("w")}, {Waiting("v"), Waiting("v")}},
       JobState::kPending,
       {{}, JobState::kPending, "attempt 1 waits: v", false}},
      {"started by the executor: STARTING again (where it runs is kept)",
       {{Waiting("w"), Waiting("w")}, {kRunning, kRunning}},
       JobState::kPending,
       {{}, JobState::kStarting, "attempt 1: Slurm's controller started its ranks", false}},
      {"the executor cannot say: a running job stays as it was",
       {{kRunning, kRunning}, {kUnknown, kUnknown}},
       JobState::kRunning,
       {}},
      {"… and a waiting one too (no STARTING from no news)",
       {{Waiting("w"), Waiting("w")}, {kUnknown, kUnknown}},
       JobState::kPending,
       {}},
      {"a rank killed from outside fails the attempt: SIGTERM to the rest",
       {{kRunning, Killed(SIGKILL)}},
       JobState::kRunning,
       {{SIGTERM}, std::nullopt, "rank 1 was killed by signal 9 (Killed)", false}},
      {"all exited 0: finished, no signal",
       {{Exited(0), Exited(0)}},
       JobState::kRunning,
       {{}, std::nullopt, "", true}},
      {"the last rank ends after the failure: finished, no second SIGTERM",
       {{kRunning, Exited(3)}, {Exited(1), Exited(3)}},
       JobState::kRunning,
       {{}, std::nullopt, "", true}},
  };
  for (const Scenario& s : scenarios) {
    LiveAttempt live = StartedAttempt(2);
    AttemptEffects last;
    JobState state = JobState::kStarting;
    for (size_t i = 0; i < s.polls.size(); ++i) {
      if (i + 1 == s.polls.size()) state = s.job_state;
      last = Polled(live, s.polls[i], state, "Slurm's controller", kT0 + 1000 * int64_t(i));
      if (last.state) state = *last.state;
    }
    Check(s.what, last, s.want);
  }
}

TEST(AttemptMachine, SilenceAndTheGracePeriod) {
  struct Scenario {
    const char* what;
    std::function<void(LiveAttempt&)> before;  // facts before the clock reads `at`
    int64_t at;
    Expect want;
  };
  const std::vector<Scenario> scenarios = {
      {"not seen running and not registered: not silent, however long",
       [](LiveAttempt&) {},
       kT0 + 600'000,
       {}},
      {"held in the executor's queue: not silent",
       [](LiveAttempt& l) { (void)Polled(l, {Waiting("w")}, JobState::kStarting, "x", kT0); },
       kT0 + 600'000,
       {{}, JobState::kPending, "", false}},
      {"seen running, never registered: stopped at once past the timeout",
       [](LiveAttempt& l) { (void)Polled(l, {kRunning}, JobState::kStarting, "x", kT0); },
       kT0 + 31'000,
       {{SIGTERM, SIGKILL}, std::nullopt, "rank 0 did not register within 30 s", false}},
      {"within the timeout: nothing",
       [](LiveAttempt& l) { (void)Polled(l, {kRunning}, JobState::kStarting, "x", kT0); },
       kT0 + 29'000,
       {}},
      {"registered, then silent (even while the executor does not answer)",
       [](LiveAttempt& l) { (void)Registered(l, 0, JobState::kStarting, kT0 + 1000); },
       kT0 + 32'000,
       {{SIGTERM, SIGKILL}, std::nullopt, "", false}},
      {"registered, then no news from the executor: silence still counts",
       [](LiveAttempt& l) {
         (void)Registered(l, 0, JobState::kStarting, kT0 + 1000);
         (void)Polled(l, {kUnknown}, JobState::kRunning, "x", kT0 + 2000);
       },
       kT0 + 32'000,
       {{SIGTERM, SIGKILL}, std::nullopt, "", false}},
      {"a stop's grace period over: SIGKILL",
       [](LiveAttempt& l) { (void)Stop(l, "cancelled by a client", false, kT0); },
       kT0 + 10'000,
       {{SIGKILL}, std::nullopt, "", false}},
      {"… not before",
       [](LiveAttempt& l) { (void)Stop(l, "cancelled by a client", false, kT0); },
       kT0 + 9'999,
       {}},
  };
  for (const Scenario& s : scenarios) {
    LiveAttempt live = StartedAttempt(1);
    s.before(live);
    AttemptEffects got = Timers(live, s.at, kTimeout);
    // Silence of a registered rank names it; only the signals and the end are checked there.
    Expect want = s.want;
    if (std::string(s.what).rfind("registered, then", 0) == 0) {
      EXPECT_NE(got.reason.find("rank 0"), std::string::npos) << got.reason;
      want.reason = got.reason;
    }
    if (want.state == JobState::kPending) want.state.reset();  // Timers sets no state
    Check(s.what, got, want);
  }
  // SIGKILL goes once.
  LiveAttempt live = StartedAttempt(1);
  (void)Stop(live, "x", false, kT0);
  EXPECT_EQ(Timers(live, kT0 + 10'000, kTimeout).signals, std::vector<int>{SIGKILL});
  EXPECT_TRUE(Timers(live, kT0 + 20'000, kTimeout).signals.empty());
}

TEST(AttemptMachine, WhereTheExecutorRunsTheRanksIsKept) {
  LiveAttempt live = StartedAttempt(2);
  ProcessStatus on_nodes = kRunning;
  on_nodes.where = "node[1-2]";
  (void)Polled(live, {on_nodes, on_nodes}, JobState::kStarting, "x", kT0);
  EXPECT_EQ(live.where, "node[1-2]");
  (void)Polled(live, {kUnknown, kUnknown}, JobState::kRunning, "x", kT0 + 1000);
  EXPECT_EQ(live.where, "node[1-2]") << "no news keeps it";
}

TEST(AttemptMachine, RunningOnceEveryRankRegistered) {
  LiveAttempt live = StartedAttempt(2);
  AttemptEffects first = Registered(live, 0, JobState::kStarting, kT0);
  EXPECT_FALSE(first.state.has_value());
  AttemptEffects second = Registered(live, 1, JobState::kStarting, kT0);
  EXPECT_EQ(second.state, JobState::kRunning);
  EXPECT_EQ(second.reason, "all 2 ranks registered");
  EXPECT_TRUE(second.save);
  EXPECT_EQ(live.record.state, JobState::kRunning);
  // From PENDING too (Slurm started them between polls); never while stopping.
  LiveAttempt pending = StartedAttempt(1);
  EXPECT_EQ(Registered(pending, 0, JobState::kPending, kT0).state, JobState::kRunning);
  LiveAttempt stopping = StartedAttempt(1);
  (void)Stop(stopping, "cancelled by a client", false, kT0);
  EXPECT_FALSE(Registered(stopping, 0, JobState::kStarting, kT0).state.has_value());
  EXPECT_FALSE(Registered(stopping, 5, JobState::kStarting, kT0).state.has_value())
      << "a rank outside the attempt changes nothing";
}

}  // namespace
}  // namespace matbert
