#include "server/cluster_service.h"

#include "server/proto_convert.h"
#include "server/rpc_call.h"

namespace matbert {

grpc::ServerUnaryReactor* ClusterServiceImpl::GetCluster(grpc::CallbackServerContext* ctx,
                                                         const v1::GetClusterRequest*,
                                                         v1::Cluster* response) {
  return UnaryCall(ctx, *auth_, [&](const Principal& caller) -> absl::Status {
    if (absl::Status denied = MayUseClientApi(caller); !denied.ok()) return denied;
    ToProto(coordinator_->Cluster(), response);
    response->set_version(MATBERT_VERSION);
    return absl::OkStatus();
  });
}

}  // namespace matbert
