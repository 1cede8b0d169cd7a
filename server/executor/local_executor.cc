#include "server/executor/local_executor.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"

namespace matbert {

std::string ProcessStatus::Describe() const {
  if (!why.empty()) return why;
  switch (kind) {
    case kRunning:
      return "is running";
    case kWaiting:
      return "waits to start";
    case kExited:
      return absl::StrCat("exited with code ", code);
    case kSignaled:
      return absl::StrCat("was killed by signal ", code, " (", strsignal(code), ")");
    case kGone:
      return "ended (exit status unknown)";
    case kUnknown:
      return "is in a state the executor cannot say now";
  }
  return "?";
}

namespace {

// State letter and start time (field 3 and 22 of /proc/<pid>/stat); ticks -1 if unreadable.
struct ProcStat {
  char state = '?';
  int64_t start_ticks = -1;
};

ProcStat ReadProcStat(pid_t pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/stat"));
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  // "pid (comm) S ppid …": comm may hold spaces and parentheses, so parse after the last ')'.
  const size_t close = text.rfind(')');
  ProcStat stat;
  if (close == std::string::npos || close + 2 >= text.size()) return stat;
  std::istringstream fields(text.substr(close + 2));
  std::string field;
  for (int i = 3; i <= 22 && fields >> field; ++i) {
    if (i == 3) stat.state = field[0];
    if (i == 22) stat.start_ticks = std::stoll(field);
  }
  return stat;
}

// Starts one process: stdin from /dev/null, stdout and stderr appended to `log_path`, in
// process group `group` (0: a new group it leads), with default signal handling.
absl::StatusOr<pid_t> Spawn(const RankLaunch& launch, const std::string& cwd, pid_t group) {
  if (launch.argv.empty()) return absl::InvalidArgumentError("empty argv");
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, launch.log_path.c_str(),
                                   O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  if (!cwd.empty()) posix_spawn_file_actions_addchdir_np(&actions, cwd.c_str());

  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none, defaults;
  sigemptyset(&none);
  sigemptyset(&defaults);
  for (int s : {SIGTERM, SIGINT, SIGPIPE, SIGCHLD, SIGHUP}) sigaddset(&defaults, s);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  posix_spawnattr_setpgroup(&attr, group);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
                                      POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_USEVFORK);

  std::vector<char*> argv, envp;
  for (const std::string& a : launch.argv) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  for (const std::string& e : launch.env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);

  pid_t pid = 0;
  const int rc = posix_spawn(&pid, argv[0], &actions, &attr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) return ErrnoStatus(rc, "cannot start", launch.argv[0]);
  return pid;
}

ProcessStatus PollOne(const WorkerProcess& process) {
  int status = 0;
  const pid_t r = waitpid(process.pid, &status, WNOHANG);
  if (r == process.pid) {
    if (WIFEXITED(status)) return {ProcessStatus::kExited, WEXITSTATUS(status)};
    if (WIFSIGNALED(status)) return {ProcessStatus::kSignaled, WTERMSIG(status)};
    return {};
  }
  if (r == 0) return {};  // our child, still running
  // Not our child (adopted after a daemon restart): alive if the same process still exists.
  const ProcStat stat = ReadProcStat(process.pid);
  const bool same = stat.start_ticks >= 0 &&
                    (process.start_ticks <= 0 || stat.start_ticks == process.start_ticks);
  if (same && stat.state != 'Z') return {};
  return {ProcessStatus::kGone, 0};
}

}  // namespace

int64_t ProcessStartTicks(pid_t pid) { return ReadProcStat(pid).start_ticks; }

Executor::Started LocalExecutor::Start(const AttemptPlan& plan) {
  Started started;
  pid_t group = 0;
  for (const RankLaunch& launch : plan.ranks) {
    (void)AppendToFile(launch.log_path, launch.log_header);
    absl::StatusOr<pid_t> pid = Spawn(launch, plan.run_dir, group);
    if (!pid.ok()) {
      started.status = absl::Status(
          pid.status().code(),
          absl::StrCat("cannot start rank ", launch.rank, ": ", pid.status().message()));
      break;
    }
    if (group == 0) group = *pid;
    started.workers.push_back({launch.rank, *pid, ProcessStartTicks(*pid)});
  }
  return started;
}

std::vector<ProcessStatus> LocalExecutor::Poll(const AttemptRecord& attempt) {
  std::vector<ProcessStatus> statuses;
  for (const WorkerProcess& w : attempt.workers) statuses.push_back(PollOne(w));
  return statuses;
}

void LocalExecutor::Signal(const AttemptRecord& attempt, int signal) {
  if (attempt.workers.empty()) return;
  const pid_t group = attempt.workers[0].pid;  // rank 0 leads the attempt's group
  if (group > 1) ::kill(-group, signal);       // never init's group or our own by mistake
}

absl::Status LocalExecutor::Adopt(const AttemptRecord& attempt) {
  (void)attempt;  // Poll follows non-children through /proc; nothing to set up.
  return absl::OkStatus();
}

}  // namespace matbert
