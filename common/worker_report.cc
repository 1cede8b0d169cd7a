#include "common/worker_report.h"

#include <nlohmann/json.hpp>

namespace matbert {

std::optional<MetricsRecord> ParseMetricsLine(std::string_view line) {
  const nlohmann::json json = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (!json.is_object()) return std::nullopt;
  MetricsRecord record;
  record.kind = json.value("kind", "");
  if (record.kind == "checkpoint") return std::nullopt;
  if (const auto step = json.find("step"); step != json.end() && step->is_number()) {
    record.step = step->get<int64_t>();
  }
  for (const auto& [key, value] : json.items()) {
    if (key == "kind" || key == "step") continue;
    if (value.is_number()) {
      record.values[key] = value.get<double>();
    } else if (value.is_boolean()) {
      record.values[key] = value.get<bool>() ? 1 : 0;
    } else if (value.is_object()) {  // e.g. summary.seconds_per_step.forward
      for (const auto& [inner, v] : value.items()) {
        if (v.is_number()) record.values[key + "." + inner] = v.get<double>();
      }
    }
  }
  return record;
}

const char* RunEndName(RunEnd end) {
  switch (end) {
    case RunEnd::kCompleted:
      return "COMPLETED";
    case RunEnd::kStopped:
      return "STOPPED";
    default:
      return "";
  }
}

RunEnd ParseRunEnd(std::string_view name) {
  if (name == "COMPLETED") return RunEnd::kCompleted;
  if (name == "STOPPED") return RunEnd::kStopped;
  return RunEnd::kUnknown;
}

}  // namespace matbert
