#include "server/authenticator.h"

namespace matbert {

grpc::Status Authenticator::Check(const grpc::CallbackServerContext* ctx) const {
  if (token_.empty()) return grpc::Status::OK;
  const auto& metadata = ctx->client_metadata();
  auto it = metadata.find("authorization");
  const std::string expected = "Bearer " + token_;
  if (it != metadata.end() && it->second.size() == expected.size()) {
    // Constant time: how much of a guess matched must not show in the reply's timing.
    unsigned char diff = 0;
    for (size_t i = 0; i < expected.size(); ++i) diff |= it->second.data()[i] ^ expected[i];
    if (diff == 0) return grpc::Status::OK;
  }
  return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                      it == metadata.end()
                          ? "this matbertd requires a token (matbertctl --token or MATBERT_TOKEN)"
                          : "wrong token");
}

}  // namespace matbert
