// How every RPC of matbertd authenticates and answers, in one place: the bearer token is
// checked first (Authenticator), then the method's body runs, and an absl::Status it returns
// becomes the call's grpc::Status (ToGrpc: INVALID_ARGUMENT, NOT_FOUND, ... with the message).
// The services themselves only translate protos and call the core.
#pragma once

#include <grpcpp/grpcpp.h>

#include <utility>

#include "absl/status/status.h"
#include "server/authenticator.h"
#include "server/proto_convert.h"
#include "server/stream_writer.h"

namespace matbert {

// A unary call: body() -> absl::Status, filling the response itself when OK.
template <typename Body>
grpc::ServerUnaryReactor* UnaryCall(grpc::CallbackServerContext* ctx, const Authenticator& auth,
                                    Body&& body) {
  grpc::Status status = auth.Check(ctx);
  if (status.ok()) status = ToGrpc(std::forward<Body>(body)());
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  reactor->Finish(status);
  return reactor;
}

// A server stream: body(StreamWriter<T>*) -> absl::Status, run on the writer's thread once
// the token has been accepted.
template <typename T, typename Body>
grpc::ServerWriteReactor<T>* StreamCall(grpc::CallbackServerContext* ctx, const Authenticator& auth,
                                        Body body) {
  if (grpc::Status denied = auth.Check(ctx); !denied.ok()) {
    return StreamWriter<T>::Start([denied](StreamWriter<T>*) { return denied; });
  }
  return StreamWriter<T>::Start(
      [body = std::move(body)](StreamWriter<T>* writer) { return ToGrpc(body(writer)); });
}

}  // namespace matbert
