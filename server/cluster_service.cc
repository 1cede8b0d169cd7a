#include "server/cluster_service.h"

#include "server/proto_convert.h"

namespace matbert {

grpc::ServerUnaryReactor* ClusterServiceImpl::GetCluster(grpc::CallbackServerContext* ctx,
                                                         const v1::GetClusterRequest*,
                                                         v1::Cluster* response) {
  ToProto(coordinator_->Cluster(), response);
  response->set_version(MATBERT_VERSION);
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

}  // namespace matbert
