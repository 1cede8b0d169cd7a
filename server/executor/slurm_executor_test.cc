// What the Slurm executor reads from scontrol, and what it makes of each Slurm job state.
// The executor against a real Slurm cluster is tests/test_slurm.py.
#include "server/executor/slurm_executor.h"

#include <signal.h>

#include "gtest/gtest.h"

namespace matbert {
namespace {

TEST(SlurmExecutor, ParsesScontrolsOneLiner) {
  // Trimmed from Slurm 22.05's `scontrol show job 7 --oneliner`.
  const SlurmJobInfo info = ParseScontrolJob(
      "JobId=7 JobName=matbert-k3x9qa-1 UserId=root(0) Priority=4294901754 JobState=FAILED "
      "Reason=NonZeroExitCode Dependency=(null) ExitCode=3:0 RunTime=00:00:04 "
      "NodeList=node[1-2] BatchHost=node1 NumNodes=2 NumCPUs=2\n");
  EXPECT_EQ(info.state, "FAILED");
  EXPECT_EQ(info.reason, "NonZeroExitCode");
  EXPECT_EQ(info.exit_code, 3);
  EXPECT_EQ(info.exit_signal, 0);
  EXPECT_EQ(info.node_list, "node[1-2]");
}

SlurmJobInfo Info(std::string state, std::string reason, int code, int signal) {
  SlurmJobInfo info;
  info.state = std::move(state);
  info.reason = std::move(reason);
  info.exit_code = code;
  info.exit_signal = signal;
  return info;
}

TEST(SlurmExecutor, EachSlurmStateBecomesARankStatus) {
  struct Scenario {
    SlurmJobInfo info;
    ProcessStatus::Kind kind;
    int code;
    std::string describe;
  };
  const std::vector<Scenario> scenarios = {
      {Info("PENDING", "Resources", 0, 0), ProcessStatus::kWaiting, 0,
       "Slurm job 7 is PENDING (Resources)"},
      {Info("CONFIGURING", "None", 0, 0), ProcessStatus::kWaiting, 0, "Slurm job 7 is CONFIGURING"},
      {Info("RUNNING", "None", 0, 0), ProcessStatus::kRunning, 0, "is running"},
      {Info("COMPLETING", "None", 0, 0), ProcessStatus::kRunning, 0, "is running"},
      {Info("COMPLETED", "None", 0, 0), ProcessStatus::kExited, 0, "exited with code 0"},
      {Info("FAILED", "NonZeroExitCode", 3, 0), ProcessStatus::kExited, 3,
       "ended with Slurm job 7: FAILED (NonZeroExitCode), exit code 3"},
      {Info("FAILED", "NonZeroExitCode", 0, 9), ProcessStatus::kSignaled, 9,
       "ended with Slurm job 7: FAILED (NonZeroExitCode)"},
      {Info("CANCELLED", "None", 0, 15), ProcessStatus::kSignaled, SIGTERM,
       "ended with Slurm job 7: CANCELLED"},
      {Info("NODE_FAIL", "NodeDown", 0, 0), ProcessStatus::kSignaled, SIGKILL,
       "ended with Slurm job 7: NODE_FAIL (NodeDown)"},
      {Info("TIMEOUT", "TimeLimit", 0, 0), ProcessStatus::kSignaled, SIGKILL,
       "ended with Slurm job 7: TIMEOUT (TimeLimit)"},
  };
  for (const Scenario& s : scenarios) {
    const ProcessStatus status = StatusOfSlurmJob("7", s.info);
    EXPECT_EQ(status.kind, s.kind) << s.info.state;
    EXPECT_EQ(status.code, s.code) << s.info.state;
    EXPECT_EQ(status.Describe(), s.describe);
  }
}

TEST(SlurmExecutor, SrunsLinesNameTheRanksThatFailedAndTheirNodes) {
  // As srun 22.05 writes them into the batch output.
  const std::map<int, ProcessStatus> tasks = ParseSrunTaskErrors(
      "step 40/100 | loss 0.3\n"
      "srun: error: node2: task 1: Killed\n"
      "srun: launch/slurm: _step_signal: Terminating StepId=9.0\n"
      "srun: error: node1: task 0: Exited with exit code 1\n"
      "srun: error: node3: tasks 4-5: Terminated\n"
      "srun: error: garbage without the parts\n");
  ASSERT_EQ(tasks.size(), 4u);
  EXPECT_EQ(tasks.at(1).kind, ProcessStatus::kSignaled);
  EXPECT_EQ(tasks.at(1).code, SIGKILL);
  EXPECT_EQ(tasks.at(1).Describe(), "on node node2 was killed by signal 9 (Killed)");
  EXPECT_EQ(tasks.at(0).kind, ProcessStatus::kExited);
  EXPECT_EQ(tasks.at(0).Describe(), "on node node1 exited with code 1");
  EXPECT_EQ(tasks.at(5).code, SIGTERM);
  EXPECT_TRUE(ParseSrunTaskErrors("").empty());
}

TEST(SlurmExecutor, AJobEndedFromOutsideBlamesSlurmNotTheRanksItInterrupted) {
  // scancel from outside while rank 1 was still connecting: srun reports its exit 1, but the
  // cause is the cancel (as seen in CI, where the rank's line hid it).
  const std::string output =
      "srun: error: mb201n2: task 1: Exited with exit code 1\n"
      "srun: error: mb201n1: task 0: Terminated\n";
  SlurmJobInfo cancelled;
  cancelled.state = "CANCELLED";
  cancelled.exit_signal = SIGTERM;
  for (const ProcessStatus& rank : StatusOfEndedRanks("15", cancelled, output, {0, 1})) {
    EXPECT_EQ(rank.kind, ProcessStatus::kSignaled);
    EXPECT_EQ(rank.Describe(), "ended with Slurm job 15: CANCELLED");
  }
  SlurmJobInfo node_fail;
  node_fail.state = "NODE_FAIL";
  node_fail.reason = "NodeDown";
  EXPECT_EQ(StatusOfEndedRanks("15", node_fail, output, {1})[0].Describe(),
            "ended with Slurm job 15: NODE_FAIL (NodeDown)");

  // A job that FAILED did so by its ranks: the ones srun names carry it, the rest ended clean.
  SlurmJobInfo failed;
  failed.state = "FAILED";
  failed.exit_code = 1;
  const std::vector<ProcessStatus> ranks =
      StatusOfEndedRanks("15", failed, "srun: error: mb201n2: task 1: Killed\n", {0, 1});
  ASSERT_EQ(ranks.size(), 2u);
  EXPECT_EQ(ranks[0].kind, ProcessStatus::kExited);
  EXPECT_EQ(ranks[0].code, 0);
  EXPECT_EQ(ranks[1].Describe(), "on node mb201n2 was killed by signal 9 (Killed)");
  // … and without srun's lines the job's own state speaks for all of them.
  EXPECT_EQ(StatusOfEndedRanks("15", failed, "", {0, 1})[1].Describe(),
            "ended with Slurm job 15: FAILED, exit code 1");
}

TEST(SlurmExecutor, ARankSrunCouldNotLaunchNamesItsLogFile) {
  // As srun 22.05 writes it when slurmstepd on the rank's node cannot open srun --output.
  const std::map<int, ProcessStatus> failed = ParseSrunLaunchFailures(
      "srun: error: task 1 launch failed: Slurmd could not connect IO\n"
      "srun: error: mb1n1: task 0: Terminated\n"
      "srun: error: task x launch failed: garbage\n",
      "/srv/runs/4/logs/rank-%t.log");
  ASSERT_EQ(failed.size(), 1u);
  EXPECT_EQ(failed.at(1).kind, ProcessStatus::kExited);
  EXPECT_EQ(failed.at(1).Describe(),
            "could not be launched by srun: Slurmd could not connect IO (as when its node "
            "cannot open /srv/runs/4/logs/rank-1.log: matbertd's state directory must be on a "
            "filesystem every node shares; docs/slurm.md)");
  EXPECT_TRUE(ParseSrunLaunchFailures("srun: error: mb1n2: task 1: Killed\n", "x").empty());
}

TEST(SlurmExecutor, AFailedJobWhoseOutputNeverAppearedNamesTheUnsharedStateDirectory) {
  SlurmJobInfo failed;
  failed.state = "FAILED";
  failed.exit_code = 1;
  failed.node_list = "node[1-2]";
  failed.std_out = "/srv/matbert/runs/4/logs/sbatch-1.log";
  EXPECT_EQ(StatusOfEndedRanks("15", failed, std::nullopt, {0})[0].Describe(),
            "ended with Slurm job 15: FAILED, exit code 1; its output "
            "/srv/matbert/runs/4/logs/sbatch-1.log never appeared here: the nodes of the job "
            "(node[1-2]) do not all see matbertd's state directory at the same path (it must "
            "be on a filesystem every node shares; docs/slurm.md)");
  // Cancelled before it ran: no output is expected, and none is blamed.
  SlurmJobInfo cancelled;
  cancelled.state = "CANCELLED";
  cancelled.std_out = failed.std_out;
  EXPECT_EQ(StatusOfEndedRanks("15", cancelled, std::nullopt, {0})[0].Describe(),
            "ended with Slurm job 15: CANCELLED");
}

TEST(SlurmExecutor, SinfoLinesBecomeNodesWithAllTheirPartitions) {
  const std::vector<ExecutorCluster::Node> nodes = ParseSinfoNodes(
      "node1|mixed|2|1/1/0/2|(null)|debug*\n"
      "node1|mixed|2|1/1/0/2|(null)|long\n"
      "gpu7|idle|64|0/64/0/64|gpu:8|gpu\n");
  ASSERT_EQ(nodes.size(), 2u);
  EXPECT_EQ(nodes[0].name, "node1");
  EXPECT_EQ(nodes[0].state, "mixed");
  EXPECT_EQ(nodes[0].cpus, 2);
  EXPECT_EQ(nodes[0].cpus_allocated, 1);
  EXPECT_EQ(nodes[0].partitions, (std::vector<std::string>{"debug", "long"}));
  EXPECT_EQ(nodes[1].gres, "gpu:8");
}

TEST(SlurmExecutor, TheStateDirectorysFilesystemIsNamedWhenLocal) {
  // /proc is procfs, neither listed as local nor shared: accepted.
  EXPECT_TRUE(CheckSharedFilesystem("/proc").ok());
  EXPECT_EQ(CheckSharedFilesystem("/nonexistent/state").code(), absl::StatusCode::kNotFound);
  // /dev/shm is tmpfs on Linux: refused, naming it.
  const absl::Status shm = CheckSharedFilesystem("/dev/shm");
  EXPECT_EQ(shm.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(shm.message().find("/dev/shm is on a local filesystem (tmpfs)"), std::string::npos)
      << shm;
}

TEST(SlurmExecutor, PriorityBecomesNiceInTheSameOrder) {
  EXPECT_EQ(SlurmNice(0), "--nice=1000");
  EXPECT_EQ(SlurmNice(1000), "--nice=0");
  EXPECT_EQ(SlurmNice(-1000), "--nice=2000");
  EXPECT_EQ(SlurmNice(5), "--nice=995");
}

}  // namespace
}  // namespace matbert
