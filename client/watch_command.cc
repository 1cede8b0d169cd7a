// matbertctl watch JOB: follows WatchJob to the job's end — a redrawn progress line on a
// terminal (step/total, loss, grad-norm, lr, tokens/s, ETA, latest eval against its
// baselines), plain lines otherwise, JSON lines with --json — then a summary. A restart of
// matbertd is ridden out by reconnecting after the last event seen.
#include <sys/ioctl.h>
#include <unistd.h>

#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "client/commands.h"
#include "client/exit_codes.h"
#include "client/job_format.h"
#include "common/progress_bar.h"

namespace matbert {
namespace {

double Value(const v1::Metrics& m, const std::string& key);

// "masked RMSE 0.4123 (mean 0.99, ALS 0.69, soft-impute 0.55)": an eval record in one phrase.
std::string EvalPhrase(const v1::Metrics& eval) {
  return absl::StrFormat("masked RMSE %.4f (mean %.4f, ALS %.4f, soft-impute %.4f)",
                         Value(eval, "eval_rmse"), Value(eval, "baseline_mean_rmse"),
                         Value(eval, "baseline_als_rmse"),
                         Value(eval, "baseline_soft_impute_rmse"));
}

double Value(const v1::Metrics& m, const std::string& key) {
  auto it = m.values().find(key);
  return it == m.values().end() ? std::nan("") : it->second;
}

// What the progress line shows.
struct Progress {
  v1::Metrics train;  // latest "train" record
  v1::Metrics eval;   // latest "eval" record
  std::string last_checkpoint;

  std::string Line(int width) const {
    const int64_t step = train.step();
    const double total = Value(train, "total_steps");
    std::string bar;
    if (width > 0 && total > 0) {
      const int filled = static_cast<int>(width * std::min(1.0, step / total));
      bar = absl::StrCat("[", std::string(filled, '#'), std::string(width - filled, '.'), "] ");
    }
    std::string line = absl::StrFormat(
        "%s%d/%.0f | loss %.4f | grad-norm %.3f | lr %.3g | %.0f tok/s | ETA %s", bar, step, total,
        Value(train, "loss"), Value(train, "grad_norm"), Value(train, "lr"),
        Value(train, "tokens_per_second"),
        std::isnan(Value(train, "eta_seconds")) ? "-"
                                                : FormatDuration(Value(train, "eta_seconds")));
    if (eval.step() > 0) {
      absl::StrAppend(&line, " | eval ", EvalPhrase(eval));
    }
    return line;
  }
};

int ExitCodeFor(v1::JobState state) {
  if (state == v1::JOB_STATE_SUCCEEDED) return kCtlOk;
  if (state == v1::JOB_STATE_CANCELLED) return kCtlJobCancelled;
  return kCtlJobFailed;
}

}  // namespace

int RunWatch(Connection& conn, const std::string& job_id) {
  const bool json = conn.options().json;
  const bool terminal = !json && isatty(STDOUT_FILENO);
  Progress progress;
  bool drawn = false;  // a progress line is on screen, to be overwritten
  auto clear = [&] {
    if (drawn) std::fputs("\r\033[K", stdout);
    drawn = false;
  };
  int64_t last_seq = 0;
  v1::JobState final_state = v1::JOB_STATE_UNSPECIFIED;
  Reconnector reconnector(conn);
  while (final_state == v1::JOB_STATE_UNSPECIFIED) {
    v1::WatchJobRequest request;
    request.set_job_id(job_id);
    request.set_after_seq(last_seq);
    auto ctx = conn.NewContext(0);
    auto stream = conn.jobs().WatchJob(ctx.get(), request);
    v1::JobEvent event;
    while (stream->Read(&event)) {
      reconnector.Reset();
      last_seq = event.seq();
      if (json) {
        PrintJson(EventJson(event));
      } else if (event.has_state_change()) {
        clear();
        const v1::StateChange& c = event.state_change();
        absl::PrintF("%s  %s%s\n", Rfc3339(event.time()), StateName(c.state()),
                     c.reason().empty() ? "" : absl::StrCat(": ", c.reason()));
      } else if (event.has_metrics()) {
        const v1::Metrics& m = event.metrics();
        if (m.kind() == "train") progress.train = m;
        if (m.kind() == "eval") progress.eval = m;
        if (terminal && m.kind() == "train") {
          clear();
          // A wrapped line could not be redrawn in place: cut it to the terminal's width.
          std::string line = progress.Line(20);
          winsize size{};
          if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &size) == 0 && size.ws_col > 1 &&
              line.size() >= size.ws_col) {
            line.resize(size.ws_col - 1);
          }
          std::fputs(line.c_str(), stdout);
          drawn = true;
        } else if (!terminal && (m.kind() == "train" || m.kind() == "eval")) {
          absl::PrintF("%s\n", m.kind() == "train"
                                   ? absl::StrCat("step ", progress.Line(0))
                                   : absl::StrCat("eval step ", m.step(), ": ", EvalPhrase(m)));
        }
      } else if (event.has_checkpoint()) {
        progress.last_checkpoint = event.checkpoint().path();
        if (!terminal) absl::PrintF("checkpoint %s\n", event.checkpoint().path());
      }
      if (event.has_state_change()) {
        const v1::JobState s = event.state_change().state();
        if (s == v1::JOB_STATE_SUCCEEDED || s == v1::JOB_STATE_FAILED ||
            s == v1::JOB_STATE_CANCELLED) {
          final_state = s;
        }
      }
      std::fflush(stdout);
    }
    grpc::Status status = stream->Finish();
    if (final_state != v1::JOB_STATE_UNSPECIFIED) break;
    if (status.ok()) continue;  // the daemon ended the stream early; resume after last_seq
    clear();
    if (!reconnector.ShouldRetry(status)) return conn.Fail(status, "watch " + job_id);
  }
  clear();
  if (json) return ExitCodeFor(final_state);

  // Summary from the job itself.
  v1::GetJobRequest get;
  get.set_job_id(job_id);
  v1::Job job;
  auto ctx = conn.NewContext();
  if (conn.jobs().GetJob(ctx.get(), get, &job).ok()) {
    const double seconds = job.has_end_time() && job.has_start_time()
                               ? job.end_time().seconds() - job.start_time().seconds()
                               : 0;
    absl::PrintF("job %s %s after %s: step %d of %d, loss %s\n", job_id, StateName(job.state()),
                 FormatDuration(seconds), job.step(), job.total_steps(),
                 std::isnan(job.loss()) ? "-" : absl::StrFormat("%.4f", job.loss()));
    if (progress.eval.step() > 0) {
      absl::PrintF("eval at step %d: %s\n", progress.eval.step(), EvalPhrase(progress.eval));
    }
    if (!job.failure().empty()) absl::PrintF("reason: %s\n", job.failure());
    if (!progress.last_checkpoint.empty()) {
      absl::PrintF("checkpoint: %s/%s\n  download it with: matbertctl download %s\n", job.run_dir(),
                   progress.last_checkpoint, job_id);
    }
  }
  return ExitCodeFor(final_state);
}

}  // namespace matbert
