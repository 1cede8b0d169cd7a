#include "client/connection.h"

#include <chrono>
#include <thread>

#include "absl/strings/str_format.h"
#include "client/exit_codes.h"
#include "common/file_util.h"

namespace matbert {

absl::StatusOr<std::unique_ptr<Connection>> Connection::Open(ClientOptions options) {
  std::shared_ptr<grpc::ChannelCredentials> credentials = grpc::InsecureChannelCredentials();
  if (!options.tls_ca.empty()) {
    absl::StatusOr<std::string> pem = ReadFileToString(options.tls_ca);
    if (!pem.ok()) return pem.status();
    grpc::SslCredentialsOptions tls;
    tls.pem_root_certs = *pem;
    credentials = grpc::SslCredentials(tls);
  }
  return std::unique_ptr<Connection>(new Connection(std::move(options), credentials));
}

Connection::Connection(ClientOptions options, std::shared_ptr<grpc::ChannelCredentials> credentials)
    : options_(std::move(options)) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(64 << 20);
  channel_ = grpc::CreateCustomChannel(options_.addr, credentials, args);
  jobs_ = v1::JobService::NewStub(channel_);
  cluster_ = v1::ClusterService::NewStub(channel_);
}

std::unique_ptr<grpc::ClientContext> Connection::NewContext(double seconds) const {
  auto ctx = std::make_unique<grpc::ClientContext>();
  last_deadline_s_ = seconds;
  if (seconds > 0) {
    ctx->set_deadline(std::chrono::system_clock::now() +
                      std::chrono::milliseconds(static_cast<int64_t>(seconds * 1000)));
  }
  if (!options_.token.empty()) ctx->AddMetadata("authorization", "Bearer " + options_.token);
  return ctx;
}

int Connection::Fail(const grpc::Status& status, const std::string& what) const {
  switch (status.error_code()) {
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      if (last_deadline_s_ > 0) {
        // Something answered at the address (or the call would be UNAVAILABLE) but not in time.
        absl::FPrintF(stderr,
                      "matbertctl: matbertd at %s (from %s) did not answer within %g s: %s\n"
                      "  it is running but stopped or overloaded; try again, or look at its log\n",
                      options_.addr, options_.addr_source, last_deadline_s_,
                      status.error_message());
        return kCtlUnreachable;
      }
      [[fallthrough]];
    case grpc::StatusCode::UNAVAILABLE:
      absl::FPrintF(stderr,
                    "matbertctl: cannot reach matbertd at %s (from %s): %s\n"
                    "  start one with `build/server/matbertd` (see README.md), or point --addr / "
                    "MATBERT_ADDR at a running one\n",
                    options_.addr, options_.addr_source, status.error_message());
      return kCtlUnreachable;
    case grpc::StatusCode::UNAUTHENTICATED:
      absl::FPrintF(stderr, "matbertctl: matbertd at %s refused the call: %s\n", options_.addr,
                    status.error_message());
      return kCtlUnreachable;
    case grpc::StatusCode::NOT_FOUND:
      absl::FPrintF(stderr, "matbertctl: %s: %s\n", what, status.error_message());
      return kCtlNotFound;
    case grpc::StatusCode::PERMISSION_DENIED:
      absl::FPrintF(stderr, "matbertctl: %s: %s\n", what, status.error_message());
      return kCtlDenied;
    case grpc::StatusCode::INVALID_ARGUMENT:
      absl::FPrintF(stderr, "matbertctl: %s\n", status.error_message());
      return kCtlError;
    default:
      absl::FPrintF(stderr, "matbertctl: %s: %s\n", what, status.error_message());
      return kCtlError;
  }
}

bool Reconnector::ShouldRetry(const grpc::Status& status) {
  if (status.error_code() != grpc::StatusCode::UNAVAILABLE || waited_s_ >= give_up_s_) {
    return false;
  }
  if (!announced_) {
    absl::FPrintF(stderr, "matbertctl: lost matbertd at %s; reconnecting…\n", conn_.options().addr);
    announced_ = true;
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(backoff_ms_));
  waited_s_ += backoff_ms_ / 1000.0;
  backoff_ms_ = std::min(backoff_ms_ * 2, 2000);
  return true;
}

void Reconnector::Reset() {
  if (announced_) absl::FPrintF(stderr, "matbertctl: reconnected to %s\n", conn_.options().addr);
  waited_s_ = 0;
  backoff_ms_ = 100;
  announced_ = false;
}

}  // namespace matbert
