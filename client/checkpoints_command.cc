// matbertctl checkpoints JOB: step, size, time, eval RMSE and path of each checkpoint.
#include "absl/strings/str_format.h"
#include "client/commands.h"
#include "client/exit_codes.h"
#include "client/job_format.h"

namespace matbert {

int RunCheckpoints(Connection& conn, const std::string& job_id) {
  v1::ListCheckpointsRequest request;
  request.set_job_id(job_id);
  v1::ListCheckpointsResponse response;
  auto ctx = conn.NewContext();
  grpc::Status status = conn.jobs().ListCheckpoints(ctx.get(), request, &response);
  if (!status.ok()) return conn.Fail(status, "checkpoints " + job_id);
  if (conn.options().json) {
    nlohmann::json list = nlohmann::json::array();
    for (const v1::CheckpointInfo& c : response.checkpoints()) list.push_back(CheckpointJson(c));
    PrintJson({{"job_id", job_id}, {"checkpoints", list}});
    return kCtlOk;
  }
  if (response.checkpoints_size() == 0) {
    absl::PrintF("job %s has no checkpoint yet\n", job_id);
    return kCtlOk;
  }
  absl::PrintF("%-9s  %-10s  %-20s  %-10s  %s\n", "STEP", "SIZE", "TIME", "EVAL RMSE", "PATH");
  for (const v1::CheckpointInfo& c : response.checkpoints()) {
    auto rmse = c.eval().find("eval_rmse");
    absl::PrintF("%-9d  %-10s  %-20s  %-10s  %s\n", c.step(), Bytes(c.size_bytes()),
                 Rfc3339(c.time()),
                 rmse == c.eval().end() ? "-" : absl::StrFormat("%.4f", rmse->second), c.path());
  }
  return kCtlOk;
}

}  // namespace matbert
