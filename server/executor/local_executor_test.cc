// The local executor with real child processes: environment, logs, the attempt's process
// group, and ranks that are not our children (adopted after a restart).
#include "server/executor/local_executor.h"

#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "gtest/gtest.h"

namespace matbert {
namespace {

std::string TempDir() {
  const std::string dir =
      std::filesystem::path(absl::StrCat(testing::TempDir(), "/local_executor_test_", getpid()))
          .lexically_normal()
          .string();
  std::filesystem::create_directories(dir);
  return dir;
}

RankLaunch Shell(int rank, const std::string& script, const std::string& log) {
  RankLaunch r;
  r.rank = rank;
  r.argv = {"/bin/sh", "-c", script};
  r.env = {"PATH=/usr/bin:/bin", "GREETING=hello from env"};
  r.log_path = log;
  r.log_header = absl::StrCat("=== rank ", rank, " ===\n");
  return r;
}

AttemptPlan Plan(std::vector<RankLaunch> ranks) {
  AttemptPlan plan;
  plan.job_id = "job1";
  plan.attempt = 1;
  plan.run_dir = TempDir();
  plan.ranks = std::move(ranks);
  return plan;
}

AttemptRecord Attempt(const std::vector<WorkerProcess>& workers) {
  AttemptRecord a;
  a.job_id = "job1";
  a.number = 1;
  a.workers = workers;
  return a;
}

// Polls until every rank has ended (or 5 s have passed).
std::vector<ProcessStatus> WaitAll(LocalExecutor& executor, const AttemptRecord& attempt) {
  std::vector<ProcessStatus> last(attempt.workers.size());
  for (int i = 0; i < 500; ++i) {
    for (size_t r = 0; r < attempt.workers.size(); ++r) {
      if (last[r].kind != ProcessStatus::kRunning) continue;
      AttemptRecord one = attempt;
      one.workers = {attempt.workers[r]};
      last[r] = executor.Poll(one)[0];
    }
    bool done = true;
    for (const ProcessStatus& s : last) done = done && s.kind != ProcessStatus::kRunning;
    if (done) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return last;
}

TEST(LocalExecutor, RunsEachRankWithItsEnvironmentAndAppendsToItsLog) {
  LocalExecutor executor;
  const std::string dir = TempDir();
  const std::string log = dir + "/rank-0.log";
  std::filesystem::remove(log);
  ASSERT_TRUE(WriteFileAtomically(log, "earlier line\n").ok());
  AttemptPlan plan = Plan({Shell(0, "echo \"$GREETING\" in $(pwd); echo oops >&2; exit 3", log)});
  plan.run_dir = dir;
  Executor::Started started = executor.Start(plan);
  ASSERT_TRUE(started.status.ok()) << started.status;
  ASSERT_EQ(started.workers.size(), 1u);
  EXPECT_GT(started.workers[0].start_ticks, 0);
  const std::vector<ProcessStatus> s = WaitAll(executor, Attempt(started.workers));
  EXPECT_EQ(s[0].kind, ProcessStatus::kExited);
  EXPECT_EQ(s[0].code, 3);
  EXPECT_EQ(s[0].Describe(), "exited with code 3");
  EXPECT_EQ(*ReadFileToString(log),
            absl::StrCat("earlier line\n=== rank 0 ===\nhello from env in ", dir, "\noops\n"));
}

TEST(LocalExecutor, RanksShareRankZerosGroupAndOneSignalReachesAll) {
  LocalExecutor executor;
  const std::string dir = TempDir();
  Executor::Started started = executor.Start(
      Plan({Shell(0, "exec sleep 30", dir + "/a.log"), Shell(1, "exec sleep 30", dir + "/b.log")}));
  ASSERT_TRUE(started.status.ok());
  ASSERT_EQ(started.workers.size(), 2u);
  const pid_t leader = started.workers[0].pid;
  EXPECT_EQ(getpgid(leader), leader);
  EXPECT_EQ(getpgid(started.workers[1].pid), leader);
  EXPECT_NE(getpgid(leader), getpgrp()) << "ranks must not share the daemon's group";
  const AttemptRecord attempt = Attempt(started.workers);
  for (const ProcessStatus& s : executor.Poll(attempt)) EXPECT_EQ(s.kind, ProcessStatus::kRunning);
  executor.Signal(attempt, SIGTERM);
  for (const ProcessStatus& s : WaitAll(executor, attempt)) {
    EXPECT_EQ(s.kind, ProcessStatus::kSignaled);
    EXPECT_EQ(s.code, SIGTERM);
  }
}

TEST(LocalExecutor, FollowsAdoptedRanksThatAreNotItsChildren) {
  LocalExecutor executor;
  const std::string dir = TempDir();
  // The shell starts a sleeper and exits: the sleeper is re-parented away from us, like the
  // ranks of a daemon that restarted.
  const std::string pid_file = dir + "/sleeper.pid";
  Executor::Started parent = executor.Start(
      Plan({Shell(0, absl::StrCat("sleep 30 & echo $! > ", pid_file), dir + "/c.log")}));
  ASSERT_TRUE(parent.status.ok());
  ASSERT_EQ(WaitAll(executor, Attempt(parent.workers))[0].kind, ProcessStatus::kExited);
  const pid_t sleeper = std::stoi(*ReadFileToString(pid_file));
  const AttemptRecord adopted = Attempt({{0, sleeper, ProcessStartTicks(sleeper)}});
  ASSERT_GT(adopted.workers[0].start_ticks, 0);
  ASSERT_TRUE(executor.Adopt(adopted).ok());
  EXPECT_EQ(executor.Poll(adopted)[0].kind, ProcessStatus::kRunning);
  AttemptRecord reused = adopted;
  reused.workers[0].start_ticks += 1;  // same pid, another process
  EXPECT_EQ(executor.Poll(reused)[0].kind, ProcessStatus::kGone);
  ::kill(sleeper, SIGKILL);
  EXPECT_EQ(WaitAll(executor, adopted)[0].kind, ProcessStatus::kGone);
}

TEST(LocalExecutor, ARankThatCannotStartIsNamedAndTheStartedOnesAreReturned) {
  LocalExecutor executor;
  const std::string dir = TempDir();
  RankLaunch missing = Shell(1, "", dir + "/e.log");
  missing.argv = {"/nonexistent/matbert-worker"};
  Executor::Started started =
      executor.Start(Plan({Shell(0, "exec sleep 30", dir + "/d.log"), missing}));
  ASSERT_FALSE(started.status.ok());
  EXPECT_EQ(started.status.message().substr(0, 21), "cannot start rank 1: ");
  EXPECT_NE(started.status.message().find("/nonexistent/matbert-worker"), std::string::npos);
  ASSERT_EQ(started.workers.size(), 1u) << "rank 0 started and must be stopped by the caller";
  executor.Signal(Attempt(started.workers), SIGKILL);
  EXPECT_EQ(WaitAll(executor, Attempt(started.workers))[0].code, SIGKILL);
}

}  // namespace
}  // namespace matbert
