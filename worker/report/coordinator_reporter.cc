#include "worker/report/coordinator_reporter.h"

#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <variant>

#include "absl/strings/str_cat.h"
#include "common/dist_env.h"
#include "common/file_util.h"
#include "common/status_macros.h"
#include "matbert/v1/worker_service.grpc.pb.h"
#include "nlohmann/json.hpp"
#include "proto/metrics_convert.h"

namespace matbert {
namespace {

using Clock = std::chrono::steady_clock;
using Json = nlohmann::json;

// One queued call; delivered in order.
using Message =
    std::variant<v1::ReportMetricsRequest, v1::AnnounceCheckpointRequest, v1::ReportExitRequest>;

}  // namespace

struct CoordinatorReporter::Impl {
  std::string address;
  std::string token;  // MATBERT_TOKEN, sent as a bearer token when set
  v1::WorkerId id;
  std::unique_ptr<v1::WorkerService::Stub> stub;
  std::atomic<bool>* stop = nullptr;

  std::mutex mu;
  std::condition_variable cv;
  std::deque<Message> queue;  // guarded by mu
  bool finishing = false;     // guarded by mu
  bool done = false;          // guarded by mu: queue drained after Finish, or gave up
  bool quit = false;          // guarded by mu
  int64_t step = 0;           // guarded by mu
  std::thread thread;

  // Every call: a deadline, and the token when there is one.
  void Prepare(grpc::ClientContext& ctx) const {
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    if (!token.empty()) ctx.AddMetadata("authorization", "Bearer " + token);
  }

  grpc::Status Send(const Message& m) {
    grpc::ClientContext ctx;
    Prepare(ctx);
    v1::Ack ack;
    if (auto* r = std::get_if<v1::ReportMetricsRequest>(&m))
      return stub->ReportMetrics(&ctx, *r, &ack);
    if (auto* r = std::get_if<v1::AnnounceCheckpointRequest>(&m)) {
      return stub->AnnounceCheckpoint(&ctx, *r, &ack);
    }
    return stub->ReportExit(&ctx, std::get<v1::ReportExitRequest>(m), &ack);
  }

  // The attempt is no longer the job's: stop training; drop what is queued.
  void Abandon(const grpc::Status& status) {
    fprintf(stderr, "matbert-worker: coordinator: %s\n", status.error_message().c_str());
    if (stop != nullptr) stop->store(true);
    std::lock_guard<std::mutex> lock(mu);
    queue.clear();
    done = true;
    cv.notify_all();
  }

  void Run() {
    int interval_ms = 2000;
    bool registered = false;
    auto next_heartbeat = Clock::now();
    int backoff_ms = 100;
    while (true) {
      {
        std::unique_lock<std::mutex> lock(mu);
        cv.wait_until(lock, next_heartbeat, [&] { return quit || (!queue.empty() && registered); });
        if (quit) return;
      }
      grpc::Status status;
      if (!registered) {
        grpc::ClientContext ctx;
        Prepare(ctx);
        v1::RegisterRequest request;
        *request.mutable_worker() = id;
        request.set_pid(getpid());
        v1::RegisterResponse response;
        status = stub->Register(&ctx, request, &response);
        if (status.ok()) {
          registered = true;
          if (response.heartbeat_interval_ms() > 0) interval_ms = response.heartbeat_interval_ms();
          next_heartbeat = Clock::now() + std::chrono::milliseconds(interval_ms);
        }
      } else if (Clock::now() >= next_heartbeat) {
        grpc::ClientContext ctx;
        Prepare(ctx);
        v1::HeartbeatRequest request;
        *request.mutable_worker() = id;
        {
          std::lock_guard<std::mutex> lock(mu);
          request.set_step(step);
        }
        v1::HeartbeatResponse response;
        status = stub->Heartbeat(&ctx, request, &response);
        if (status.ok()) next_heartbeat = Clock::now() + std::chrono::milliseconds(interval_ms);
      } else {
        Message message;
        {
          std::lock_guard<std::mutex> lock(mu);
          message = queue.front();
        }
        status = Send(message);
        if (status.ok()) {
          std::lock_guard<std::mutex> lock(mu);
          queue.pop_front();
          if (finishing && queue.empty()) done = true;
          cv.notify_all();
        }
      }
      if (status.error_code() == grpc::StatusCode::FAILED_PRECONDITION ||
          status.error_code() == grpc::StatusCode::NOT_FOUND ||
          status.error_code() == grpc::StatusCode::UNAUTHENTICATED) {
        Abandon(status);
        return;
      }
      if (!status.ok()) {
        // The daemon is away (restarting?) or slow: try again later, keep everything queued.
        std::this_thread::sleep_for(std::chrono::milliseconds(backoff_ms));
        backoff_ms = std::min(backoff_ms * 2, 2000);
      } else {
        backoff_ms = 100;
      }
    }
  }
};

CoordinatorReporter::CoordinatorReporter(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

CoordinatorReporter::~CoordinatorReporter() {
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    impl_->quit = true;
  }
  impl_->cv.notify_all();
  if (impl_->thread.joinable()) impl_->thread.join();
}

absl::StatusOr<std::unique_ptr<CoordinatorReporter>> CoordinatorReporter::FromEnvironment() {
  ASSIGN_OR_RETURN(std::optional<CoordinatorEnv> env, ReadCoordinatorEnv());
  if (!env.has_value()) return nullptr;  // run by hand
  ASSIGN_OR_RETURN(DistEnv dist, ReadDistEnv());
  auto impl = std::make_unique<Impl>();
  impl->address = env->address;
  impl->token = env->token;
  impl->id.set_job_id(env->job_id);
  impl->id.set_attempt(env->attempt);
  impl->id.set_rank(dist.rank);
  // MATBERT_TLS_CA: matbertd serves TLS with this certificate (it is its own CA).
  std::shared_ptr<grpc::ChannelCredentials> credentials = grpc::InsecureChannelCredentials();
  if (!env->tls_ca.empty()) {
    absl::StatusOr<std::string> pem = ReadFileToString(env->tls_ca);
    if (!pem.ok())
      return absl::InvalidArgumentError(absl::StrCat("MATBERT_TLS_CA: ", pem.status().message()));
    grpc::SslCredentialsOptions tls;
    tls.pem_root_certs = *pem;
    credentials = grpc::SslCredentials(tls);
  }
  impl->stub = v1::WorkerService::NewStub(grpc::CreateChannel(impl->address, credentials));
  return std::unique_ptr<CoordinatorReporter>(new CoordinatorReporter(std::move(impl)));
}

void CoordinatorReporter::Start(std::atomic<bool>* stop) {
  impl_->stop = stop;
  impl_->thread = std::thread([impl = impl_.get()] { impl->Run(); });
}

void CoordinatorReporter::OnRecord(const std::string& json_line) {
  Message message;
  std::string kind;
  int64_t step = 0;
  if (std::optional<MetricsRecord> record = ParseMetricsLine(json_line)) {
    kind = record->kind;
    step = record->step;
    v1::ReportMetricsRequest request;
    *request.mutable_worker() = impl_->id;
    ToProto(*record, request.add_records());
    message = std::move(request);
  } else {
    // Not metrics: a checkpoint announcement, or nothing to report.
    const Json line = Json::parse(json_line, nullptr, false);
    if (!line.is_object() || line.value("kind", "") != "checkpoint") return;
    v1::AnnounceCheckpointRequest request;
    *request.mutable_worker() = impl_->id;
    request.mutable_checkpoint()->set_step(line.value("step", int64_t{0}));
    request.mutable_checkpoint()->set_path(line.value("path", ""));
    message = std::move(request);
  }
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    if (kind == "train") impl_->step = std::max(impl_->step, step);
    impl_->queue.push_back(std::move(message));
  }
  impl_->cv.notify_all();
}

void CoordinatorReporter::Finish(int exit_code, const std::string& message, RunEnd run_end,
                                 double timeout_s) {
  v1::ReportExitRequest request;
  *request.mutable_worker() = impl_->id;
  request.set_exit_code(exit_code);
  request.set_message(message);
  request.set_run_end(ToProto(run_end));
  std::unique_lock<std::mutex> lock(impl_->mu);
  if (impl_->done) return;
  impl_->queue.push_back(std::move(request));
  impl_->finishing = true;
  impl_->cv.notify_all();
  if (!impl_->cv.wait_for(lock, std::chrono::duration<double>(timeout_s),
                          [&] { return impl_->done; })) {
    fprintf(stderr,
            "matbert-worker: could not reach the coordinator at %s for %.0f s; %zu reports "
            "were not delivered\n",
            impl_->address.c_str(), timeout_s, impl_->queue.size());
  }
}

}  // namespace matbert
