#include "server/authenticator.h"

#include <openssl/crypto.h>

namespace matbert {

grpc::Status Authenticator::Check(const grpc::CallbackServerContext* ctx) const {
  if (token_.empty()) return grpc::Status::OK;
  const auto& metadata = ctx->client_metadata();
  auto it = metadata.find("authorization");
  const std::string expected = "Bearer " + token_;
  if (it != metadata.end() && it->second.size() == expected.size()) {
    // Constant time: how much of a guess matched must not show in the reply's timing.
    if (CRYPTO_memcmp(it->second.data(), expected.data(), expected.size()) == 0) {
      return grpc::Status::OK;
    }
  }
  return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                      it == metadata.end()
                          ? "this matbertd requires a token (matbertctl --token or MATBERT_TOKEN)"
                          : "wrong token");
}

}  // namespace matbert
