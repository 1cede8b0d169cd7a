// The daemon's bearer token: when set, every call of JobService, ClusterService and
// WorkerService must carry "authorization: Bearer <token>" (matbertctl --token or
// MATBERT_TOKEN; ranks get it from matbertd). Health checks and reflection stay open.
#pragma once

#include <grpcpp/grpcpp.h>

#include <string>

namespace matbert {

class Authenticator {
 public:
  // An empty token lets every call through.
  explicit Authenticator(std::string token) : token_(std::move(token)) {}
  bool enabled() const { return !token_.empty(); }
  // OK, or UNAUTHENTICATED saying what is missing.
  grpc::Status Check(const grpc::CallbackServerContext* ctx) const;

 private:
  std::string token_;
};

}  // namespace matbert
