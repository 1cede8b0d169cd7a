// matbertctl: the command line of matbert (DESIGN.md §1). Parses flags into each command's
// options and runs it; the commands live in client/*_command.cc.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdlib>
#include <string>

#include "absl/strings/str_format.h"
#include "client/commands.h"
#include "client/exit_codes.h"
#include "common/job_spec.h"

namespace {

constexpr char kExitCodes[] =
    "Exit codes: 0 success, 1 error, 2 usage, 3 job or checkpoint not found, 4 matbertd "
    "unreachable (or token refused), 5 watched job FAILED, 6 watched job CANCELLED, 7 the "
    "job belongs to another user.";

// Spec overrides ("--training.steps 1000", "--training.steps=1000") are taken out of the
// arguments before CLI11 sees them (common/job_spec's ExtractOverrideArgs), as "key=value".
// False (after a message) when one lacks its value.
bool ExtractOverrides(std::vector<std::string>* args, std::vector<std::string>* overrides) {
  absl::StatusOr<std::vector<matbert::Override>> extracted = matbert::ExtractOverrideArgs(args);
  if (!extracted.ok()) {
    absl::FPrintF(stderr, "matbertctl: %s (see matbertctl submit --help)\n",
                  extracted.status().message());
    return false;
  }
  for (const matbert::Override& o : *extracted) overrides->push_back(o.key + "=" + o.value);
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "matbertctl: submit matbert training and generation jobs to matbertd and follow them.\n"
      "Example session:\n"
      "  matbertctl submit configs/bert_matcomp_cpu.toml --training.steps 500\n"
      "  matbertctl status\n"
      "  matbertctl watch <job>\n"
      "  matbertctl download <job> --latest\n"};
  app.footer(kExitCodes);
  app.require_subcommand(1);
  app.fallthrough();
  matbert::ClientOptions client;
  const char* env_addr = std::getenv("MATBERT_ADDR");
  const char* env_token = std::getenv("MATBERT_TOKEN");
  std::string addr;
  app.add_option("--addr", addr, "matbertd address [default: $MATBERT_ADDR, else localhost:50051]");
  app.add_option("--token", client.token, "Bearer token [default: $MATBERT_TOKEN]");
  app.add_flag("--json", client.json, "Machine-readable output (one JSON value per line)");
  app.add_option("--tls-ca", client.tls_ca,
                 "Use TLS, trusting this PEM certificate [default: $MATBERT_TLS_CA]");

  matbert::SubmitOptions submit;
  std::vector<std::string> sets;
  std::optional<std::string> name;
  std::optional<int> nodes, gpus, priority;
  CLI::App* submit_cmd = app.add_subcommand(
      "submit",
      "Validate a job spec here, send it, print the job id.\n"
      "Example: matbertctl submit configs/bert_matcomp.toml --training.steps 1000 "
      "--set matrix.prec=3 --gpus 2 --watch");
  submit_cmd->add_option("file", submit.file, "Job spec (TOML)")->required();
  submit_cmd->add_option("--set", sets, "Override: section.key=value (repeatable)");
  submit_cmd->add_option("--name", name, "job.name");
  submit_cmd->add_option("--nodes", nodes, "job.nodes: hosts (under matbertd --backend slurm)");
  submit_cmd->add_option("--gpus", gpus, "job.gpus: devices per node (GPUs, or CPU slots)");
  submit_cmd->add_option("--priority", priority, "job.priority: higher runs first");
  submit_cmd->add_flag("--watch", submit.watch, "Follow the job to its end (like watch)");
  submit_cmd->add_flag("-q,--quiet", submit.quiet, "Print only the job id");

  std::string job_id;
  int limit = 0;
  bool mine = false;
  CLI::App* status_cmd = app.add_subcommand(
      "status",
      "All jobs as a table (newest first) with their owners, or one job in detail.\n"
      "Examples: matbertctl status; matbertctl status --mine; matbertctl status k3x9qa; "
      "matbertctl --json status");
  status_cmd->add_option("job", job_id, "Job id");
  status_cmd->add_option("--limit", limit, "At most this many jobs (0 = all)");
  status_cmd->add_flag("--mine", mine, "Only the jobs of the user your token names");

  CLI::App* watch_cmd = app.add_subcommand(
      "watch",
      "Live progress of a job until it ends: step/total, loss, grad-norm, lr, "
      "tokens/s, ETA, eval RMSE against its baselines.\nExample: matbertctl watch k3x9qa");
  watch_cmd->add_option("job", job_id, "Job id")->required();

  matbert::LogsOptions logs;
  std::optional<int> rank;
  CLI::App* logs_cmd = app.add_subcommand(
      "logs",
      "The ranks' output, each line prefixed with its rank.\n"
      "Examples: matbertctl logs k3x9qa -f; matbertctl logs k3x9qa --rank 1 --tail 20");
  logs_cmd->add_option("job", logs.job_id, "Job id")->required();
  logs_cmd->add_flag("-f,--follow", logs.follow, "Keep printing new lines until the job ends");
  logs_cmd->add_option("--rank", rank, "Only this rank");
  logs_cmd->add_option("--tail", logs.tail, "Start with the last N lines of each rank")
      ->check(CLI::NonNegativeNumber);

  bool force = false;
  CLI::App* cancel_cmd = app.add_subcommand(
      "cancel",
      "Stop a job: SIGTERM to its ranks (they checkpoint), SIGKILL after the grace "
      "period; a queued job just leaves the queue.\nExample: matbertctl cancel k3x9qa");
  cancel_cmd->add_option("job", job_id, "Job id")->required();
  cancel_cmd->add_flag("--force", force, "SIGKILL now, no grace period");

  CLI::App* checkpoints_cmd =
      app.add_subcommand("checkpoints",
                         "A job's checkpoints: step, size, time, eval RMSE.\n"
                         "Example: matbertctl checkpoints k3x9qa");
  checkpoints_cmd->add_option("job", job_id, "Job id")->required();

  matbert::DownloadOptions download;
  std::optional<int64_t> step;
  bool latest = false;
  CLI::App* download_cmd =
      app.add_subcommand("download",
                         "Fetch a checkpoint directory, SHA-256 verified, written atomically.\n"
                         "Example: matbertctl download k3x9qa --step 500 -o ckpt/");
  download_cmd->add_option("job", download.job_id, "Job id")->required();
  auto* step_opt = download_cmd->add_option("--step", step, "That step's checkpoint");
  download_cmd->add_flag("--latest", latest, "The newest checkpoint (the default)")
      ->excludes(step_opt);
  download_cmd->add_option("-o,--output-dir", download.output_dir,
                           "Where to put it [default: ./<job>-step-NNNNNNN]");
  download_cmd->add_flag("--overwrite", download.overwrite, "Replace an existing directory");

  CLI::App* cluster_cmd = app.add_subcommand(
      "cluster", "Devices, which job holds each, and the queue.\nExample: matbertctl cluster");

  std::vector<std::string> args(argv + 1, argv + argc);
  std::vector<std::string> overrides;
  if (!ExtractOverrides(&args, &overrides)) return matbert::kCtlUsage;
  std::reverse(args.begin(), args.end());  // CLI11 takes a vector in reverse order
  try {
    app.parse(args);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::string what = e.what();
    if (what.empty()) what = e.get_name();
    // "A subcommand is required" for a misspelt command: name it, and the commands there are.
    if (app.get_subcommands().empty()) {
      std::vector<std::string> words(argv + 1, argv + argc);
      for (size_t i = 0; i < words.size(); ++i) {
        if (words[i] == "--addr" || words[i] == "--token") {
          ++i;
        } else if (!words[i].empty() && words[i][0] != '-') {
          what =
              "unknown command \"" + words[i] +
              "\"; commands: submit, status, watch, logs, cancel, checkpoints, download, cluster";
          break;
        }
      }
    }
    absl::FPrintF(stderr, "matbertctl: %s (see --help)\n", what);
    return matbert::kCtlUsage;
  }
  client.addr_source = "--addr";
  if (addr.empty() && env_addr != nullptr && *env_addr != '\0') {
    addr = env_addr;
    client.addr_source = "MATBERT_ADDR";
  }
  if (addr.empty()) {
    addr = "localhost:50051";
    client.addr_source = "the default";
  }
  client.addr = addr;
  if (client.token.empty() && env_token != nullptr) client.token = env_token;
  if (const char* ca = std::getenv("MATBERT_TLS_CA"); client.tls_ca.empty() && ca != nullptr) {
    client.tls_ca = ca;
  }
  auto opened = matbert::Connection::Open(client);
  if (!opened.ok()) {
    absl::FPrintF(stderr, "matbertctl: --tls-ca: %s\n", opened.status().message());
    return matbert::kCtlUsage;
  }
  matbert::Connection& conn = **opened;

  if (submit_cmd->parsed()) {
    submit.overrides = sets;
    submit.overrides.insert(submit.overrides.end(), overrides.begin(), overrides.end());
    submit.name = name;
    submit.nodes = nodes;
    submit.gpus = gpus;
    submit.priority = priority;
    return matbert::RunSubmit(conn, submit);
  }
  if (!overrides.empty()) {
    absl::FPrintF(stderr, "matbertctl: --%s: spec overrides belong to submit\n", overrides[0]);
    return matbert::kCtlUsage;
  }
  if (status_cmd->parsed()) return matbert::RunStatus(conn, job_id, limit, mine);
  if (watch_cmd->parsed()) return matbert::RunWatch(conn, job_id);
  if (logs_cmd->parsed()) {
    logs.rank = rank;
    return matbert::RunLogs(conn, logs);
  }
  if (cancel_cmd->parsed()) return matbert::RunCancel(conn, job_id, force);
  if (checkpoints_cmd->parsed()) return matbert::RunCheckpoints(conn, job_id);
  if (download_cmd->parsed()) {
    download.step = step;
    return matbert::RunDownload(conn, download);
  }
  if (cluster_cmd->parsed()) return matbert::RunCluster(conn);
  return matbert::kCtlUsage;
}
