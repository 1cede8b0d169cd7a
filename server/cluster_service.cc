#include "server/cluster_service.h"

#include "server/proto_convert.h"

namespace matbert {

grpc::ServerUnaryReactor* ClusterServiceImpl::GetCluster(grpc::CallbackServerContext* ctx,
                                                         const v1::GetClusterRequest*,
                                                         v1::Cluster* response) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  if (grpc::Status denied = auth_->Check(ctx); !denied.ok()) {
    reactor->Finish(denied);
    return reactor;
  }
  ToProto(coordinator_->Cluster(), response);
  response->set_version(MATBERT_VERSION);
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

}  // namespace matbert
