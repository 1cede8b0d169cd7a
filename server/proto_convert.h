// Translation between the coordinator's plain structs and proto/matbert/v1 messages, and
// absl::Status → grpc::Status. The one place the RPC layer and the core meet.
#pragma once

#include <grpcpp/support/status.h>

#include "absl/status/status.h"
#include "matbert/v1/cluster_service.pb.h"
#include "matbert/v1/job.pb.h"
#include "matbert/v1/job_service.pb.h"
#include "server/core/coordinator.h"

namespace matbert {

grpc::Status ToGrpc(const absl::Status& status);
v1::JobState ToProto(JobState state);
void ToProto(const JobView& view, const CoordinatorOptions& options, v1::Job* out);
// False if the stored payload cannot be read (it is then skipped).
bool ToProto(const EventRecord& event, v1::JobEvent* out);
void ToProto(const ClusterView& view, v1::Cluster* out);
void SetTimestamp(int64_t unix_ms, google::protobuf::Timestamp* out);
// A SubmitJob request as admission reads it, owned by `owner`.
SubmitRequest FromProto(const v1::SubmitJobRequest& request, const std::string& owner);

}  // namespace matbert
