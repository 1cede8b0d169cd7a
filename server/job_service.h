// matbert.v1.JobService over the Coordinator: translates protos, calls the core, maps
// absl::Status to gRPC codes. No job logic here.
#pragma once

#include "matbert/v1/job_service.grpc.pb.h"
#include "server/authenticator.h"
#include "server/core/coordinator.h"
#include "server/rpc_call.h"

namespace matbert {

class JobServiceImpl final : public v1::JobService::CallbackService {
 public:
  // `coordinator` and `auth` must outlive the service. `max_streams`: WatchJob, StreamLogs
  // and DownloadCheckpoint streams open at once; beyond, RESOURCE_EXHAUSTED.
  JobServiceImpl(Coordinator* coordinator, const Authenticator* auth, int max_streams = 4096)
      : coordinator_(coordinator), auth_(auth), streams_(max_streams) {}

  grpc::ServerUnaryReactor* SubmitJob(grpc::CallbackServerContext* ctx,
                                      const v1::SubmitJobRequest* request,
                                      v1::SubmitJobResponse* response) override;
  grpc::ServerUnaryReactor* GetJob(grpc::CallbackServerContext* ctx,
                                   const v1::GetJobRequest* request, v1::Job* response) override;
  grpc::ServerUnaryReactor* ListJobs(grpc::CallbackServerContext* ctx,
                                     const v1::ListJobsRequest* request,
                                     v1::ListJobsResponse* response) override;
  grpc::ServerUnaryReactor* CancelJob(grpc::CallbackServerContext* ctx,
                                      const v1::CancelJobRequest* request,
                                      v1::Job* response) override;
  grpc::ServerWriteReactor<v1::JobEvent>* WatchJob(grpc::CallbackServerContext* ctx,
                                                   const v1::WatchJobRequest* request) override;
  grpc::ServerWriteReactor<v1::LogBatch>* StreamLogs(grpc::CallbackServerContext* ctx,
                                                     const v1::StreamLogsRequest* request) override;
  grpc::ServerUnaryReactor* ListCheckpoints(grpc::CallbackServerContext* ctx,
                                            const v1::ListCheckpointsRequest* request,
                                            v1::ListCheckpointsResponse* response) override;
  grpc::ServerWriteReactor<v1::CheckpointChunk>* DownloadCheckpoint(
      grpc::CallbackServerContext* ctx, const v1::DownloadCheckpointRequest* request) override;

 private:
  Coordinator* const coordinator_;
  const Authenticator* const auth_;
  StreamSlots streams_;
};

}  // namespace matbert
