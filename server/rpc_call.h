// How every RPC of matbertd authenticates and answers, in one place: the caller is identified
// from its bearer token first (Authenticator), then the method's body runs with that Principal
// and decides what it may do (MayActOnJob, ...), and an absl::Status it returns becomes the
// call's grpc::Status (ToGrpc: INVALID_ARGUMENT, NOT_FOUND, PERMISSION_DENIED, ... with the
// message). The services themselves only translate protos and call the core.
#pragma once

#include <grpcpp/grpcpp.h>

#include <utility>

#include "absl/status/status.h"
#include "server/authenticator.h"
#include "server/proto_convert.h"
#include "server/stream_writer.h"

namespace matbert {

// A unary call: body(const Principal&) -> absl::Status, filling the response itself when OK.
template <typename Body>
grpc::ServerUnaryReactor* UnaryCall(grpc::CallbackServerContext* ctx, const Authenticator& auth,
                                    Body&& body) {
  absl::StatusOr<Principal> caller = auth.Identify(ctx);
  const grpc::Status status =
      ToGrpc(caller.ok() ? std::forward<Body>(body)(*caller) : caller.status());
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  reactor->Finish(status);
  return reactor;
}

// A server stream: body(const Principal&, StreamWriter<T>*) -> absl::Status, run on the
// writer's thread once the caller is known.
template <typename T, typename Body>
grpc::ServerWriteReactor<T>* StreamCall(grpc::CallbackServerContext* ctx, const Authenticator& auth,
                                        Body body) {
  absl::StatusOr<Principal> caller = auth.Identify(ctx);
  if (!caller.ok()) {
    return StreamWriter<T>::Start(
        [denied = ToGrpc(caller.status())](StreamWriter<T>*) { return denied; });
  }
  return StreamWriter<T>::Start(
      [body = std::move(body), caller = *std::move(caller)](StreamWriter<T>* writer) {
        return ToGrpc(body(caller, writer));
      });
}

}  // namespace matbert
