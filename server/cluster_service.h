// matbert.v1.ClusterService: devices, holders and queue, from the Coordinator.
#pragma once

#include "matbert/v1/cluster_service.grpc.pb.h"
#include "server/core/coordinator.h"

namespace matbert {

class ClusterServiceImpl final : public v1::ClusterService::CallbackService {
 public:
  explicit ClusterServiceImpl(Coordinator* coordinator) : coordinator_(coordinator) {}
  grpc::ServerUnaryReactor* GetCluster(grpc::CallbackServerContext* ctx,
                                       const v1::GetClusterRequest* request,
                                       v1::Cluster* response) override;

 private:
  Coordinator* const coordinator_;
};

}  // namespace matbert
