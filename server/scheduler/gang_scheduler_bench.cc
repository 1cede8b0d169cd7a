// Placement speed of GangScheduler: N queued jobs (random gang sizes and priorities) on a
// host of D devices, placed until the queue is empty, every running job finishing between
// rounds. Prints decisions per second. Usage: gang_scheduler_bench [N] [D]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "server/scheduler/gang_scheduler.h"

int main(int argc, char** argv) {
  const int jobs = argc > 1 ? std::atoi(argv[1]) : 10000;
  const int devices = argc > 2 ? std::atoi(argv[2]) : 8;
  std::mt19937 rng(1);
  matbert::GangScheduler scheduler(devices);
  std::vector<std::string> ids;
  for (int i = 0; i < jobs; ++i) ids.push_back("job" + std::to_string(i));

  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < jobs; ++i) {
    (void)scheduler.Enqueue(
        {ids[i], static_cast<int>(rng() % 4), i, 1 + static_cast<int>(rng() % devices)});
  }
  const auto t1 = std::chrono::steady_clock::now();
  int64_t placed = 0, rounds = 0;
  while (scheduler.queue_size() > 0) {
    const std::vector<matbert::Placement> round = scheduler.Schedule();
    placed += static_cast<int64_t>(round.size());
    ++rounds;
    for (const matbert::Placement& p : round) scheduler.Release(p.job_id);
  }
  const auto t2 = std::chrono::steady_clock::now();
  const double enqueue_s = std::chrono::duration<double>(t1 - t0).count();
  const double place_s = std::chrono::duration<double>(t2 - t1).count();
  std::printf("| jobs | devices | enqueue all | place all (%lld rounds) | decisions/s |\n",
              static_cast<long long>(rounds));
  std::printf("| --- | --- | --- | --- | --- |\n");
  std::printf("| %d | %d | %.1f ms | %.1f ms | %.0f |\n", jobs, devices, enqueue_s * 1e3,
              place_s * 1e3, placed / place_s);
  return placed == jobs ? 0 : 1;
}
