// A fault injector: an Executor that sleeps before each call it passes on to another, so that
// tests and benchmarks can see what a slow executor (a stopped slurmctld) does to matbertd.
// matbertd builds one with --inject-executor-delay-file; nothing else should.
#pragma once

#include <chrono>
#include <functional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "server/executor/executor.h"

namespace matbert {

// Thread-safe when `inner` and `delay_ms` are; the delay may change while calls run.
class DelayedExecutor : public Executor {
 public:
  // `inner` must outlive this. `delay_ms` is asked before each Start, Poll, CheckFits and
  // Ping (what a stalled controller slows) for the milliseconds to sleep; Signal, Adopt and
  // DescribeCluster pass straight on.
  DelayedExecutor(Executor* inner, std::function<int()> delay_ms)
      : inner_(inner), delay_ms_(std::move(delay_ms)) {}

  std::string Name() const override { return inner_->Name(); }
  absl::Status Ping() override {
    Sleep();
    return inner_->Ping();
  }
  Started Start(const AttemptPlan& plan) override {
    Sleep();
    return inner_->Start(plan);
  }
  std::vector<ProcessStatus> Poll(const AttemptRecord& attempt) override {
    Sleep();
    return inner_->Poll(attempt);
  }
  void Signal(const AttemptRecord& attempt, int signal) override {
    inner_->Signal(attempt, signal);
  }
  absl::Status Adopt(const AttemptRecord& attempt) override { return inner_->Adopt(attempt); }
  ExecutorCluster DescribeCluster() override { return inner_->DescribeCluster(); }
  absl::Status CheckFits(int nodes, int ranks_per_node) override {
    Sleep();
    return inner_->CheckFits(nodes, ranks_per_node);
  }

 private:
  void Sleep() const {
    if (int ms = delay_ms_(); ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  }

  Executor* const inner_;
  const std::function<int()> delay_ms_;
};

}  // namespace matbert
