// matbert.v1.WorkerService: what ranks report (register, heartbeat, metrics, checkpoints,
// exit), handed to the Coordinator.
#pragma once

#include "matbert/v1/worker_service.grpc.pb.h"
#include "server/authenticator.h"
#include "server/core/coordinator.h"

namespace matbert {

class WorkerServiceImpl final : public v1::WorkerService::CallbackService {
 public:
  WorkerServiceImpl(Coordinator* coordinator, const Authenticator* auth)
      : coordinator_(coordinator), auth_(auth) {}
  grpc::ServerUnaryReactor* Register(grpc::CallbackServerContext* ctx,
                                     const v1::RegisterRequest* request,
                                     v1::RegisterResponse* response) override;
  grpc::ServerUnaryReactor* Heartbeat(grpc::CallbackServerContext* ctx,
                                      const v1::HeartbeatRequest* request,
                                      v1::HeartbeatResponse* response) override;
  grpc::ServerUnaryReactor* ReportMetrics(grpc::CallbackServerContext* ctx,
                                          const v1::ReportMetricsRequest* request,
                                          v1::Ack* response) override;
  grpc::ServerUnaryReactor* AnnounceCheckpoint(grpc::CallbackServerContext* ctx,
                                               const v1::AnnounceCheckpointRequest* request,
                                               v1::Ack* response) override;
  grpc::ServerUnaryReactor* ReportExit(grpc::CallbackServerContext* ctx,
                                       const v1::ReportExitRequest* request,
                                       v1::Ack* response) override;

 private:
  Coordinator* const coordinator_;
  const Authenticator* const auth_;
};

}  // namespace matbert
