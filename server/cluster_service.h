// matbert.v1.ClusterService: devices, holders and queue, from the Coordinator.
#pragma once

#include "matbert/v1/cluster_service.grpc.pb.h"
#include "server/authenticator.h"
#include "server/core/coordinator.h"

namespace matbert {

class ClusterServiceImpl final : public v1::ClusterService::CallbackService {
 public:
  ClusterServiceImpl(Coordinator* coordinator, const Authenticator* auth)
      : coordinator_(coordinator), auth_(auth) {}
  grpc::ServerUnaryReactor* GetCluster(grpc::CallbackServerContext* ctx,
                                       const v1::GetClusterRequest* request,
                                       v1::Cluster* response) override;

 private:
  Coordinator* const coordinator_;
  const Authenticator* const auth_;
};

}  // namespace matbert
