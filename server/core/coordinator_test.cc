// The Coordinator with an injected executor and clock: failures that real processes make
// hard to stage (a rank that cannot start, one that never registers, ranks that vanish
// while the daemon is down) and the bookkeeping around them. End-to-end behaviour with real
// processes is in tests/test_matbertd.py.
#include "server/core/coordinator.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "gtest/gtest.h"
#include "server/executor/delayed_executor.h"
#include "server/testing/scripted_executor.h"
#include "server/testing/test_dir.h"

namespace matbert {
namespace {

class CoordinatorTest : public testing::Test {
 protected:
  void SetUp() override {
    state_dir_ = FreshTestDir("coordinator_test");
    spec_ = *ReadFileToString(std::string(MATBERT_SOURCE_DIR) + "/configs/bert_matcomp_cpu.toml");
  }

  // `threads`: the coordinator's own control and executor threads on the real clock, as in
  // matbertd; else nothing runs but TickForTest, on the test's clock.
  std::unique_ptr<Coordinator> Open(int devices = 2, Executor* executor = nullptr,
                                    bool threads = false) {
    CoordinatorOptions options;
    options.state_dir = state_dir_;
    options.worker_path = "/usr/bin/matbert-worker";
    options.coordinator_address = "127.0.0.1:1";
    options.spec_root = std::string(MATBERT_SOURCE_DIR) + "/configs";
    options.control_thread = false;
    options.heartbeat_timeout_s = 30;
    options.grace_period_s = 10;
    options.now_ms = [this] { return now_ms_; };
    if (threads) {
      options.control_thread = true;
      options.tick_ms = 20;
      options.executor_stall_ms = 1000;
      options.now_ms = nullptr;
    }
    for (int i = 0; i < devices; ++i) {
      options.devices.push_back({absl::StrCat("cpu:", i), "cpu", i, "CPU slot", 0});
    }
    auto c = Coordinator::Create(options, executor ? executor : &executor_);
    EXPECT_TRUE(c.ok()) << c.status();
    return std::move(*c);
  }

  std::string Submit(Coordinator& c, std::vector<std::string> overrides) {
    auto view = c.Submit({spec_, std::move(overrides), "test.toml"});
    EXPECT_TRUE(view.ok()) << view.status();
    return view->job.id;
  }

  // The "state" of each state event, in order.
  std::vector<std::string> States(Coordinator& c, const std::string& id) {
    const Coordinator::EventPage page = *c.Events(id, 0, 1000);
    std::vector<std::string> states;
    for (const EventRecord& e : page.events) {
      const std::string key = "\"state\":\"";
      const size_t at = e.payload.find(key);
      if (e.kind != "state" || at == std::string::npos) continue;
      const size_t start = at + key.size();
      states.push_back(e.payload.substr(start, e.payload.find('"', start) - start));
    }
    return states;
  }

  std::string state_dir_, spec_;
  int64_t now_ms_ = 1'700'000'000'000;
  ScriptedExecutor executor_;
};

TEST_F(CoordinatorTest, RanksGetTheEnvironmentContractAndSucceedTogether) {
  auto c = Open();
  const std::string id = Submit(*c, {"job.gpus=2"});
  c->TickForTest();
  ASSERT_EQ(executor_.launched.size(), 2u);
  for (int rank = 0; rank < 2; ++rank) {
    const RankLaunch& r = executor_.launched[rank];
    auto has = [&](const std::string& kv) {
      return std::find(r.env.begin(), r.env.end(), kv) != r.env.end();
    };
    EXPECT_TRUE(has(absl::StrCat("RANK=", rank))) << rank;
    EXPECT_TRUE(has(absl::StrCat("LOCAL_RANK=", rank)));
    EXPECT_TRUE(has("WORLD_SIZE=2"));
    EXPECT_TRUE(has("MASTER_ADDR=127.0.0.1"));
    EXPECT_TRUE(has("CUDA_VISIBLE_DEVICES="));
    EXPECT_TRUE(has("MATBERT_JOB_ID=" + id));
    EXPECT_TRUE(has("MATBERT_ATTEMPT=1"));
    EXPECT_TRUE(has("MATBERT_COORDINATOR=127.0.0.1:1"));
    EXPECT_EQ(r.argv[1], "train");
    EXPECT_EQ(r.log_path, c->RunDir(id) + absl::StrCat("/logs/rank-", rank, ".log"));
  }
  EXPECT_EQ(c->Register({id, 1, 0}, 100).value(), 2000);
  EXPECT_EQ(c->Get(id)->job.state, JobState::kStarting);
  EXPECT_EQ(c->Register({id, 1, 1}, 777).status().code(), absl::StatusCode::kFailedPrecondition)
      << "pid of another process";
  ASSERT_TRUE(c->Register({id, 1, 1}, 101).ok());
  EXPECT_EQ(c->Get(id)->job.state, JobState::kRunning);
  EXPECT_EQ(c->Register({id, 2, 0}, 100).status().code(), absl::StatusCode::kFailedPrecondition)
      << "not the live attempt";
  executor_.ExitAll(0);
  c->TickForTest();
  EXPECT_EQ(c->Get(id)->job.state, JobState::kSucceeded);
  EXPECT_EQ(c->Cluster().holders, std::vector<std::string>({"", ""}));
  EXPECT_EQ(States(*c, id),
            std::vector<std::string>({"QUEUED", "STARTING", "RUNNING", "SUCCEEDED"}));
}

TEST_F(CoordinatorTest, RankThatCannotStartFailsTheAttemptAndUsesTheRestarts) {
  auto c = Open();
  const std::string id = Submit(*c, {"job.max_restarts=1"});
  executor_.fail_starts = 2;
  c->TickForTest();  // attempt 1: spawn fails, stopping
  c->TickForTest();  // finished → RETRYING → attempt 2 placed, fails again
  c->TickForTest();
  const JobView view = *c->Get(id);
  EXPECT_EQ(view.job.state, JobState::kFailed);
  ASSERT_EQ(view.attempts.size(), 2u);
  EXPECT_NE(view.attempts[0].reason.find("cannot start rank 0"), std::string::npos)
      << view.attempts[0].reason;
  EXPECT_NE(view.job.failure.find("/nonexistent/matbert-worker"), std::string::npos);
  EXPECT_TRUE(view.job.devices.empty());
  EXPECT_EQ(c->Cluster().holders, std::vector<std::string>({"", ""}));
}

TEST_F(CoordinatorTest, RankThatNeverRegistersIsKilledAfterTheHeartbeatTimeout) {
  auto c = Open();
  const std::string id = Submit(*c, {"job.max_restarts=0"});
  c->TickForTest();
  now_ms_ += 29'000;
  c->TickForTest();
  EXPECT_TRUE(executor_.signals.empty()) << "still within the timeout";
  now_ms_ += 2'000;
  c->TickForTest();
  // No grace for a silent rank: SIGTERM and SIGKILL to its group at once.
  ASSERT_EQ(executor_.signals.size(), 2u);
  EXPECT_EQ(executor_.signals[0], std::make_pair(pid_t{100}, SIGTERM));
  EXPECT_EQ(executor_.signals[1], std::make_pair(pid_t{100}, SIGKILL));
  executor_.status[100] = {ProcessStatus::kSignaled, SIGKILL};
  c->TickForTest();
  const JobView view = *c->Get(id);
  EXPECT_EQ(view.job.state, JobState::kFailed);
  EXPECT_EQ(view.job.failure, "rank 0 did not register within 30 s");
}

TEST_F(CoordinatorTest, WhenRanksFailTogetherTheLikeliestCauseIsNamed) {
  auto c = Open(/*devices=*/3);
  // A rank killed from outside, seen in the same pass as the peer that then hit SIGPIPE.
  const std::string killed = Submit(*c, {"job.gpus=2", "job.max_restarts=0"});
  c->TickForTest();
  executor_.status[100] = {ProcessStatus::kSignaled, SIGPIPE};
  executor_.status[101] = {ProcessStatus::kSignaled, SIGKILL};
  c->TickForTest();
  c->TickForTest();
  EXPECT_EQ(c->Get(killed)->job.failure, "rank 1 was killed by signal 9 (Killed)");

  // Ranks that all exit with an error: the one that reported first is the cause.
  const std::string raised = Submit(*c, {"job.gpus=3", "job.max_restarts=0"});
  c->TickForTest();
  ASSERT_EQ(executor_.launched.size(), 5u);
  for (int rank = 0; rank < 3; ++rank) ASSERT_TRUE(c->Register({raised, 1, rank}, 102 + rank).ok());
  ASSERT_TRUE(c->ReportExit({raised, 1, 2}, 1, "shape mismatch").ok());
  now_ms_ += 5;
  ASSERT_TRUE(c->ReportExit({raised, 1, 0}, 1, "Connection closed by peer").ok());
  ASSERT_TRUE(c->ReportExit({raised, 1, 1}, 1, "Connection closed by peer").ok());
  for (int pid = 102; pid < 105; ++pid) executor_.status[pid] = {ProcessStatus::kExited, 1};
  c->TickForTest();
  c->TickForTest();
  EXPECT_EQ(c->Get(raised)->job.failure, "rank 2 exited with code 1: shape mismatch");
}

TEST_F(CoordinatorTest, CancelWaitsTheGracePeriodThenKills) {
  auto c = Open();
  const std::string id = Submit(*c, {});
  c->TickForTest();
  ASSERT_TRUE(c->Register({id, 1, 0}, 100).ok());
  ASSERT_TRUE(c->Cancel(id, false).ok());
  c->TickForTest();  // the executor thread's work: the signal is sent outside the lock
  EXPECT_EQ(executor_.signals, (std::vector<std::pair<pid_t, int>>{{100, SIGTERM}}));
  now_ms_ += 9'000;
  c->TickForTest();
  EXPECT_EQ(executor_.signals.size(), 1u);
  now_ms_ += 1'000;
  c->TickForTest();
  EXPECT_EQ(executor_.signals.back(), std::make_pair(pid_t{100}, SIGKILL));
  executor_.status[100] = {ProcessStatus::kSignaled, SIGKILL};
  c->TickForTest();
  EXPECT_EQ(c->Get(id)->job.state, JobState::kCancelled);
  EXPECT_EQ(c->Cancel(id, false).status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(c->Cancel("nosuch", false).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(CoordinatorTest, RanksLostWhileTheDaemonWasDownAreRetriedWithoutUsingARestart) {
  std::string id;
  {
    auto c = Open();
    id = Submit(*c, {"job.max_restarts=0"});
    c->TickForTest();
    ASSERT_TRUE(c->Register({id, 1, 0}, 100).ok());
  }
  // The next daemon finds rank 0 gone, with no exit report.
  executor_.status[100] = {ProcessStatus::kGone, 0};
  auto c = Open();
  EXPECT_EQ(c->Get(id)->job.state, JobState::kRunning) << "adopted until polled";
  c->TickForTest();  // attempt 1 ends, RETRYING, attempt 2 starts
  const JobView view = *c->Get(id);
  ASSERT_EQ(view.attempts.size(), 2u);
  EXPECT_EQ(view.attempts[0].state, JobState::kFailed);
  EXPECT_TRUE(view.attempts[0].interrupted);
  EXPECT_EQ(view.attempts[0].reason, "rank 0 ended while matbertd was down");
  EXPECT_EQ(view.job.state, JobState::kStarting);
  EXPECT_EQ(executor_.launched.back().argv[1], "train");
}

TEST_F(CoordinatorTest, HowTheRunEndedTravelsInReportExitAndSurvivesARestart) {
  std::string completed, stopped;
  {
    auto c = Open();
    completed = Submit(*c, {"job.max_restarts=0"});
    stopped = Submit(*c, {"job.max_restarts=0"});
    c->TickForTest();
    ASSERT_TRUE(c->Register({completed, 1, 0}, 100).ok());
    ASSERT_TRUE(c->Register({stopped, 1, 0}, 101).ok());
    ASSERT_TRUE(c->ReportExit({completed, 1, 0}, 0, "", RunEnd::kCompleted).ok());
    ASSERT_TRUE(c->ReportExit({stopped, 1, 0}, 0, "", RunEnd::kStopped).ok());
  }
  // Both ranks exit while no daemon runs: the next one cannot wait for them.
  executor_.status[100] = {ProcessStatus::kGone, 0};
  executor_.status[101] = {ProcessStatus::kGone, 0};
  auto c = Open();
  EXPECT_EQ(executor_.adopted, (std::vector<std::string>{completed, stopped}));
  c->TickForTest();
  const JobView done = *c->Get(completed);
  EXPECT_EQ(done.job.state, JobState::kSucceeded) << done.job.failure;
  EXPECT_EQ(done.attempts.size(), 1u) << "a finished run is not retried";
  // A run stopped by a signal while the daemon was down (perhaps by the same shutdown) is
  // resumed, without using a restart.
  const JobView view = *c->Get(stopped);
  EXPECT_EQ(view.job.state, JobState::kStarting);
  ASSERT_EQ(view.attempts.size(), 2u);
  EXPECT_TRUE(view.attempts[0].interrupted);
}

TEST_F(CoordinatorTest, ARunStoppedFromOutsideFailsItsJob) {
  auto c = Open();
  const std::string id = Submit(*c, {"job.max_restarts=0"});
  c->TickForTest();
  ASSERT_TRUE(c->Register({id, 1, 0}, 100).ok());
  ASSERT_TRUE(c->ReportMetrics({id, 1, 0}, {{"train", 40, {{"loss", 0.5}}}}).ok());
  ASSERT_TRUE(c->ReportExit({id, 1, 0}, 0, "", RunEnd::kStopped).ok());
  executor_.status[100] = {ProcessStatus::kExited, 0};
  c->TickForTest();
  const JobView view = *c->Get(id);
  EXPECT_EQ(view.job.state, JobState::kFailed) << "every rank exited 0, yet the run did not end";
  EXPECT_EQ(view.job.failure, "stopped by a signal from outside matbertd after step 40");
  EXPECT_EQ(view.attempts[0].run_end, RunEnd::kStopped);
}

TEST_F(CoordinatorTest, RanksHeldInTheExecutorsQueueAreNotSilent) {
  auto c = Open();
  const std::string id = Submit(*c, {"job.max_restarts=0"});
  c->TickForTest();
  executor_.status[100] = {ProcessStatus::kWaiting, 0, "Slurm job 7 is PENDING (Resources)"};
  now_ms_ += 600'000;  // far past the heartbeat timeout
  c->TickForTest();
  c->TickForTest();
  EXPECT_TRUE(executor_.signals.empty()) << "waiting is not silence";
  const JobView view = *c->Get(id);
  EXPECT_EQ(view.job.state, JobState::kPending);
  EXPECT_EQ(view.job.reason, "attempt 1 waits: Slurm job 7 is PENDING (Resources)");
  EXPECT_EQ(States(*c, id), (std::vector<std::string>{"QUEUED", "STARTING", "PENDING"}))
      << "one state event for the reason, not one per poll";
  // Once started, silence counts from then.
  executor_.status[100] = {ProcessStatus::kRunning, 0};
  c->TickForTest();
  EXPECT_EQ(c->Get(id)->job.state, JobState::kStarting);
  EXPECT_EQ(c->Get(id)->job.reason, "attempt 1: the scripted executor started its ranks");
  now_ms_ += 29'000;
  c->TickForTest();
  EXPECT_TRUE(executor_.signals.empty());
  now_ms_ += 2'000;
  c->TickForTest();
  EXPECT_FALSE(executor_.signals.empty());
}

TEST_F(CoordinatorTest, SilenceWhileTheDaemonItselfDidNotRunIsForgiven) {
  auto c = Open();
  const std::string id = Submit(*c, {"job.max_restarts=0"});
  c->TickForTest();
  ASSERT_TRUE(c->Register({id, 1, 0}, 100).ok());
  executor_.status[100] = {ProcessStatus::kRunning, 0};
  now_ms_ += 600'000;  // matbertd was stopped for ten minutes; the rank kept heartbeating
  c->ForgiveSilenceForTest(600'000);
  c->TickForTest();
  EXPECT_TRUE(executor_.signals.empty()) << "the silence was matbertd's, not the rank's";
  EXPECT_EQ(c->Get(id)->job.state, JobState::kRunning);
  // From then on, silence counts as usual.
  now_ms_ += 31'000;
  c->TickForTest();
  EXPECT_FALSE(executor_.signals.empty());
}

TEST_F(CoordinatorTest, QueueOrderAndBadSpecs) {
  auto c = Open(1);
  const std::string running = Submit(*c, {});
  c->TickForTest();
  for (int i = 0; i < 3; ++i) Submit(*c, {});
  auto view = c->Submit({spec_, {}, "test.toml"});
  ASSERT_TRUE(view.ok());  // default --max-queued is 10000
  EXPECT_EQ(c->Submit({spec_, {"job.gpus=2"}, "test.toml"}).status().code(),
            absl::StatusCode::kInvalidArgument);
  auto escape = c->Submit({spec_, {"matrix.dataset=../../etc"}, "test.toml"});
  EXPECT_EQ(escape.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(escape.status().message().find("matrix.dataset"), std::string::npos);
  EXPECT_EQ(c->Cluster().queue.size(), 4u);
  EXPECT_EQ(c->Get(running)->queue_position, 0);
}

// Polls `done` every 10 ms for up to `seconds`.
bool WaitFor(const std::function<bool()>& done, double seconds = 30) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (std::chrono::steady_clock::now() < until) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return done();
}

// The stalled controller: every Start and Poll (and fit check) takes 5 s. Reads,
// heartbeats and submissions answer meanwhile; the second job waits QUEUED naming the
// executor, and runs once it answers; nothing starts twice; no "did not run" warning.
TEST_F(CoordinatorTest, ReadsReportsAndSubmissionsDoNotWaitForAStalledExecutor) {
  std::atomic<int> delay_ms{0};
  DelayedExecutor slow(&executor_, [&] { return delay_ms.load(); });
  auto c = Open(/*devices=*/2, &slow, /*threads=*/true);
  const std::string first = Submit(*c, {"job.max_restarts=0"});
  delay_ms.store(5000);  // from here on, the start of `first` and every poll are slow
  ASSERT_TRUE(WaitFor([&] { return c->Get(first)->job.state == JobState::kStarting; }));
  std::this_thread::sleep_for(std::chrono::milliseconds(1200));  // past executor_stall_ms

  std::vector<double> ms;
  std::string second;
  for (int i = 0; i < 200; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    ASSERT_TRUE(c->Get(first).ok());
    ms.push_back(
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    if (i == 100) {
      const auto s0 = std::chrono::steady_clock::now();
      second = Submit(*c, {"job.max_restarts=0"});
      EXPECT_LT(std::chrono::steady_clock::now() - s0, std::chrono::milliseconds(500))
          << "the submission asked the stalled executor";
      const JobView queued = *c->Get(second);
      EXPECT_EQ(queued.job.state, JobState::kQueued);
      EXPECT_NE(queued.job.reason.find("waits for the scripted executor, which has not answered "
                                       "for "),
                std::string::npos)
          << queued.job.reason;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  std::sort(ms.begin(), ms.end());
  EXPECT_LT(ms[197], 50) << "p99 of GetJob while the executor sleeps";

  // The start returns; the rank registers and heartbeats while every poll sleeps.
  ASSERT_TRUE(WaitFor([&] { return executor_.Launched() == 1; }));
  for (int i = 0; i < 20; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    auto beat = i == 0 ? c->Register({first, 1, 0}, 100).status() : c->Heartbeat({first, 1, 0}, i);
    ASSERT_TRUE(beat.ok()) << beat;
    EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(50));
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(c->Get(first)->job.state, JobState::kRunning);
  EXPECT_EQ(c->Cluster().holders, std::vector<std::string>({first, ""}))
      << "the second job is not placed while the executor does not answer";
  EXPECT_FALSE(c->Cluster().executor_trouble.empty());

  delay_ms.store(0);
  ASSERT_TRUE(WaitFor([&] { return executor_.Launched() == 2; })) << "answers again: it starts";
  executor_.ExitAll(0);
  ASSERT_TRUE(WaitFor([&] {
    return c->Get(first)->job.state == JobState::kSucceeded &&
           c->Get(second)->job.state == JobState::kSucceeded;
  }));
  EXPECT_EQ(executor_.Launched(), 2u) << "nothing started twice";
  EXPECT_EQ(c->Get(first)->attempts.size(), 1u);
  EXPECT_EQ(c->ForgivenGapsForTest(), 0) << "a slow executor is not matbertd not running";
}

// Cancel arrives while the executor is inside Start (which holds no lock of the
// coordinator's: the cancel would deadlock otherwise). It is applied when the start returns.
TEST_F(CoordinatorTest, ACancelDuringTheStartIsAppliedWhenTheStartReturns) {
  auto c = Open();
  const std::string id = Submit(*c, {"job.gpus=2"});
  executor_.on_start = [&] {
    auto cancelled = c->Cancel(id, false);
    ASSERT_TRUE(cancelled.ok()) << cancelled.status();
    EXPECT_EQ(cancelled->job.state, JobState::kStarting);
  };
  c->TickForTest();
  ASSERT_EQ(executor_.launched.size(), 2u);
  c->TickForTest();
  EXPECT_EQ(executor_.signals, (std::vector<std::pair<pid_t, int>>{{100, SIGTERM}}));
  executor_.ExitAll(0);
  c->TickForTest();
  const JobView view = *c->Get(id);
  EXPECT_EQ(view.job.state, JobState::kCancelled);
  ASSERT_EQ(view.attempts.size(), 1u);
  EXPECT_EQ(view.attempts[0].state, JobState::kCancelled);
}

// A submission the executor could not check is accepted, and checked before it starts: one
// that can never run then fails, naming why, without a rank or a retry.
TEST_F(CoordinatorTest, AJobTheExecutorCouldNotCheckIsCheckedBeforeItStarts) {
  auto c = Open();
  executor_.fits = {absl::UnavailableError("cannot ask Slurm: timed out"),
                    absl::InvalidArgumentError("job.nodes = 1, job.gpus = 1: Slurm would never "
                                               "run it: Requested node configuration is not "
                                               "available")};
  const std::string id = Submit(*c, {"job.max_restarts=3"});
  const JobView queued = *c->Get(id);
  EXPECT_EQ(queued.job.state, JobState::kQueued);
  EXPECT_EQ(queued.job.reason,
            "waits for the scripted executor, which has not answered for 0 s (cannot ask Slurm: "
            "timed out)");
  c->TickForTest();  // the executor answers a ping: the job is placed
  c->TickForTest();  // and checked before anything starts
  const JobView view = *c->Get(id);
  EXPECT_EQ(view.job.state, JobState::kFailed);
  EXPECT_NE(view.job.failure.find("Requested node configuration is not available"),
            std::string::npos)
      << view.job.failure;
  EXPECT_EQ(view.attempts.size(), 1u) << "no retry of what can never run";
  EXPECT_TRUE(executor_.launched.empty());
}

// A start that got no answer (UNAVAILABLE, nothing started) uses no restart: the attempt
// stays placed and starts once the executor answers a ping.
TEST_F(CoordinatorTest, AStartWithoutAnAnswerIsMadeAgainOnceTheExecutorAnswers) {
  auto c = Open();
  executor_.unanswered_starts = 1;
  executor_.ping = absl::UnavailableError("controller is down");
  const std::string id = Submit(*c, {"job.max_restarts=0"});
  c->TickForTest();
  EXPECT_TRUE(executor_.launched.empty());
  JobView view = *c->Get(id);
  EXPECT_EQ(view.job.state, JobState::kStarting);
  EXPECT_EQ(view.job.reason,
            "attempt 1 waits for the scripted executor: sbatch did not get an answer: timed out");
  c->TickForTest();
  EXPECT_TRUE(executor_.launched.empty()) << "not while pings fail";
  executor_.ping = absl::OkStatus();
  now_ms_ += 1000;
  std::this_thread::sleep_for(std::chrono::milliseconds(2100));  // the ping interval
  c->TickForTest();
  ASSERT_EQ(executor_.launched.size(), 1u);
  ASSERT_TRUE(c->Register({id, 1, 0}, 100).ok());
  executor_.ExitAll(0);
  c->TickForTest();
  view = *c->Get(id);
  EXPECT_EQ(view.job.state, JobState::kSucceeded) << view.job.failure;
  EXPECT_EQ(view.attempts.size(), 1u);
}

// An executor call slower than executor_stall_ms: nothing new starts until a ping answers.
TEST_F(CoordinatorTest, NothingStartsUntilASlowExecutorAnswersAPing) {
  std::atomic<int> delay_ms{0};
  DelayedExecutor slow(&executor_, [&] { return delay_ms.load(); });
  auto c = Open(/*devices=*/2, &slow, /*threads=*/true);
  const std::string first = Submit(*c, {});
  ASSERT_TRUE(WaitFor([&] { return executor_.Launched() == 1; }));
  {
    std::lock_guard<std::mutex> lock(executor_.mu);
    executor_.ping = absl::UnavailableError("controller is down");
  }
  delay_ms.store(1500);  // one slow poll is enough
  std::this_thread::sleep_for(std::chrono::milliseconds(1700));
  delay_ms.store(0);
  const std::string second = Submit(*c, {});
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  EXPECT_EQ(executor_.Launched(), 1u);
  EXPECT_NE(c->Get(second)->job.reason.find(
                "waits for the scripted executor, which has not answered for "),
            std::string::npos)
      << c->Get(second)->job.reason;
  EXPECT_TRUE(WaitFor(
      [&] { return c->Get(second)->job.reason.find("controller is down") != std::string::npos; },
      5))
      << "the ping's own words: " << c->Get(second)->job.reason;
  {
    std::lock_guard<std::mutex> lock(executor_.mu);
    executor_.ping = absl::OkStatus();
  }
  EXPECT_TRUE(WaitFor([&] { return executor_.Launched() == 2; }, 10));
  EXPECT_TRUE(c->Cluster().executor_trouble.empty());
  (void)first;
}

}  // namespace
}  // namespace matbert
