// matbertctl submit: the spec is loaded and validated here first, so errors name the file,
// line and key before anything is sent; the daemon gets the resolved spec.
#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "client/commands.h"
#include "client/exit_codes.h"
#include "common/job_spec.h"

namespace matbert {

int RunSubmit(Connection& conn, const SubmitOptions& options) {
  std::vector<Override> overrides;
  for (const std::string& text : options.overrides) {
    absl::StatusOr<Override> o = ParseSetOverride(text);
    if (!o.ok()) {
      absl::FPrintF(stderr, "matbertctl submit: %s\n", o.status().message());
      return kCtlUsage;
    }
    overrides.push_back(*o);
  }
  if (options.name)
    overrides.push_back({"job.name", absl::StrCat("\"", *options.name, "\""), "--name"});
  if (options.nodes) overrides.push_back({"job.nodes", absl::StrCat(*options.nodes), "--nodes"});
  if (options.gpus) overrides.push_back({"job.gpus", absl::StrCat(*options.gpus), "--gpus"});
  if (options.priority) {
    overrides.push_back({"job.priority", absl::StrCat(*options.priority), "--priority"});
  }
  absl::StatusOr<JobSpec> spec = LoadJobSpec(options.file, overrides);
  if (!spec.ok()) {
    absl::FPrintF(stderr, "matbertctl submit: %s\n", spec.status().message());
    return kCtlError;
  }
  for (const std::string& note : spec->notes) {
    if (!options.quiet) absl::FPrintF(stderr, "matbertctl submit: note: %s\n", note);
  }
  v1::SubmitJobRequest request;
  request.set_spec_toml(spec->ToToml());
  request.set_source_name(options.file);
  v1::SubmitJobResponse response;
  auto ctx = conn.NewContext(30);  // admission may ask Slurm (sbatch --test-only, ≤ 3 s)
  grpc::Status status = conn.jobs().SubmitJob(ctx.get(), request, &response);
  if (!status.ok()) return conn.Fail(status, "submit " + options.file);
  if (options.quiet) {
    absl::PrintF("%s\n", response.job_id());
  } else if (conn.options().json) {
    absl::PrintF("{\"id\":\"%s\"}\n", response.job_id());
  } else {
    const v1::Job& job = response.job();
    absl::PrintF("%s\n", response.job_id());
    absl::FPrintF(
        stderr, "submitted %s (%s, %d %s, priority %d); follow it with: matbertctl watch %s\n",
        job.name(), job.kind(), job.devices_requested(),
        job.devices_requested() == 1 ? "device" : "devices", job.priority(), response.job_id());
  }
  std::fflush(stdout);
  if (options.watch) return RunWatch(conn, response.job_id());
  return kCtlOk;
}

}  // namespace matbert
