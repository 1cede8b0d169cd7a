// The live attempt as a state machine, in pure code: what the coordinator knows of an
// attempt and its ranks (LiveAttempt, RankLive), and how each fact changes it — the start's
// outcome, a poll, a registration, the clock, a stop. Each transition returns what follows
// (AttemptEffects: signals to send, a state to record, the attempt's end) for the coordinator
// to carry out; nothing here does I/O, takes a lock or reads a clock. The scenarios are in
// attempt_machine_test.cc.
//
//   placed ──Started──▶ STARTING ──Polled: waiting──▶ PENDING ──Polled: running──▶ STARTING
//     │                   │  └──Registered (all)──▶ RUNNING                          │
//     └─Stop (remembered) └──Stop / Timers (silence) / Polled (a rank failed): SIGTERM…
//                            …Timers (grace over): SIGKILL … Polled (all ended): finished
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "server/executor/executor.h"
#include "server/store/job_record.h"

namespace matbert {

// What the coordinator knows of a rank of the live attempt, beside its WorkerProcess.
struct RankLive {
  bool registered = false;
  int64_t last_heartbeat_ms = 0;  // or when it was started, before it registered
  bool ended = false;
  bool waiting = false;       // the last poll found it held in the executor's queue
  bool seen_running = false;  // a poll found it running (its executor answered)
  bool reported_exit = false;
  int reported_code = 0;
  std::string reported_message;
  int64_t reported_at_ms = 0;  // when its ReportExit arrived
};

struct LiveAttempt {
  AttemptRecord record;         // record.workers: what the executor started, by rank
  std::vector<RankLive> ranks;  // one per worker
  int grace_period_s = 30;      // SIGTERM → SIGKILL on a stop that is not forced
  bool launching = false;       // placed; its Start has not returned yet (no workers)
  bool start_taken = false;     // the executor thread has taken the start
  bool never_fits = false;      // CheckFits refused it: the job fails without a retry
  std::vector<int> devices;     // placed on these (indices into the coordinator's devices)
  bool stopping = false;        // SIGTERM decided
  bool killed = false;          // SIGKILL decided
  int64_t kill_at_ms = 0;       // when to send SIGKILL
  std::string failure;          // first cause of failure; empty if none
  std::string waiting;          // why the executor has not started the ranks yet, if it said
  std::string where;            // where the executor runs the ranks, once it said (Slurm's nodes)
};

struct AttemptEffects {
  std::vector<int> signals;       // to every process of the attempt, in this order
  std::optional<JobState> state;  // the job's new state, with `reason`
  std::string reason;             // the job's reason (also without a new state)
  std::string warning;            // for the daemon's log
  bool save = false;              // the attempt record changed: store it
  bool finished = false;          // every rank has ended: finish the attempt

  // `later` after these: signals appended, its state and reason winning.
  void Merge(AttemptEffects later);
};

// A stop with `failure` (the first one given is kept): SIGTERM once, and SIGKILL at once
// when `force`, else after the grace period (Timers). While the start is in flight the stop
// is only remembered; Started sends it.
AttemptEffects Stop(LiveAttempt& live, const std::string& failure, bool force, int64_t now_ms);

struct StartOutcome {
  std::vector<WorkerProcess> workers;  // those that started, by rank
  std::string executor_ref;
  int64_t resumed_from_step = 0;
  std::string failure;      // "" = every rank started
  bool never_fits = false;  // the executor's fit check refused it
};
// The start returned: STARTING with `starting_reason`; a failed start stops at once, and a
// stop remembered during the start is sent now. No rank started: finished.
AttemptEffects Started(LiveAttempt& live, StartOutcome outcome, const std::string& starting_reason,
                       int64_t now_ms);

// A poll's statuses, by rank. `job_state` is the job's now; `executor` names the executor in
// reasons ("Slurm's controller"). Waiting ranks make the job PENDING with the executor's
// reason (once per reason), and STARTING again when none waits; ranks that ended in this
// poll may fail the attempt (attempt_policy's FailureOf); all ended: finished.
AttemptEffects Polled(LiveAttempt& live, const std::vector<ProcessStatus>& statuses,
                      JobState job_state, const std::string& executor, int64_t now_ms);

// A rank registered (or heartbeat first after an adoption): RUNNING once all have, from
// STARTING or PENDING, unless the attempt stops.
AttemptEffects Registered(LiveAttempt& live, int rank, JobState job_state, int64_t now_ms);

// The clock: a rank silent for longer than `heartbeat_timeout_s` stops the attempt at once —
// only ranks that registered or that a poll saw running can be silent; a stop's grace period
// running out sends SIGKILL.
AttemptEffects Timers(LiveAttempt& live, int64_t now_ms, int heartbeat_timeout_s);

}  // namespace matbert
