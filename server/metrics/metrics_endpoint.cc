#include "server/metrics/metrics_endpoint.h"

#include <prometheus/collectable.h>
#include <prometheus/counter.h>
#include <prometheus/exposer.h>
#include <prometheus/family.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "server/core/devices.h"

namespace matbert {
namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

MetricFamily Gauges(const std::string& name, const std::string& help) {
  return {name, help, MetricType::Gauge, {}};
}

void AddGauge(MetricFamily& family, std::vector<ClientMetric::Label> labels, double value) {
  ClientMetric metric;
  metric.label = std::move(labels);
  metric.gauge.value = value;
  family.metric.push_back(std::move(metric));
}

// Reads the coordinator at every scrape.
class CoordinatorCollector : public prometheus::Collectable {
 public:
  CoordinatorCollector(const Coordinator* coordinator, double retention_s)
      : coordinator_(coordinator), retention_s_(retention_s) {}
  std::vector<MetricFamily> Collect() const override {
    return CollectCoordinatorMetrics(*coordinator_, retention_s_);
  }

 private:
  const Coordinator* coordinator_;
  double retention_s_;
};

class RpcCountInterceptor : public grpc::experimental::Interceptor {
 public:
  RpcCountInterceptor(std::string method, EventMetrics* metrics)
      : method_(std::move(method)), metrics_(metrics) {}
  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(
            grpc::experimental::InterceptionHookPoints::PRE_SEND_STATUS)) {
      metrics_->CountRpc(method_, methods->GetSendStatus().error_code());
    }
    methods->Proceed();
  }

 private:
  std::string method_;
  EventMetrics* metrics_;
};

class RpcCountFactory : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit RpcCountFactory(EventMetrics* metrics) : metrics_(metrics) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    return new RpcCountInterceptor(info->method(), metrics_);
  }

 private:
  EventMetrics* metrics_;
};

}  // namespace

std::vector<MetricFamily> CollectCoordinatorMetrics(const Coordinator& coordinator,
                                                    double retention_s) {
  const MetricsSnapshot m = coordinator.Metrics(static_cast<int64_t>(retention_s * 1000));
  std::vector<MetricFamily> out;

  MetricFamily jobs = Gauges("matbert_jobs", "Jobs known to matbertd, by state");
  for (const auto& [state, count] : m.jobs_by_state) AddGauge(jobs, {{"state", state}}, count);
  out.push_back(std::move(jobs));
  MetricFamily queue = Gauges("matbert_queue_depth", "Jobs waiting for devices");
  AddGauge(queue, {}, m.queue_depth);
  out.push_back(std::move(queue));
  MetricFamily total = Gauges("matbert_devices", "Devices matbertd schedules (GPUs or CPU slots)");
  AddGauge(total, {}, m.devices_total);
  out.push_back(std::move(total));
  MetricFamily allocated = Gauges("matbert_devices_allocated", "Devices held by jobs");
  AddGauge(allocated, {}, m.devices_allocated);
  out.push_back(std::move(allocated));

  // Training series, labelled by job ("job" itself is Prometheus's scrape label).
  struct Series {
    const char* name;
    const char* help;
    const char* key;  // in the train record
  };
  static const Series kTrain[] = {
      {"matbert_train_step", "Last training step reported by rank 0", "step"},
      {"matbert_train_loss", "Training loss (mean over the last logging window)", "loss"},
      {"matbert_train_grad_norm", "Gradient norm before clipping", "grad_norm"},
      {"matbert_train_learning_rate", "Learning rate", "lr"},
      {"matbert_train_tokens_per_second", "Tokens per second, all ranks", "tokens_per_second"},
  };
  for (const Series& series : kTrain) {
    MetricFamily family = Gauges(series.name, series.help);
    for (const MetricsSnapshot::Job& job : m.jobs) {
      auto it = job.train.find(series.key);
      if (it != job.train.end()) {
        AddGauge(family, {{"job_id", job.id}, {"job_name", job.name}}, it->second);
      }
    }
    out.push_back(std::move(family));
  }
  MetricFamily rmse = Gauges("matbert_eval_masked_rmse",
                             "RMSE of the model on the masked entries of the held-out set");
  MetricFamily baseline =
      Gauges("matbert_eval_baseline_rmse",
             "RMSE of a baseline on the same entries (baseline=mean|als|soft_impute)");
  for (const MetricsSnapshot::Job& job : m.jobs) {
    auto value = [&](const char* key) {
      auto it = job.eval.find(key);
      return it == job.eval.end() ? std::optional<double>() : it->second;
    };
    if (auto v = value("eval_rmse"))
      AddGauge(rmse, {{"job_id", job.id}, {"job_name", job.name}}, *v);
    for (const char* name : {"mean", "als", "soft_impute"}) {
      if (auto v = value(absl::StrCat("baseline_", name, "_rmse").c_str())) {
        AddGauge(baseline, {{"baseline", name}, {"job_id", job.id}, {"job_name", job.name}}, *v);
      }
    }
  }
  out.push_back(std::move(rmse));
  out.push_back(std::move(baseline));

  const std::vector<GpuUsage> gpus = NvmlUsage();
  if (!gpus.empty()) {
    MetricFamily util = Gauges("matbert_gpu_utilization_ratio", "GPU busy fraction (NVML)");
    MetricFamily used = Gauges("matbert_gpu_memory_used_bytes", "GPU memory in use (NVML)");
    MetricFamily mem_total = Gauges("matbert_gpu_memory_total_bytes", "GPU memory (NVML)");
    for (const GpuUsage& g : gpus) {
      const std::string device = absl::StrCat("gpu:", g.index);
      AddGauge(util, {{"device", device}}, g.utilization);
      AddGauge(used, {{"device", device}}, static_cast<double>(g.memory_used_bytes));
      AddGauge(mem_total, {{"device", device}}, static_cast<double>(g.memory_total_bytes));
    }
    out.push_back(std::move(util));
    out.push_back(std::move(used));
    out.push_back(std::move(mem_total));
  }
  return out;
}

EventMetrics::EventMetrics() : registry_(std::make_shared<prometheus::Registry>()) {
  rpcs_ = &prometheus::BuildCounter()
               .Name("matbert_rpc_requests_total")
               .Help("gRPC calls answered by matbertd, by method and status code")
               .Register(*registry_);
  scheduling_ = &prometheus::BuildHistogram()
                     .Name("matbert_scheduling_latency_seconds")
                     .Help("Time from a job's submission to the start of its first attempt")
                     .Register(*registry_)
                     .Add({}, prometheus::Histogram::BucketBoundaries{
                                  0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5, 30, 60, 300, 1800,
                                  3600, 4 * 3600, 24 * 3600});
}

EventMetrics::~EventMetrics() = default;

void EventMetrics::CountRpc(const std::string& method, grpc::StatusCode code) {
  const std::string name(absl::StripPrefix(method, "/"));
  rpcs_
      ->Add({{"method", name},
             {"code", absl::StatusCodeToString(static_cast<absl::StatusCode>(code))}})
      .Increment();
}

void EventMetrics::ObserveScheduling(double seconds) { scheduling_->Observe(seconds); }

std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>>
EventMetrics::InterceptorFactories() {
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> out;
  out.push_back(std::make_unique<RpcCountFactory>(this));
  return out;
}

absl::StatusOr<std::unique_ptr<MetricsEndpoint>> MetricsEndpoint::Create(
    const std::string& address, const Coordinator* coordinator, const EventMetrics* events,
    double retention_s) {
  std::unique_ptr<MetricsEndpoint> endpoint(new MetricsEndpoint());
  try {
    endpoint->exposer_ = std::make_unique<prometheus::Exposer>(address);
  } catch (const std::exception& e) {
    return absl::UnavailableError(
        absl::StrCat("--metrics-addr ", address, ": cannot listen: ", e.what()));
  }
  endpoint->collector_ = std::make_shared<CoordinatorCollector>(coordinator, retention_s);
  endpoint->exposer_->RegisterCollectable(endpoint->collector_);
  endpoint->exposer_->RegisterCollectable(events->registry());
  return endpoint;
}

MetricsEndpoint::~MetricsEndpoint() = default;

int MetricsEndpoint::port() const {
  const std::vector<int> ports = exposer_->GetListeningPorts();
  return ports.empty() ? 0 : ports[0];
}

}  // namespace matbert
