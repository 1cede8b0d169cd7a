#include "server/executor/slurm_executor.h"

#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>

#include <algorithm>
#include <chrono>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/dist_env.h"
#include "common/file_util.h"
#include "server/executor/command.h"

namespace matbert {
namespace {

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// A word for a POSIX shell: single-quoted, with ' written as '\''.
std::string ShellWord(const std::string& word) {
  std::string out = "'";
  for (char c : word) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

// The rank variables srun gives each rank itself (from SLURM_*), which the plan's
// environment must not override; CUDA_VISIBLE_DEVICES is Slurm's to set (--gres).
bool IsPerRankEntry(const std::string& entry) {
  for (const char* name : {kEnvRank, kEnvLocalRank, kEnvWorldSize, kEnvLocalWorldSize,
                           kEnvMasterAddr, kEnvMasterPort, kEnvCudaVisibleDevices}) {
    if (absl::StartsWith(entry, absl::StrCat(name, "="))) return true;
  }
  return false;
}

// The first line of a command's error output, for messages.
std::string FirstLine(const CommandResult& r) {
  std::string text = r.err.empty() ? r.out : r.err;
  text = std::string(absl::StripAsciiWhitespace(text));
  return text.substr(0, text.find('\n'));
}

}  // namespace

bool SlurmControllerUnreachable(const std::string& output) {
  for (const char* words :
       {"Socket timed out", "Unable to contact slurm controller", "Connection refused",
        "Zero Bytes were transmitted", "Communication connection failure"}) {
    if (absl::StrContains(output, words)) return true;
  }
  return false;
}

SlurmJobInfo ParseScontrolJob(const std::string& line) {
  SlurmJobInfo info;
  for (absl::string_view word : absl::StrSplit(line, absl::ByAnyChar(" \n"), absl::SkipEmpty())) {
    const size_t eq = word.find('=');
    if (eq == absl::string_view::npos) continue;
    absl::string_view key = word.substr(0, eq), value = word.substr(eq + 1);
    if (key == "JobState") info.state = std::string(value);
    if (key == "Reason") info.reason = std::string(value);
    if (key == "NodeList") info.node_list = std::string(value);
    if (key == "StdOut") info.std_out = std::string(value);
    if (key == "ExitCode") {
      std::pair<std::string, std::string> parts = absl::StrSplit(value, ':');
      (void)absl::SimpleAtoi(parts.first, &info.exit_code);
      (void)absl::SimpleAtoi(parts.second, &info.exit_signal);
    }
  }
  return info;
}

ProcessStatus StatusOfSlurmJob(const std::string& job_id, const SlurmJobInfo& info) {
  const std::string& s = info.state;
  if (s == "PENDING" || s == "CONFIGURING") {
    return {ProcessStatus::kWaiting, 0,
            absl::StrCat("Slurm job ", job_id, " is ", s,
                         info.reason.empty() || info.reason == "None"
                             ? ""
                             : absl::StrCat(" (", info.reason, ")"))};
  }
  if (s == "RUNNING" || s == "COMPLETING" || s == "SUSPENDED" || s == "REQUEUED" ||
      s == "RESIZING" || s == "SIGNALING" || s == "STAGE_OUT") {
    ProcessStatus running;
    running.where = info.node_list == "(null)" ? "" : info.node_list;
    return running;
  }
  if (s == "COMPLETED") return {ProcessStatus::kExited, 0};
  // Read after "rank N ": "rank 0 ended with Slurm job 7: NODE_FAIL (NodeDown)".
  const std::string where = absl::StrCat(
      "ended with Slurm job ", job_id, ": ", s,
      info.reason.empty() || info.reason == "None" ? "" : absl::StrCat(" (", info.reason, ")"));
  if (s == "FAILED" && info.exit_signal == 0) {
    return {ProcessStatus::kExited, info.exit_code == 0 ? 1 : info.exit_code,
            absl::StrCat(where, ", exit code ", info.exit_code)};
  }
  // CANCELLED (scancel, from matbertd or from outside), NODE_FAIL, TIMEOUT, OUT_OF_MEMORY,
  // PREEMPTED, BOOT_FAIL, DEADLINE: ended by something other than the ranks themselves.
  return {ProcessStatus::kSignaled, info.exit_signal > 0 ? info.exit_signal : SIGKILL, where};
}

std::map<int, ProcessStatus> ParseSrunTaskErrors(const std::string& output) {
  std::map<int, ProcessStatus> out;
  for (absl::string_view line : absl::StrSplit(output, '\n')) {
    // srun: error: <node>: task <t>: <what>   |   srun: error: <node>: tasks <a>-<b>: <what>
    if (!absl::ConsumePrefix(&line, "srun: error: ")) continue;
    std::vector<absl::string_view> parts = absl::StrSplit(line, absl::MaxSplits(": ", 2));
    if (parts.size() != 3) continue;
    absl::string_view node = parts[0], tasks = parts[1], what = parts[2];
    if (!absl::ConsumePrefix(&tasks, "tasks ") && !absl::ConsumePrefix(&tasks, "task ")) continue;
    ProcessStatus status;
    int code = 0;
    if (absl::ConsumePrefix(&what, "Exited with exit code ") && absl::SimpleAtoi(what, &code)) {
      status = {ProcessStatus::kExited, code};
    } else {
      int signal = SIGKILL;
      for (int s = 1; s < 32; ++s) {
        if (what == strsignal(s)) signal = s;
      }
      status = {ProcessStatus::kSignaled, signal};
    }
    status.why = absl::StrCat("on node ", node, " ", status.Describe());
    for (absl::string_view range : absl::StrSplit(tasks, ',')) {
      std::pair<absl::string_view, absl::string_view> ends =
          absl::StrSplit(range, absl::MaxSplits('-', 1));
      int first = 0, last = 0;
      if (!absl::SimpleAtoi(ends.first, &first)) continue;
      if (ends.second.empty() || !absl::SimpleAtoi(ends.second, &last)) last = first;
      for (int t = first; t <= last && t - first < 100000; ++t) out.emplace(t, status);
    }
  }
  return out;
}

std::map<int, ProcessStatus> ParseSrunLaunchFailures(const std::string& output,
                                                     const std::string& log_pattern) {
  std::map<int, ProcessStatus> out;
  for (absl::string_view line : absl::StrSplit(output, '\n')) {
    // srun: error: task 1 launch failed: Slurmd could not connect IO
    if (!absl::ConsumePrefix(&line, "srun: error: task ")) continue;
    std::pair<absl::string_view, absl::string_view> parts =
        absl::StrSplit(line, absl::MaxSplits(" launch failed: ", 1));
    int task = 0;
    if (parts.second.empty() || !absl::SimpleAtoi(parts.first, &task)) continue;
    // The usual cause on a working cluster: slurmstepd cannot open the rank's output file
    // (srun --output) because the node does not see the run directory.
    out.emplace(
        task,
        ProcessStatus{ProcessStatus::kExited, 1,
                      absl::StrCat("could not be launched by srun: ", parts.second,
                                   " (as when its node cannot open ",
                                   absl::StrReplaceAll(log_pattern, {{"%t", absl::StrCat(task)}}),
                                   ": matbertd's state directory must be on a "
                                   "filesystem every node shares; docs/slurm.md)")});
  }
  return out;
}

std::vector<ProcessStatus> StatusOfEndedRanks(const std::string& job_id, const SlurmJobInfo& info,
                                              const std::optional<std::string>& batch_output,
                                              const std::vector<int>& ranks) {
  ProcessStatus job = StatusOfSlurmJob(job_id, info);
  if (info.state == "FAILED" && !batch_output.has_value() && !info.std_out.empty()) {
    // The node that ran the batch script wrote its output into the run directory, or would
    // have: that it never appeared here means the nodes do not share matbertd's state
    // directory, and nothing the ranks could say will reach it either.
    absl::StrAppend(&job.why, "; its output ", info.std_out,
                    " never appeared here: the nodes of the job (",
                    info.node_list.empty() ? "?" : info.node_list,
                    ") do not all see matbertd's state directory at the same path (it must be "
                    "on a filesystem every node shares; docs/slurm.md)");
  }
  // Only a job that FAILED ended by its ranks' doing; CANCELLED, NODE_FAIL, TIMEOUT and the
  // like ended from outside, and what srun says of the ranks then is the consequence (a rank
  // interrupted while it connects exits 1), not the cause.
  const std::map<int, ProcessStatus> tasks = info.state == "FAILED" && batch_output.has_value()
                                                 ? ParseSrunTaskErrors(*batch_output)
                                                 : std::map<int, ProcessStatus>{};
  std::vector<ProcessStatus> out;
  for (int rank : ranks) {
    if (tasks.empty()) {
      out.push_back(job);
      continue;
    }
    // srun names the ranks that failed; the others ended as it stopped them.
    auto it = tasks.find(rank);
    out.push_back(it != tasks.end() ? it->second : ProcessStatus{ProcessStatus::kExited, 0});
  }
  return out;
}

// srun --output's name for each rank's log, beside the batch output in the run's logs/.
constexpr char kRankLogPattern[] = "rank-%t.log";

std::string SlurmNice(int priority) {
  // A larger nice is a lower priority, and only an operator may go below 0.
  return absl::StrCat("--nice=", 1000 - std::clamp(priority, -1000, 1000));
}

std::vector<std::string> SlurmExecutor::SbatchArgs(int nodes, int ranks_per_node) const {
  // --no-requeue: a failed attempt is retried by matbertd, from its newest checkpoint, as a
  // new Slurm job; Slurm requeueing the same one behind its back would hide the failure.
  std::vector<std::string> args = {"sbatch", "--parsable", "--no-requeue",
                                   absl::StrCat("--nodes=", nodes),
                                   absl::StrCat("--ntasks-per-node=", ranks_per_node)};
  if (!options_.partition.empty()) args.push_back("--partition=" + options_.partition);
  if (!options_.account.empty()) args.push_back("--account=" + options_.account);
  if (options_.gpus) args.push_back(absl::StrCat("--gres=gpu:", ranks_per_node));
  args.insert(args.end(), options_.sbatch_args.begin(), options_.sbatch_args.end());
  return args;
}

Executor::Started SlurmExecutor::Start(const AttemptPlan& plan) {
  Started started;
  if (plan.ranks.empty()) return started;
  const int nodes = std::max(1, plan.nodes);
  const int per_node = static_cast<int>(plan.ranks.size()) / nodes;
  // The batch script holds only paths matbertd made (the worker, the run directory); the
  // spec's values reach the ranks through spec.toml, never through a shell.
  std::vector<std::string> words;
  for (const std::string& a : plan.ranks[0].argv) words.push_back(ShellWord(a));
  const std::string script_path = absl::StrCat(plan.run_dir, "/attempt-", plan.attempt, ".sbatch");
  const std::string script = absl::StrCat(
      "#!/bin/sh\n# matbertd: job ", plan.job_id, " attempt ", plan.attempt, ", ", nodes,
      " node(s) x ", per_node, " rank(s)\n",
      "exec srun --kill-on-bad-exit=1 --open-mode=append --output=",
      ShellWord(plan.run_dir + "/logs/" + kRankLogPattern), " ", absl::StrJoin(words, " "), "\n");
  if (absl::Status s = WriteFileAtomically(script_path, script); !s.ok()) {
    started.status = s;
    return started;
  }
  ::chmod(script_path.c_str(), 0755);
  for (const RankLaunch& rank : plan.ranks) (void)AppendToFile(rank.log_path, rank.log_header);

  std::vector<std::string> env;
  for (const std::string& e : plan.ranks[0].env) {
    if (!IsPerRankEntry(e)) env.push_back(e);
  }
  std::vector<std::string> argv = SbatchArgs(nodes, per_node);
  argv.insert(argv.end(),
              {SlurmNice(plan.priority),
               absl::StrCat("--job-name=matbert-", plan.job_id, "-", plan.attempt),
               "--chdir=" + plan.run_dir,
               absl::StrCat("--output=", plan.run_dir, "/logs/sbatch-", plan.attempt, ".log"),
               script_path});
  const std::string name = absl::StrCat("matbert-", plan.job_id, "-", plan.attempt);
  bool maybe_submitted;
  {
    std::lock_guard<std::mutex> lock(mu_);
    maybe_submitted = maybe_submitted_.contains(name);
  }
  if (maybe_submitted) {
    // An earlier sbatch of this attempt did not answer, yet may have reached Slurm: never
    // submit it twice.
    absl::StatusOr<CommandResult> q =
        RunCommand({"squeue", "-h", "-n", name, "-o", "%i"}, {}, 5000);
    if (!q.ok() || q->exit_code != 0) {
      started.status = absl::UnavailableError(absl::StrCat(
          "cannot ask Slurm whether ", name,
          " was submitted: ", q.ok() ? FirstLine(*q) : std::string(q.status().message())));
      return started;
    }
    const std::string found(absl::StripAsciiWhitespace(q->out.substr(0, q->out.find('\n'))));
    std::lock_guard<std::mutex> lock(mu_);
    maybe_submitted_.erase(name);
    if (!found.empty()) {
      started.executor_ref = found;
      for (const RankLaunch& rank : plan.ranks) started.workers.push_back({rank.rank, 0, 0});
      return started;
    }
  }
  absl::StatusOr<CommandResult> r = RunCommand(argv, env);
  if (!r.ok() || (r->exit_code != 0 && SlurmControllerUnreachable(r->err + r->out))) {
    // No answer (or a timeout, after which the job may still arrive): ask before the next try.
    std::lock_guard<std::mutex> lock(mu_);
    maybe_submitted_.insert(name);
    started.status = absl::UnavailableError(
        absl::StrCat("sbatch did not get an answer from Slurm's controller: ",
                     r.ok() ? FirstLine(*r) : std::string(r.status().message())));
    return started;
  }
  if (r->exit_code != 0) {
    started.status =
        absl::FailedPreconditionError(absl::StrCat("sbatch refused the attempt: ", FirstLine(*r)));
    return started;
  }
  started.executor_ref =
      std::string(absl::StripAsciiWhitespace(r->out.substr(0, r->out.find(';'))));
  for (const RankLaunch& rank : plan.ranks) started.workers.push_back({rank.rank, 0, 0});
  return started;
}

std::vector<ProcessStatus> SlurmExecutor::Poll(const AttemptRecord& attempt) {
  const std::string& id = attempt.executor_ref;
  ProcessStatus status;
  RetrySignal(id);
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = seen_.find(id);
    if (it != seen_.end() && NowMs() - it->second.at_ms < options_.poll_interval_ms) {
      return std::vector<ProcessStatus>(attempt.workers.size(), it->second.status);
    }
  }
  if (id.empty()) {
    status = {ProcessStatus::kGone, 0, "no Slurm job was submitted"};
  } else {
    absl::StatusOr<CommandResult> r =
        RunCommand({"scontrol", "show", "job", id, "--oneliner"}, {}, 10000);
    if (r.ok() && r->exit_code == 0) {
      const SlurmJobInfo info = ParseScontrolJob(r->out);
      status = StatusOfSlurmJob(id, info);
      if (status.kind == ProcessStatus::kRunning && !info.std_out.empty()) {
        // A rank srun could not launch leaves the job RUNNING with the others waiting for it;
        // srun says so at once in the batch output.
        absl::StatusOr<std::string> output = ReadFileToString(info.std_out);
        const std::string dir = info.std_out.substr(0, info.std_out.rfind('/') + 1);
        const std::map<int, ProcessStatus> failed =
            output.ok() ? ParseSrunLaunchFailures(*output, dir + kRankLogPattern)
                        : std::map<int, ProcessStatus>{};
        if (!failed.empty()) {
          std::vector<ProcessStatus> ranks;
          for (const WorkerProcess& w : attempt.workers) {
            auto it = failed.find(w.rank);
            ranks.push_back(it != failed.end() ? it->second : ProcessStatus{});
          }
          return ranks;
        }
      }
      if (status.kind != ProcessStatus::kRunning && status.kind != ProcessStatus::kWaiting) {
        absl::StatusOr<std::string> output = ReadFileToString(info.std_out);
        std::vector<int> ranks;
        for (const WorkerProcess& w : attempt.workers) ranks.push_back(w.rank);
        return StatusOfEndedRanks(
            id, info, output.ok() ? std::optional<std::string>(*output) : std::nullopt, ranks);
      }
    } else if (r.ok() && absl::StrContains(r->err, "Invalid job id")) {
      // Forgotten by Slurm (MinJobAge passed): how it ended can no longer be learnt.
      status = {ProcessStatus::kGone, 0,
                absl::StrCat("Slurm job ", id, " is no longer known to Slurm")};
    } else {
      // scontrol failing otherwise (slurmctld stopped or restarting) says nothing of the
      // job: what was known holds, and the next poll asks again.
      return std::vector<ProcessStatus>(
          attempt.workers.size(),
          ProcessStatus{ProcessStatus::kUnknown, 0,
                        absl::StrCat("scontrol: ",
                                     r.ok() ? FirstLine(*r) : std::string(r.status().message()))});
    }
  }
  std::lock_guard<std::mutex> lock(mu_);
  seen_[id] = {NowMs(), status};
  if (status.kind != ProcessStatus::kRunning && status.kind != ProcessStatus::kWaiting) {
    seen_.erase(id);
  }
  return std::vector<ProcessStatus>(attempt.workers.size(), status);
}

void SlurmExecutor::Signal(const AttemptRecord& attempt, int signal) {
  if (attempt.executor_ref.empty()) return;
  // SIGTERM to the ranks (the job steps), so that the trainer checkpoints and exits; any
  // other signal ends the whole job, as scancel does (SIGTERM, then SIGKILL after KillWait).
  std::vector<std::string> argv = {"scancel"};
  if (signal == SIGTERM) argv.push_back("--signal=TERM");
  argv.push_back(attempt.executor_ref);
  absl::StatusOr<CommandResult> r = RunCommand(argv, {}, 10000);
  std::lock_guard<std::mutex> lock(mu_);
  seen_.erase(attempt.executor_ref);  // look again at once
  if (!r.ok() || (r->exit_code != 0 && SlurmControllerUnreachable(r->err + r->out))) {
    // Not delivered: sent again before each poll of the job until it is. A KILL outranks a
    // TERM still waiting.
    int& waiting = unsent_signals_[attempt.executor_ref];
    if (waiting != SIGKILL) waiting = signal;
  } else {
    unsent_signals_.erase(attempt.executor_ref);
  }
}

void SlurmExecutor::RetrySignal(const std::string& slurm_job) {
  int signal = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = unsent_signals_.find(slurm_job);
    if (it == unsent_signals_.end()) return;
    signal = it->second;
  }
  AttemptRecord attempt;
  attempt.executor_ref = slurm_job;
  Signal(attempt, signal);
}

absl::Status SlurmExecutor::Adopt(const AttemptRecord& attempt) {
  (void)attempt;  // the Slurm job id is all Poll and Signal need
  return absl::OkStatus();
}

absl::Status CheckSharedFilesystem(const std::string& dir) {
  struct statfs fs;
  if (::statfs(dir.c_str(), &fs) != 0) return ErrnoStatus(errno, "cannot inspect", dir);
  // linux/magic.h and the file systems' own headers.
  struct Kind {
    unsigned long magic;
    const char* name;
    bool shared;
  };
  static constexpr Kind kKinds[] = {
      {0x6969, "nfs", true},        {0xFF534D42, "cifs", true},   {0x0BD00BD0, "lustre", true},
      {0x47504653, "gpfs", true},   {0x00C36400, "ceph", true},   {0x19830326, "beegfs", true},
      {0x65735546, "fuse", true},   {0xEF53, "ext2/3/4", false},  {0x58465342, "xfs", false},
      {0x9123683E, "btrfs", false}, {0x01021994, "tmpfs", false}, {0x794C7630, "overlayfs", false},
      {0x2FC12FC1, "zfs", false},
  };
  for (const Kind& k : kKinds) {
    if (static_cast<unsigned long>(fs.f_type) != k.magic) continue;
    if (k.shared) return absl::OkStatus();
    return absl::FailedPreconditionError(
        absl::StrCat(dir, " is on a local filesystem (", k.name,
                     "); Slurm's nodes must see the state "
                     "directory at the same path (NFS, Lustre, GPFS, CephFS, BeeGFS, …)"));
  }
  return absl::OkStatus();  // unknown: give it the benefit of the doubt
}

std::vector<ExecutorCluster::Node> ParseSinfoNodes(const std::string& output) {
  std::vector<ExecutorCluster::Node> nodes;
  for (absl::string_view line : absl::StrSplit(output, '\n', absl::SkipWhitespace())) {
    std::vector<std::string> f = absl::StrSplit(absl::StripAsciiWhitespace(line), '|');
    if (f.size() != 6) continue;
    std::string partition = f[5];
    if (absl::EndsWith(partition, "*")) partition.pop_back();  // the default partition
    if (!nodes.empty() && nodes.back().name == f[0]) {         // the same node in another partition
      nodes.back().partitions.push_back(partition);
      continue;
    }
    ExecutorCluster::Node node;
    node.name = f[0];
    node.state = f[1];
    (void)absl::SimpleAtoi(f[2], &node.cpus);
    (void)absl::SimpleAtoi(f[3].substr(0, f[3].find('/')), &node.cpus_allocated);  // A/I/O/T
    node.gres = f[4];
    node.partitions.push_back(partition);
    nodes.push_back(std::move(node));
  }
  return nodes;
}

ExecutorCluster SlurmExecutor::DescribeCluster() {
  ExecutorCluster cluster;
  cluster.backend = "slurm";
  std::vector<std::string> sinfo = {"sinfo", "-h", "-N", "-o", "%N|%T|%c|%C|%G|%P"};
  if (!options_.partition.empty()) sinfo.push_back("--partition=" + options_.partition);
  if (absl::StatusOr<CommandResult> r = RunCommand(sinfo, {}, 5000); r.ok() && r->exit_code == 0) {
    cluster.nodes = ParseSinfoNodes(r->out);
  }
  absl::StatusOr<CommandResult> q = RunCommand({"squeue", "-h", "-o", "%i|%j|%T|%r|%N"}, {}, 5000);
  if (q.ok() && q->exit_code == 0) {
    for (absl::string_view line : absl::StrSplit(q->out, '\n', absl::SkipWhitespace())) {
      std::vector<std::string> f = absl::StrSplit(absl::StripAsciiWhitespace(line), '|');
      if (f.size() == 5) cluster.queue.push_back({f[0], f[1], f[2], f[3], f[4]});
    }
  }
  return cluster;
}

absl::Status SlurmExecutor::Ping() {
  absl::StatusOr<CommandResult> r = RunCommand({"scontrol", "ping"}, {}, 3000);
  if (r.ok() && r->exit_code == 0 && absl::StrContains(r->out, " is UP")) return absl::OkStatus();
  return absl::UnavailableError(
      absl::StrCat("Slurm's controller does not answer (scontrol ping: ",
                   r.ok() ? FirstLine(*r) : std::string(r.status().message()), ")"));
}

absl::Status SlurmExecutor::CheckFits(int nodes, int ranks_per_node) {
  std::vector<std::string> argv = SbatchArgs(nodes, ranks_per_node);
  argv.insert(argv.end(), {"--test-only", "--wrap=true"});
  // A healthy controller answers at once; one that does not is no reason to refuse the job.
  absl::StatusOr<CommandResult> r = RunCommand(argv, {}, 3000);
  if (!r.ok())
    return absl::UnavailableError(absl::StrCat("cannot ask Slurm: ", r.status().message()));
  if (r->exit_code != 0 && SlurmControllerUnreachable(r->err + r->out)) {
    return absl::UnavailableError(absl::StrCat("cannot ask Slurm: ", FirstLine(*r)));
  }
  if (r->exit_code != 0) {
    return absl::InvalidArgumentError(absl::StrCat("job.nodes = ", nodes,
                                                   ", job.gpus = ", ranks_per_node,
                                                   ": Slurm would never run it: ", FirstLine(*r)));
  }
  return absl::OkStatus();
}

}  // namespace matbert
