// Scrape cost of /metrics with N running jobs' training series: a Coordinator with N CPU
// slots and N one-slot jobs (their ranks never start: an executor stand-in reports them
// running, the benchmark reports their metrics), then HTTP GETs of /metrics over loopback.
// Usage: metrics_bench [JOBS] [SCRAPES]
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "server/core/coordinator.h"
#include "server/metrics/metrics_endpoint.h"

namespace {

// Every rank runs forever and needs no signals: the jobs stay RUNNING.
class IdleExecutor : public matbert::Executor {
 public:
  Started Start(const matbert::AttemptPlan& plan) override {
    Started started;
    for (const matbert::RankLaunch& r : plan.ranks) started.workers.push_back({r.rank, 0, 0});
    return started;
  }
  std::vector<matbert::ProcessStatus> Poll(const matbert::AttemptRecord& a) override {
    return std::vector<matbert::ProcessStatus>(a.workers.size());
  }
  void Signal(const matbert::AttemptRecord&, int) override {}
  absl::Status Adopt(const matbert::AttemptRecord&) override { return absl::OkStatus(); }
};

// One HTTP/1.0 GET of /metrics; returns the body size.
size_t Scrape(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) return 0;
  const std::string request = "GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n";
  (void)!write(fd, request.data(), request.size());
  std::string response;
  char buf[65536];
  ssize_t n;
  while ((n = read(fd, buf, sizeof(buf))) > 0) response.append(buf, n);
  close(fd);
  return response.size();
}

}  // namespace

int main(int argc, char** argv) {
  const int jobs = argc > 1 ? std::atoi(argv[1]) : 100;
  const int scrapes = argc > 2 ? std::atoi(argv[2]) : 200;
  const std::string state = absl::StrCat("/tmp/matbert_metrics_bench_", getpid());
  matbert::CoordinatorOptions options;
  options.state_dir = state;
  options.worker_path = "/bin/true";
  options.heartbeat_timeout_s = 3600;
  for (int i = 0; i < jobs; ++i) {
    options.devices.push_back({absl::StrCat("cpu:", i), "cpu", i, "CPU slot", 0});
  }
  IdleExecutor executor;
  auto coordinator = matbert::Coordinator::Create(options, &executor);
  if (!coordinator.ok()) {
    std::fprintf(stderr, "%s\n", std::string(coordinator.status().message()).c_str());
    return 1;
  }
  const std::string spec = *matbert::ReadFileToString(std::string(MATBERT_SOURCE_DIR) +
                                                      "/configs/bert_matcomp_cpu.toml");
  std::vector<std::string> ids;
  for (int i = 0; i < jobs; ++i) {
    auto view =
        (*coordinator)->Submit({spec, {absl::StrCat("job.name=\"bench", i, "\"")}, "bench"});
    ids.push_back(view->job.id);
  }
  (*coordinator)->TickForTest();
  for (const std::string& id : ids) {
    matbert::WorkerKey key{id, 1, 0};
    (void)(*coordinator)->Register(key, 0);
    (void)(*coordinator)
        ->ReportMetrics(
            key, {{"train",
                   100,
                   {{"loss", 0.5},
                    {"grad_norm", 1.2},
                    {"lr", 3e-4},
                    {"tokens_per_second", 12345},
                    {"total_steps", 1000}}},
                  {"eval",
                   100,
                   {{"eval_rmse", 0.6}, {"baseline_mean_rmse", 1.0}, {"baseline_als_rmse", 0.2}}}});
  }
  matbert::EventMetrics events;
  auto endpoint = matbert::MetricsEndpoint::Create("127.0.0.1:0", coordinator->get(), &events, 600);
  if (!endpoint.ok()) return 1;
  const int port = (*endpoint)->port();
  std::vector<double> ms;
  size_t bytes = 0;
  for (int i = 0; i < scrapes; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    bytes = Scrape(port);
    ms.push_back(
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(ms.begin(), ms.end());
  std::printf("| running jobs | scrape body | median | p99 |\n| --- | --- | --- | --- |\n");
  std::printf("| %d | %.1f kB | %.2f ms | %.2f ms |\n", jobs, bytes / 1e3, ms[ms.size() / 2],
              ms[std::min(ms.size() - 1, ms.size() * 99 / 100)]);
  endpoint->reset();
  coordinator->reset();
  std::filesystem::remove_all(state);
  return 0;
}
