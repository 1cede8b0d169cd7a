#include "server/launcher/process_launcher.h"

#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "gtest/gtest.h"

namespace matbert {
namespace {

std::string TempDir() {
  std::string dir = absl::StrCat(testing::TempDir(), "/launcher_test_", getpid());
  std::filesystem::create_directories(dir);
  return dir;
}

SpawnRequest Shell(const std::string& script, const std::string& log) {
  SpawnRequest r;
  r.argv = {"/bin/sh", "-c", script};
  r.env = {"PATH=/usr/bin:/bin", "GREETING=hello from env"};
  r.log_path = log;
  return r;
}

ProcessStatus WaitFor(ProcessLauncher& launcher, const WorkerProcess& p) {
  for (int i = 0; i < 500; ++i) {
    ProcessStatus s = launcher.Poll(p);
    if (s.kind != ProcessStatus::kRunning) return s;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return {};
}

TEST(PosixProcessLauncher, RunsWithGivenEnvironmentAndAppendsOutputToLog) {
  PosixProcessLauncher launcher;
  const std::string log = TempDir() + "/rank-0.log";
  std::filesystem::remove(log);
  ASSERT_TRUE(WriteFileAtomically(log, "earlier line\n").ok());
  auto p = launcher.Spawn(Shell("echo \"$GREETING\"; echo oops >&2; exit 3", log));
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_GT(p->start_ticks, 0);
  ProcessStatus s = WaitFor(launcher, *p);
  EXPECT_EQ(s.kind, ProcessStatus::kExited);
  EXPECT_EQ(s.code, 3);
  EXPECT_EQ(s.Describe(), "exited with code 3");
  EXPECT_EQ(*ReadFileToString(log), "earlier line\nhello from env\noops\n");
}

TEST(PosixProcessLauncher, GroupSignalReachesEveryMember) {
  PosixProcessLauncher launcher;
  const std::string dir = TempDir();
  auto leader = launcher.Spawn(Shell("exec sleep 30", dir + "/a.log"));
  ASSERT_TRUE(leader.ok());
  SpawnRequest second = Shell("exec sleep 30", dir + "/b.log");
  second.process_group = leader->pid;
  auto member = launcher.Spawn(second);
  ASSERT_TRUE(member.ok());
  EXPECT_EQ(getpgid(member->pid), leader->pid);
  EXPECT_NE(getpgid(leader->pid), getpgrp()) << "workers must not share the daemon's group";
  ASSERT_TRUE(launcher.SignalGroup(leader->pid, SIGTERM));
  for (const auto& p : {*leader, *member}) {
    ProcessStatus s = WaitFor(launcher, p);
    EXPECT_EQ(s.kind, ProcessStatus::kSignaled);
    EXPECT_EQ(s.code, SIGTERM);
  }
  EXPECT_FALSE(launcher.SignalGroup(leader->pid, SIGTERM)) << "group is gone";
}

TEST(PosixProcessLauncher, WatchesProcessesThatAreNotItsChildren) {
  PosixProcessLauncher launcher;
  const std::string dir = TempDir();
  // The shell starts a sleeper and exits: the sleeper is re-parented away from us, like the
  // workers of a daemon that restarted.
  const std::string pid_file = dir + "/sleeper.pid";
  auto parent = launcher.Spawn(Shell("sleep 30 & echo $! > " + pid_file, dir + "/c.log"));
  ASSERT_TRUE(parent.ok());
  ASSERT_EQ(WaitFor(launcher, *parent).kind, ProcessStatus::kExited);
  const pid_t sleeper = std::stoi(*ReadFileToString(pid_file));
  WorkerProcess adopted{0, sleeper, ProcessStartTicks(sleeper)};
  ASSERT_GT(adopted.start_ticks, 0);
  EXPECT_EQ(launcher.Poll(adopted).kind, ProcessStatus::kRunning);
  WorkerProcess reused = adopted;
  reused.start_ticks += 1;  // same pid, another process
  EXPECT_EQ(launcher.Poll(reused).kind, ProcessStatus::kGone);
  ::kill(sleeper, SIGKILL);
  EXPECT_EQ(WaitFor(launcher, adopted).kind, ProcessStatus::kGone);
}

TEST(PosixProcessLauncher, MissingProgramIsAnErrorNamingIt) {
  PosixProcessLauncher launcher;
  SpawnRequest r;
  r.argv = {"/nonexistent/matbert-worker"};
  r.log_path = TempDir() + "/d.log";
  auto p = launcher.Spawn(r);
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.status().message().find("/nonexistent/matbert-worker"), std::string::npos);
}

}  // namespace
}  // namespace matbert
