// matbertctl status [JOB]: the jobs table, or one job in detail.
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "client/commands.h"
#include "client/exit_codes.h"
#include "client/job_format.h"

namespace matbert {
namespace {

// Cuts `text` to `width` columns, marking the cut with "~".
std::string Fit(const std::string& text, size_t width) {
  return text.size() <= width ? text : text.substr(0, width - 1) + "~";
}

std::string LossText(double loss) { return std::isnan(loss) ? "-" : absl::StrFormat("%.4f", loss); }

// One job in detail, attempts included.
void PrintJob(const v1::Job& job) {
  absl::PrintF("job %s  %s  %s\n", job.id(), job.name(), StateName(job.state()));
  absl::PrintF("  owner       %s\n", OwnerText(job.owner()));
  absl::PrintF("  kind        %s, %d device(s), priority %d, max restarts %d\n", job.kind(),
               job.devices_requested(), job.priority(), job.max_restarts());
  if (job.queue_position() > 0) absl::PrintF("  queue       position %d\n", job.queue_position());
  if (job.devices_size() > 0) absl::PrintF("  devices     %s\n", DevicesText(job));
  if (!job.nodes().empty()) absl::PrintF("  nodes       %s\n", job.nodes());
  absl::PrintF("  progress    step %d of %d, loss %s\n", job.step(), job.total_steps(),
               LossText(job.loss()));
  absl::PrintF("  submitted   %s (%s ago)\n", Rfc3339(job.submit_time()), Age(job.submit_time()));
  if (job.has_start_time()) absl::PrintF("  started     %s\n", Rfc3339(job.start_time()));
  if (job.has_end_time()) absl::PrintF("  ended       %s\n", Rfc3339(job.end_time()));
  absl::PrintF("  run dir     %s\n", job.run_dir());
  // Why it is where it is (what a waiting job waits for); the failure when that is the news.
  if (!job.reason().empty()) absl::PrintF("  reason      %s\n", job.reason());
  if (!job.failure().empty() && job.failure() != job.reason()) {
    absl::PrintF("  failure     %s\n", job.failure());
  }
  for (const v1::Attempt& a : job.attempts()) {
    absl::PrintF("  attempt %d   %s, started %s%s%s\n", a.number(), StateName(a.state()),
                 Rfc3339(a.start_time()),
                 a.resumed_from_step() > 0
                     ? absl::StrCat(", resumed from step ", a.resumed_from_step())
                     : "",
                 a.reason().empty() ? "" : absl::StrCat(": ", a.reason()));
  }
}

}  // namespace

int RunStatus(Connection& conn, const std::string& job_id, int limit, bool mine) {
  if (!job_id.empty()) {
    v1::GetJobRequest request;
    request.set_job_id(job_id);
    v1::Job job;
    auto ctx = conn.NewContext();
    grpc::Status status = conn.jobs().GetJob(ctx.get(), request, &job);
    if (!status.ok()) return conn.Fail(status, "status " + job_id);
    if (conn.options().json) {
      PrintJson(JobJson(job, /*with_spec=*/true));
    } else {
      PrintJob(job);
    }
    return kCtlOk;
  }
  v1::ListJobsRequest request;
  request.set_limit(limit);
  request.set_mine(mine);
  v1::ListJobsResponse response;
  auto ctx = conn.NewContext();
  grpc::Status status = conn.jobs().ListJobs(ctx.get(), request, &response);
  if (!status.ok()) return conn.Fail(status, "status");
  if (conn.options().json) {
    nlohmann::json jobs = nlohmann::json::array();
    for (const v1::Job& job : response.jobs()) jobs.push_back(JobJson(job, false));
    PrintJson({{"jobs", jobs}});
    return kCtlOk;
  }
  // 80 columns: 6 + 8 + 14 + 9 + 7 + 11 + 7 + 4, two spaces apart.
  absl::PrintF("%-6s  %-8s  %-14s  %-9s  %-7s  %-11s  %-7s  %s\n", "ID", "OWNER", "NAME", "STATE",
               "DEVICES", "STEP/TOTAL", "LOSS", "AGE");
  for (const v1::Job& job : response.jobs()) {
    absl::PrintF("%-6s  %-8s  %-14s  %-9s  %-7s  %-11s  %-7s  %s\n", job.id(),
                 Fit(OwnerText(job.owner()), 8), Fit(job.name(), 14), StateName(job.state()),
                 Fit(DevicesText(job), 7),
                 Fit(absl::StrCat(job.step(), "/", job.total_steps()), 11),
                 Fit(LossText(job.loss()), 7), Age(job.submit_time()));
  }
  if (response.jobs_size() == 0) {
    absl::FPrintF(stderr,
                  "no jobs%s yet; submit one with: matbertctl submit "
                  "configs/bert_matcomp_cpu.toml\n",
                  mine ? " of yours" : "");
  }
  return kCtlOk;
}

}  // namespace matbert
