// matbertctl cancel JOB [--force].
#include "absl/strings/str_format.h"
#include "client/commands.h"
#include "client/exit_codes.h"
#include "client/job_format.h"

namespace matbert {

int RunCancel(Connection& conn, const std::string& job_id, bool force) {
  v1::CancelJobRequest request;
  request.set_job_id(job_id);
  request.set_force(force);
  v1::Job job;
  auto ctx = conn.NewContext();
  grpc::Status status = conn.jobs().CancelJob(ctx.get(), request, &job);
  if (!status.ok()) return conn.Fail(status, "cancel " + job_id);
  if (conn.options().json) {
    PrintJson(JobJson(job, false));
  } else if (job.state() == v1::JOB_STATE_CANCELLED) {
    absl::PrintF("cancelled %s (it had not started)\n", job_id);
  } else {
    absl::PrintF("cancelling %s: %s sent to its ranks%s\n", job_id, force ? "SIGKILL" : "SIGTERM",
                 force ? "" : "; SIGKILL follows after the grace period");
  }
  return kCtlOk;
}

}  // namespace matbert
