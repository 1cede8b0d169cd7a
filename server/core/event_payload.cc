#include "server/core/event_payload.h"

#include <nlohmann/json.hpp>

namespace matbert {
namespace {

using Json = nlohmann::json;

// The payload of an event of `kind` as a JSON object; null when it is another kind or not
// an object.
Json ObjectOf(const EventRecord& event, const char* kind) {
  if (event.kind != kind) return nullptr;
  Json p = Json::parse(event.payload, nullptr, /*allow_exceptions=*/false);
  return p.is_object() ? p : Json(nullptr);
}

}  // namespace

std::string EncodePayload(const StateEvent& event) {
  return Json{
      {"state", JobStateName(event.state)}, {"attempt", event.attempt}, {"reason", event.reason}}
      .dump();
}

std::string EncodePayload(const MetricsEvent& event) {
  Json values = Json::object();
  for (const auto& [key, value] : event.record.values) values[key] = value;
  return Json{{"attempt", event.attempt},
              {"kind", event.record.kind},
              {"step", event.record.step},
              {"values", values}}
      .dump();
}

std::string EncodePayload(const CheckpointEvent& event) {
  return Json{{"attempt", event.attempt}, {"step", event.step}, {"path", event.path}}.dump();
}

std::optional<StateEvent> DecodeStateEvent(const EventRecord& event) {
  const Json p = ObjectOf(event, kStateEventKind);
  if (p.is_null()) return std::nullopt;
  const std::optional<JobState> state = ParseJobState(p.value("state", ""));
  if (!state) return std::nullopt;
  return StateEvent{*state, p.value("attempt", 0), p.value("reason", "")};
}

std::optional<MetricsEvent> DecodeMetricsEvent(const EventRecord& event) {
  const Json p = ObjectOf(event, kMetricsEventKind);
  if (p.is_null()) return std::nullopt;
  MetricsEvent out;
  out.attempt = p.value("attempt", 0);
  out.record.kind = p.value("kind", "");
  out.record.step = p.value("step", int64_t{0});
  if (const auto values = p.find("values"); values != p.end() && values->is_object()) {
    for (const auto& [key, value] : values->items()) {
      if (value.is_number()) out.record.values[key] = value.get<double>();
    }
  }
  return out;
}

std::optional<CheckpointEvent> DecodeCheckpointEvent(const EventRecord& event) {
  const Json p = ObjectOf(event, kCheckpointEventKind);
  if (p.is_null()) return std::nullopt;
  return CheckpointEvent{p.value("attempt", 0), p.value("step", int64_t{0}), p.value("path", "")};
}

}  // namespace matbert
