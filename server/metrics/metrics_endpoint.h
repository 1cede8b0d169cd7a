// matbertd's Prometheus endpoint (DESIGN.md §9, docs/metrics.md): `/metrics` on
// --metrics-addr, served by prometheus-cpp. The scheduler's state and the jobs' training
// series are read from the Coordinator at each scrape; RPC counts come from a gRPC server
// interceptor, scheduling latencies from the coordinator's hook. Training series of a job
// disappear `retention` after it ended, so the number of series stays bounded.
#pragma once

#include <grpcpp/support/server_interceptor.h>
#include <prometheus/metric_family.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "server/core/coordinator.h"

namespace prometheus {
class Exposer;
class Registry;
class Collectable;
template <typename T>
class Family;
class Counter;
class Histogram;
}  // namespace prometheus

namespace matbert {

// The metrics matbertd updates as things happen (the rest is read at scrape time).
// Thread-safe.
class EventMetrics {
 public:
  EventMetrics();
  ~EventMetrics();
  std::shared_ptr<prometheus::Registry> registry() const { return registry_; }
  // One finished RPC: method "/matbert.v1.JobService/SubmitJob", its status code.
  void CountRpc(const std::string& method, grpc::StatusCode code);
  // Seconds from a job's submission to the start of its first attempt.
  void ObserveScheduling(double seconds);
  // For ServerBuilder::experimental().SetInterceptorCreators.
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>>
  InterceptorFactories();

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Counter>* rpcs_;
  prometheus::Histogram* scheduling_;
};

class MetricsEndpoint {
 public:
  // Serves /metrics on `address` ("host:port"). `coordinator` and `events` must outlive it.
  static absl::StatusOr<std::unique_ptr<MetricsEndpoint>> Create(const std::string& address,
                                                                 const Coordinator* coordinator,
                                                                 const EventMetrics* events,
                                                                 double retention_s);
  ~MetricsEndpoint();
  // The port it listens on (useful with port 0).
  int port() const;

 private:
  MetricsEndpoint() = default;
  std::unique_ptr<prometheus::Exposer> exposer_;
  std::shared_ptr<prometheus::Collectable> collector_;
};

// The families a scrape returns from the coordinator's state (exposed for tests/benchmarks).
std::vector<prometheus::MetricFamily> CollectCoordinatorMetrics(const Coordinator& coordinator,
                                                                double retention_s);

}  // namespace matbert
