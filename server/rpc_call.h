// How every RPC of matbertd authenticates and answers, in one place: the caller is identified
// from its bearer token first (Authenticator), then the method's body runs with that Principal
// and decides what it may do (MayActOnJob, ...), and an absl::Status it returns becomes the
// call's grpc::Status (ToGrpc: INVALID_ARGUMENT, NOT_FOUND, PERMISSION_DENIED, ... with the
// message). The services themselves only translate protos and call the core.
#pragma once

#include <grpcpp/grpcpp.h>

#include <atomic>
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

// The server streams open at once, at most `max` (matbertd --max-streams): each holds a
// thread while it follows a job, so beyond the limit a new one is RESOURCE_EXHAUSTED.
class StreamSlots {
 public:
  explicit StreamSlots(int max) : max_(max) {}
  bool TryAcquire() {
    if (open_.fetch_add(1) < max_) return true;
    open_.fetch_sub(1);
    return false;
  }
  void Release() { open_.fetch_sub(1); }
  int max() const { return max_; }

 private:
  const int max_;
  std::atomic<int> open_{0};
};

// A server stream: body(const Principal&, StreamWriter<T>*) -> absl::Status, run on the
// writer's thread once the caller is known and a stream slot is free.
template <typename T, typename Body>
grpc::ServerWriteReactor<T>* StreamCall(grpc::CallbackServerContext* ctx, const Authenticator& auth,
                                        StreamSlots* slots, Body body) {
  absl::StatusOr<Principal> caller = auth.Identify(ctx);
  grpc::Status refused = ToGrpc(caller.status());
  if (caller.ok() && !slots->TryAcquire()) {
    refused = grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                           "matbertd already serves " + std::to_string(slots->max()) +
                               " streams (its --max-streams); try again when one has ended");
  }
  if (!refused.ok()) {
    return StreamWriter<T>::Start([refused](StreamWriter<T>*) { return refused; });
  }
  return StreamWriter<T>::Start(
      [body = std::move(body), caller = *std::move(caller), slots](StreamWriter<T>* writer) {
        grpc::Status status = ToGrpc(body(caller, writer));
        slots->Release();
        return status;
      });
}

}  // namespace matbert
