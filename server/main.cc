// matbertd: the coordinator daemon. Flags (or --config FILE.toml with the same keys) →
// CoordinatorOptions → Coordinator, served over gRPC with health checking and reflection.
// SIGTERM/SIGINT stop the daemon and leave running jobs alone: the next matbertd on the
// same state dir adopts them.
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <limits.h>
#include <signal.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <filesystem>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"
#include "common/file_util.h"
#include "common/free_port.h"
#include "server/authenticator.h"
#include "server/cluster_service.h"
#include "server/core/coordinator.h"
#include "server/core/devices.h"
#include "server/executor/delayed_executor.h"
#include "server/executor/local_executor.h"
#include "server/executor/slurm_executor.h"
#include "server/job_service.h"
#include "server/metrics/metrics_endpoint.h"
#include "server/worker_service.h"

namespace {

namespace fs = std::filesystem;

// matbert-worker beside matbertd (an install), or in the build tree's worker/ folder.
std::string DefaultWorkerPath() {
  char self[PATH_MAX];
  const ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
  if (n <= 0) return "matbert-worker";
  const fs::path dir = fs::path(std::string(self, n)).parent_path();
  for (const fs::path& candidate : {dir / "matbert-worker", dir / "../worker/matbert-worker"}) {
    if (access(candidate.c_str(), X_OK) == 0) return fs::weakly_canonical(candidate).string();
  }
  return "matbert-worker";
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "matbertd: the matbert coordinator. Queues training and generation jobs, gives each all "
      "of its GPUs (or CPU slots) at once, runs their matbert-worker ranks, and streams "
      "metrics, logs and checkpoints to clients over gRPC (proto/matbert/v1).\n"
      "Examples:\n"
      "  matbertd                                   # localhost:50051, state in ./var/matbert\n"
      "  matbertd --gpus 0,1 --listen 0.0.0.0:50051 --state-dir /srv/matbert \\\n"
      "           --tls-cert cert.pem --tls-key key.pem --tokens-file tokens  # off loopback\n"
      "  matbertd --config configs/matbertd.toml"};
  std::string listen = "localhost:50051";
  std::string state_dir = "var/matbert";
  std::string gpus = "auto";
  int cpu_slots = 0;
  int max_queued = 10000;
  int max_streams = 4096;
  int grace_period = 30;
  int heartbeat_timeout = 30;
  int executor_stall = 5;
  std::string inject_executor_delay_file;
  std::string worker = DefaultWorkerPath();
  std::string spec_root = ".";
  std::string token_file, tokens_file;
  std::string metrics_addr;
  std::string tls_cert, tls_key;
  bool insecure_network = false;
  double metrics_retention = 600;
  std::string log_level = "info";
  std::string backend = "local";
  std::string advertise_host;
  matbert::SlurmOptions slurm;
  int slurm_max_ranks = 256;
  app.set_config("--config", "", "TOML file with any of these options (listen = \"…\")");
  app.add_option("--listen", listen, "gRPC address (host:port; port 0 picks a free one)")
      ->capture_default_str();
  app.add_option("--state-dir", state_dir, "Job database, run directories and datasets")
      ->capture_default_str();
  app.add_option("--gpus", gpus,
                 "auto (NVML; CPU slots when none), none (CPU slots), or CUDA indices 0,1,…")
      ->capture_default_str();
  app.add_option("--cpu-slots", cpu_slots, "CPU slots without GPUs; 0 = one per core")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app.add_option("--max-queued", max_queued, "Waiting jobs beyond which SubmitJob is refused")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--max-streams", max_streams,
                 "WatchJob, StreamLogs and DownloadCheckpoint streams served at once; beyond, "
                 "a new one is refused with RESOURCE_EXHAUSTED")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--grace-period", grace_period, "Seconds from SIGTERM to SIGKILL at cancel")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app.add_option("--heartbeat-timeout", heartbeat_timeout,
                 "Seconds of silence from a rank that fail its attempt")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--worker", worker, "The matbert-worker executable")->capture_default_str();
  app.add_option("--spec-root", spec_root,
                 "Directory where model.arch files named by submitted specs are read")
      ->capture_default_str();
  app.add_option("--tokens-file", tokens_file,
                 "Users: a file of \"TOKEN USER ROLE\" lines (role user: acts on its own jobs; "
                 "admin: on all); every call must carry one of the tokens (docs/security.md)");
  app.add_option("--token-file", token_file,
                 "One shared token (the file's first line), held by the admin user \"admin\"; "
                 "MATBERT_TOKEN in the environment does the same")
      ->excludes("--tokens-file");
  app.add_option("--tls-cert", tls_cert,
                 "Serve TLS with this PEM certificate (it must name the --listen host; ranks "
                 "trust it through MATBERT_TLS_CA)");
  app.add_option("--tls-key", tls_key, "PEM private key of --tls-cert");
  app.add_flag("--insecure-allow-network-without-auth", insecure_network,
               "Serve a non-loopback --listen address without TLS and a token (anyone who "
               "reaches the port can submit, cancel and read every job); refused otherwise");
  app.add_option("--metrics-addr", metrics_addr,
                 "Serve Prometheus metrics at http://ADDR/metrics (host:port); off when empty");
  app.add_option("--metrics-retention", metrics_retention,
                 "Seconds an ended job's training series stay on /metrics")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app.add_option("--log-level", log_level,
                 "What the log (stderr) shows: trace, debug, info (job state changes), warn "
                 "(failed jobs), error, off")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "off"}))
      ->capture_default_str();
  app.add_option("--backend", backend,
                 "Where ranks run: local (this host, matbertd's gang scheduler) or slurm (one "
                 "Slurm job per attempt, across nodes; Slurm queues and places)")
      ->check(CLI::IsMember({"local", "slurm"}))
      ->capture_default_str();
  app.add_option("--advertise-host", advertise_host,
                 "Host the ranks dial to reach matbertd; default: the --listen host, or "
                 "127.0.0.1 when listening on all addresses (under Slurm, give one the nodes "
                 "reach)");
  app.add_option("--slurm-partition", slurm.partition, "sbatch --partition (default: Slurm's)");
  app.add_option("--slurm-account", slurm.account, "sbatch --account");
  app.add_option("--slurm-sbatch-arg", slurm.sbatch_args,
                 "One more sbatch option, e.g. --slurm-sbatch-arg=--time=04:00:00 (repeatable)");
  app.add_flag("--slurm-gpus", slurm.gpus,
               "Ask Slurm for job.gpus GPUs per node (--gres=gpu:N); without it ranks are CPU");
  app.add_option("--slurm-max-ranks", slurm_max_ranks,
                 "Largest job (nodes x ranks per node) accepted under --backend slurm")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--executor-stall", executor_stall,
                 "Seconds an executor call (sbatch, scontrol, a spawn) may take before matbertd "
                 "counts the executor as not answering: no new attempt starts until it answers "
                 "a ping, and waiting jobs say so")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--inject-executor-delay-file", inject_executor_delay_file,
                 "Fault injection for tests and benchmarks: before every start, poll, fit check "
                 "and ping, the executor sleeps the milliseconds this file holds (a stalled "
                 "Slurm controller; no file or no number: no sleep)")
      ->group("Testing");
  CLI11_PARSE(app, argc, argv);
  // The daemon's log: stderr, one line per record with a UTC timestamp and the level.
  spdlog::set_default_logger(spdlog::stderr_logger_mt("matbertd"));
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%eZ %l %v", spdlog::pattern_time_type::utc);
  spdlog::set_level(spdlog::level::from_str(log_level));

  if (tls_cert.empty() != tls_key.empty()) {
    absl::FPrintF(stderr, "matbertd: --tls-cert and --tls-key go together\n");
    return 2;
  }
  std::shared_ptr<grpc::ServerCredentials> credentials = grpc::InsecureServerCredentials();
  if (!tls_cert.empty()) {
    absl::StatusOr<std::string> cert = matbert::ReadFileToString(tls_cert);
    absl::StatusOr<std::string> key = matbert::ReadFileToString(tls_key);
    if (!cert.ok() || !key.ok()) {
      absl::FPrintF(stderr, "matbertd: %s\n",
                    (!cert.ok() ? cert.status() : key.status()).message());
      return 2;
    }
    grpc::SslServerCredentialsOptions ssl;
    ssl.pem_key_cert_pairs.push_back({*key, *cert});
    credentials = grpc::SslServerCredentials(ssl);
  }
  // Who may call: a tokens file, one shared token (the admin), or nobody's token at all.
  std::vector<matbert::TokenEntry> tokens;
  if (!tokens_file.empty()) {
    absl::StatusOr<std::string> text = matbert::ReadFileToString(tokens_file);
    absl::StatusOr<std::vector<matbert::TokenEntry>> parsed =
        text.ok() ? matbert::ParseTokensFile(*text, tokens_file)
                  : absl::StatusOr<std::vector<matbert::TokenEntry>>(text.status());
    if (!parsed.ok()) {
      absl::FPrintF(stderr, "matbertd: --tokens-file: %s\n", parsed.status().message());
      return 2;
    }
    tokens = *std::move(parsed);
  } else if (!token_file.empty()) {
    absl::StatusOr<std::string> text = matbert::ReadFileToString(token_file);
    if (!text.ok()) {
      absl::FPrintF(stderr, "matbertd: --token-file: %s\n", text.status().message());
      return 2;
    }
    std::string token = text->substr(0, text->find('\n'));
    if (token.empty()) {
      absl::FPrintF(stderr, "matbertd: --token-file: %s holds no token\n", token_file);
      return 2;
    }
    tokens.push_back({token, "admin", matbert::Role::kAdmin});
  } else if (const char* env = std::getenv("MATBERT_TOKEN"); env != nullptr && *env != '\0') {
    tokens.push_back({env, "admin", matbert::Role::kAdmin});
  }
  const bool has_tokens = !tokens.empty();

  // Port 0: choose one now, so the address workers dial is known before anything starts.
  const size_t colon = listen.rfind(':');
  int port = 0;
  if (colon == std::string::npos || !absl::SimpleAtoi(listen.substr(colon + 1), &port) ||
      port < 0 || port > 65535) {
    absl::FPrintF(stderr, "matbertd: --listen must be host:port, got \"%s\"\n", listen);
    return 2;
  }
  std::string host = listen.substr(0, colon);
  if (port == 0) {
    absl::StatusOr<int> free_port = matbert::PickFreeLoopbackPort();
    if (!free_port.ok()) {
      absl::FPrintF(stderr, "matbertd: %s\n", free_port.status().message());
      return 1;
    }
    port = *free_port;
    listen = absl::StrCat(host, ":", port);
  }
  // Off loopback, secure by default: a network address needs TLS and a token, or a flag that
  // says in its name what it gives away.
  const bool loopback = host == "localhost" || absl::StartsWith(host, "127.") || host == "[::1]" ||
                        host == "::1" || host == "ip6-localhost";
  const bool secured = !tls_cert.empty() && has_tokens;
  // What an unsecured network address lacks, as the refusal and the warning name it.
  const bool lacks_both = tls_cert.empty() && !has_tokens;
  const char* lacks_one = tls_cert.empty() ? "TLS" : "the tokens";
  if (!loopback && !secured && !insecure_network) {
    absl::FPrintF(stderr,
                  "matbertd: --listen %s is not a loopback address, and serving the network "
                  "needs TLS (--tls-cert, --tls-key) and tokens (--tokens-file, --token-file or "
                  "MATBERT_TOKEN)%s; to serve it without them anyway, add "
                  "--insecure-allow-network-without-auth\n",
                  listen, lacks_both ? "" : absl::StrCat(" (", lacks_one, " is missing)"));
    return 2;
  }
  const bool any_host = host == "0.0.0.0" || host == "[::]" || host.empty();
  const bool under_slurm = backend == "slurm";
  if (under_slurm && advertise_host.empty() &&
      (any_host || host == "localhost" || host == "127.0.0.1")) {
    absl::FPrintF(stderr,
                  "matbertd: --backend slurm: ranks on other nodes cannot reach %s; give "
                  "--advertise-host with this host's address on the cluster network\n",
                  any_host ? "127.0.0.1" : host);
    return 2;
  }
  const std::string dial_host = !advertise_host.empty() ? advertise_host
                                : any_host              ? "127.0.0.1"
                                                        : host;

  absl::StatusOr<std::vector<matbert::DeviceInfo>> devices =
      under_slurm ? absl::StatusOr<std::vector<matbert::DeviceInfo>>(
                        matbert::SlurmRankSlots(slurm_max_ranks))
                  : matbert::DiscoverDevices(gpus, cpu_slots);
  if (!devices.ok()) {
    absl::FPrintF(stderr, "matbertd: %s\n", devices.status().message());
    return 2;
  }
  matbert::CoordinatorOptions options;
  options.state_dir = state_dir;
  // Ranks run in their run directory: a relative path would no longer name the program.
  options.worker_path =
      worker.find('/') == std::string::npos ? worker : fs::absolute(worker).string();
  options.coordinator_address = absl::StrCat(dial_host, ":", port);
  options.spec_root = fs::absolute(spec_root).string();
  options.devices = *devices;
  // Under Slurm a job spans up to the spec's limit of nodes; sbatch --test-only refuses at
  // submission what the cluster can never give.
  options.max_nodes = under_slurm ? 1024 : 1;
  options.max_queued = max_queued;
  options.grace_period_s = grace_period;
  options.heartbeat_timeout_s = heartbeat_timeout;
  if (!tls_cert.empty()) options.tls_ca_file = fs::absolute(tls_cert).string();

  // Block the stop signals in every thread; one thread waits for them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  matbert::EventMetrics event_metrics;
  if (!metrics_addr.empty()) {
    options.on_scheduled = [&event_metrics](double s) { event_metrics.ObserveScheduling(s); };
  }
  matbert::LocalExecutor local_executor;
  matbert::SlurmExecutor slurm_executor(slurm);
  matbert::Executor* executor = under_slurm ? static_cast<matbert::Executor*>(&slurm_executor)
                                            : static_cast<matbert::Executor*>(&local_executor);
  matbert::DelayedExecutor delayed_executor(executor, [&inject_executor_delay_file] {
    int ms = 0;
    absl::StatusOr<std::string> text = matbert::ReadFileToString(inject_executor_delay_file);
    if (text.ok() && absl::SimpleAtoi(absl::StripAsciiWhitespace(*text), &ms)) return ms;
    return 0;
  });
  if (!inject_executor_delay_file.empty()) {
    spdlog::warn("--inject-executor-delay-file {}: executor calls sleep as it says (testing only)",
                 inject_executor_delay_file);
    executor = &delayed_executor;
  }
  options.executor_stall_ms = executor_stall * 1000;
  // The ranks' credentials are made under a secret kept beside the job database, so ranks
  // adopted after a restart keep reporting.
  std::string rank_secret;
  if (has_tokens) {
    std::error_code ec;
    fs::create_directories(state_dir, ec);
    absl::StatusOr<std::string> secret =
        matbert::LoadOrCreateRankSecret((fs::path(state_dir) / "rank-secret").string());
    if (!secret.ok()) {
      absl::FPrintF(stderr, "matbertd: %s\n", secret.status().message());
      return 1;
    }
    rank_secret = *std::move(secret);
  }
  const matbert::Authenticator auth(tokens, rank_secret);
  options.rank_credential = [&auth](const std::string& job_id) {
    return auth.RankCredential(job_id);
  };
  auto coordinator = matbert::Coordinator::Create(options, executor);
  if (!coordinator.ok()) {
    absl::FPrintF(stderr, "matbertd: %s\n", coordinator.status().message());
    return 1;
  }
  matbert::JobServiceImpl jobs(coordinator->get(), &auth, max_streams);
  matbert::ClusterServiceImpl cluster(coordinator->get(), &auth);
  matbert::WorkerServiceImpl workers(coordinator->get(), &auth);
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  int bound_port = 0;
  builder.AddListeningPort(listen, credentials, &bound_port);
  builder.RegisterService(&jobs);
  builder.RegisterService(&cluster);
  builder.RegisterService(&workers);
  builder.SetMaxSendMessageSize(8 << 20);
  std::unique_ptr<matbert::MetricsEndpoint> metrics;
  if (!metrics_addr.empty()) {
    builder.experimental().SetInterceptorCreators(event_metrics.InterceptorFactories());
    auto endpoint = matbert::MetricsEndpoint::Create(metrics_addr, coordinator->get(),
                                                     &event_metrics, metrics_retention);
    if (!endpoint.ok()) {
      absl::FPrintF(stderr, "matbertd: %s\n", endpoint.status().message());
      return 1;
    }
    metrics = std::move(*endpoint);
  }
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || bound_port == 0) {
    absl::FPrintF(stderr, "matbertd: cannot listen on %s (in use, or not a local address)\n",
                  listen);
    return 1;
  }
  std::string kinds =
      under_slurm
          ? absl::StrCat("Slurm executor (up to ", devices->size(), " ranks a job",
                         slurm.partition.empty() ? "" : ", partition " + slurm.partition, ")")
          : absl::StrCat(devices->size(), " ",
                         (*devices)[0].kind == "gpu" ? "GPU(s)" : "CPU slot(s)");
  if (under_slurm) {
    // Ranks on other nodes read their spec and write logs and checkpoints here. A single-host
    // cluster (as in the tests) works on any filesystem, so this warns rather than refuses.
    if (absl::Status shared = matbert::CheckSharedFilesystem((*coordinator)->options().state_dir);
        !shared.ok()) {
      spdlog::warn("--state-dir: {}", std::string(shared.message()));
    }
  }
  if (!loopback && !secured) {
    spdlog::warn(
        "INSECURE: {} is served without {}: anyone who reaches it can submit, cancel, read and "
        "download every job (--insecure-allow-network-without-auth)",
        listen, lacks_both ? "TLS or a token" : lacks_one);
  }
  spdlog::info(
      "matbertd {} listening on {}; {}; state in {}{}{}", MATBERT_VERSION, listen, kinds,
      (*coordinator)->options().state_dir,
      absl::StrCat(
          tls_cert.empty() ? "" : "; TLS",
          auth.enabled() ? absl::StrCat("; tokens required (", auth.users(), " user(s))") : ""),
      metrics ? absl::StrCat("; metrics on port ", metrics->port()) : "");

  int signal = 0;
  sigwait(&stop_signals, &signal);
  spdlog::info("{}, shutting down (running jobs keep running)", strsignal(signal));
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  metrics.reset();
  coordinator->reset();
  return 0;
}
