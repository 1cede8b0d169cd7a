#include "server/worker_service.h"

#include "common/status_macros.h"
#include "proto/metrics_convert.h"
#include "server/rpc_call.h"

namespace matbert {
namespace {

WorkerKey KeyOf(const v1::WorkerId& id) { return {id.job_id(), id.attempt(), id.rank()}; }

}  // namespace

grpc::ServerUnaryReactor* WorkerServiceImpl::Register(grpc::CallbackServerContext* ctx,
                                                      const v1::RegisterRequest* request,
                                                      v1::RegisterResponse* response) {
  return UnaryCall(ctx, *auth_, [&](const Principal& caller) -> absl::Status {
    RETURN_IF_ERROR(MayReportFor(caller, request->worker().job_id()));
    ASSIGN_OR_RETURN(int interval,
                     coordinator_->Register(KeyOf(request->worker()), request->pid()));
    response->set_heartbeat_interval_ms(interval);
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* WorkerServiceImpl::Heartbeat(grpc::CallbackServerContext* ctx,
                                                       const v1::HeartbeatRequest* request,
                                                       v1::HeartbeatResponse*) {
  return UnaryCall(ctx, *auth_, [&](const Principal& caller) {
    RETURN_IF_ERROR(MayReportFor(caller, request->worker().job_id()));
    return coordinator_->Heartbeat(KeyOf(request->worker()), request->step());
  });
}

grpc::ServerUnaryReactor* WorkerServiceImpl::ReportMetrics(grpc::CallbackServerContext* ctx,
                                                           const v1::ReportMetricsRequest* request,
                                                           v1::Ack*) {
  return UnaryCall(ctx, *auth_, [&](const Principal& caller) {
    RETURN_IF_ERROR(MayReportFor(caller, request->worker().job_id()));
    std::vector<MetricsRecord> records;
    for (const v1::Metrics& m : request->records()) records.push_back(FromProto(m));
    return coordinator_->ReportMetrics(KeyOf(request->worker()), records);
  });
}

grpc::ServerUnaryReactor* WorkerServiceImpl::AnnounceCheckpoint(
    grpc::CallbackServerContext* ctx, const v1::AnnounceCheckpointRequest* request, v1::Ack*) {
  return UnaryCall(ctx, *auth_, [&](const Principal& caller) {
    RETURN_IF_ERROR(MayReportFor(caller, request->worker().job_id()));
    return coordinator_->AnnounceCheckpoint(KeyOf(request->worker()), request->checkpoint().step(),
                                            request->checkpoint().path());
  });
}

grpc::ServerUnaryReactor* WorkerServiceImpl::ReportExit(grpc::CallbackServerContext* ctx,
                                                        const v1::ReportExitRequest* request,
                                                        v1::Ack*) {
  return UnaryCall(ctx, *auth_, [&](const Principal& caller) {
    RETURN_IF_ERROR(MayReportFor(caller, request->worker().job_id()));
    return coordinator_->ReportExit(KeyOf(request->worker()), request->exit_code(),
                                    request->message(), FromProto(request->run_end()));
  });
}

}  // namespace matbert
