// matbertctl logs JOB [-f] [--rank R] [--tail N]: lines prefixed with their rank. Following
// survives a restart of matbertd: the stream is opened again from the byte offsets already
// printed, so no line is lost or repeated.
#include <map>

#include "absl/strings/str_format.h"
#include "client/commands.h"
#include "client/exit_codes.h"
#include "client/job_format.h"

namespace matbert {

int RunLogs(Connection& conn, const LogsOptions& options) {
  std::map<int, int64_t> offsets;  // rank -> offset just past the last line printed
  Reconnector reconnector(conn);
  while (true) {
    v1::StreamLogsRequest request;
    request.set_job_id(options.job_id);
    if (options.rank) request.set_rank(*options.rank);
    request.set_tail_lines(options.tail);
    request.set_follow(options.follow);
    for (const auto& [rank, offset] : offsets) (*request.mutable_resume_offsets())[rank] = offset;
    auto ctx = conn.NewContext(0);
    auto stream = conn.jobs().StreamLogs(ctx.get(), request);
    v1::LogBatch batch;
    while (stream->Read(&batch)) {
      reconnector.Reset();
      for (const v1::LogLine& line : batch.lines()) {
        offsets[line.rank()] = line.offset();
        if (conn.options().json) {
          PrintJson({{"rank", line.rank()}, {"text", line.text()}, {"offset", line.offset()}});
        } else {
          absl::PrintF("[rank %d] %s\n", line.rank(), line.text());
        }
      }
      std::fflush(stdout);
    }
    grpc::Status status = stream->Finish();
    if (status.ok()) return kCtlOk;
    // Once something was printed, a reconnect resumes from the offsets, not from --tail.
    if (!options.follow || !reconnector.ShouldRetry(status)) {
      return conn.Fail(status, "logs " + options.job_id);
    }
  }
}

}  // namespace matbert
