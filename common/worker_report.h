// What a rank reports about its run, in the one typed form that travels from the trainer to
// matbertd's store and on to clients (DESIGN.md §6, §9): a metrics record is a kind, a step
// and named numbers, whether it is a line of metrics.jsonl, a ReportMetrics message, a stored
// event or a WatchJob event; and how the run ended travels with the rank's exit (ReportExit),
// not inside a metrics record.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace matbert {

struct MetricsRecord {
  std::string kind;  // "train" | "eval" | "summary" | "generate"
  int64_t step = 0;
  std::map<std::string, double> values;  // loss, grad_norm, lr, eval_rmse, …

  bool operator==(const MetricsRecord&) const = default;
};

// A line of metrics.jsonl as a record: "kind" and "step" are taken out; every other number
// is a value, a boolean 1 or 0, an object's numbers "key.inner"; strings are left out (they
// stay in the file). nullopt for a line that is not a JSON object, or a "checkpoint" line
// (announced on its own, not as metrics).
std::optional<MetricsRecord> ParseMetricsLine(std::string_view line);

// How a training run ended, as rank 0 says when it exits.
enum class RunEnd {
  kUnknown,    // not said (a rank other than 0, a generate job, an older worker)
  kCompleted,  // every step ran
  kStopped,    // a signal stopped it after a checkpoint
};

// "", "COMPLETED", "STOPPED"; parsing takes anything else as kUnknown.
const char* RunEndName(RunEnd end);
RunEnd ParseRunEnd(std::string_view name);

}  // namespace matbert
