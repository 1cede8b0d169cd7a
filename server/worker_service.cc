#include "server/worker_service.h"

#include "server/proto_convert.h"

namespace matbert {
namespace {

WorkerKey KeyOf(const v1::WorkerId& id) { return {id.job_id(), id.attempt(), id.rank()}; }

grpc::ServerUnaryReactor* Reply(grpc::CallbackServerContext* ctx, const grpc::Status& status) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  reactor->Finish(status);
  return reactor;
}

grpc::ServerUnaryReactor* Reply(grpc::CallbackServerContext* ctx, const absl::Status& status) {
  return Reply(ctx, ToGrpc(status));
}

}  // namespace

grpc::ServerUnaryReactor* WorkerServiceImpl::Register(grpc::CallbackServerContext* ctx,
                                                      const v1::RegisterRequest* request,
                                                      v1::RegisterResponse* response) {
  if (grpc::Status denied = auth_->Check(ctx); !denied.ok()) return Reply(ctx, denied);
  absl::StatusOr<int> interval = coordinator_->Register(KeyOf(request->worker()), request->pid());
  if (interval.ok()) response->set_heartbeat_interval_ms(*interval);
  return Reply(ctx, interval.status());
}

grpc::ServerUnaryReactor* WorkerServiceImpl::Heartbeat(grpc::CallbackServerContext* ctx,
                                                       const v1::HeartbeatRequest* request,
                                                       v1::HeartbeatResponse*) {
  if (grpc::Status denied = auth_->Check(ctx); !denied.ok()) return Reply(ctx, denied);
  return Reply(ctx, coordinator_->Heartbeat(KeyOf(request->worker()), request->step()));
}

grpc::ServerUnaryReactor* WorkerServiceImpl::ReportMetrics(grpc::CallbackServerContext* ctx,
                                                           const v1::ReportMetricsRequest* request,
                                                           v1::Ack*) {
  if (grpc::Status denied = auth_->Check(ctx); !denied.ok()) return Reply(ctx, denied);
  std::vector<MetricsRecord> records;
  for (const v1::Metrics& m : request->records()) {
    MetricsRecord record;
    record.kind = m.kind();
    record.step = m.step();
    record.values.insert(m.values().begin(), m.values().end());
    records.push_back(std::move(record));
  }
  return Reply(ctx, coordinator_->ReportMetrics(KeyOf(request->worker()), records));
}

grpc::ServerUnaryReactor* WorkerServiceImpl::AnnounceCheckpoint(
    grpc::CallbackServerContext* ctx, const v1::AnnounceCheckpointRequest* request, v1::Ack*) {
  if (grpc::Status denied = auth_->Check(ctx); !denied.ok()) return Reply(ctx, denied);
  return Reply(
      ctx, coordinator_->AnnounceCheckpoint(KeyOf(request->worker()), request->checkpoint().step(),
                                            request->checkpoint().path()));
}

grpc::ServerUnaryReactor* WorkerServiceImpl::ReportExit(grpc::CallbackServerContext* ctx,
                                                        const v1::ReportExitRequest* request,
                                                        v1::Ack*) {
  if (grpc::Status denied = auth_->Check(ctx); !denied.ok()) return Reply(ctx, denied);
  return Reply(ctx, coordinator_->ReportExit(KeyOf(request->worker()), request->exit_code(),
                                             request->message()));
}

}  // namespace matbert
