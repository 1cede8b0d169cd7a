// matbertctl's link to matbertd: the channel and stubs, per-call contexts carrying the token,
// and the one place an RPC failure becomes a message and an exit code.
#pragma once

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "matbert/v1/cluster_service.grpc.pb.h"
#include "matbert/v1/job_service.grpc.pb.h"

namespace matbert {

struct ClientOptions {
  std::string addr;         // host:port of matbertd
  std::string addr_source;  // where addr came from: "--addr", "MATBERT_ADDR" or "default"
  std::string token;        // bearer token; "" = none
  std::string tls_ca;       // PEM file to trust for TLS; "" = plaintext
  bool json = false;        // machine-readable output on read commands
};

class Connection {
 public:
  // Fails only when the TLS certificate file cannot be read.
  static absl::StatusOr<std::unique_ptr<Connection>> Open(ClientOptions options);

  v1::JobService::Stub& jobs() { return *jobs_; }
  v1::ClusterService::Stub& cluster() { return *cluster_; }
  const ClientOptions& options() const { return options_; }

  // A context for one call: the token, and a deadline unless `seconds` is 0 (streams).
  std::unique_ptr<grpc::ClientContext> NewContext(double seconds = 10) const;

  // Prints "matbertctl: <what>: <cause>" (for an unreachable daemon: where it looked and how
  // to start one) and returns the exit code for the status.
  int Fail(const grpc::Status& status, const std::string& what) const;

 private:
  Connection(ClientOptions options, std::shared_ptr<grpc::ChannelCredentials> credentials);

  ClientOptions options_;
  mutable double last_deadline_s_ = 0;  // of the newest context: what a timeout message names
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::JobService::Stub> jobs_;
  std::unique_ptr<v1::ClusterService::Stub> cluster_;
};

// Decides whether a broken stream should be opened again: while matbertd is unreachable
// (restarting), it waits with backoff for up to `give_up_s` in all, saying so once on stderr.
class Reconnector {
 public:
  explicit Reconnector(const Connection& conn, double give_up_s = 120)
      : conn_(conn), give_up_s_(give_up_s) {}
  // True after waiting if `status` says the daemon is away; false to give up.
  bool ShouldRetry(const grpc::Status& status);
  // The stream delivered something: the next outage gets the whole budget again.
  void Reset();

 private:
  const Connection& conn_;
  double give_up_s_;
  double waited_s_ = 0;
  int backoff_ms_ = 100;
  bool announced_ = false;
};

}  // namespace matbert
