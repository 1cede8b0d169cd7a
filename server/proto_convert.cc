#include "server/proto_convert.h"

#include <google/protobuf/util/time_util.h>

#include <cmath>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"

namespace matbert {

using Json = nlohmann::json;

grpc::Status ToGrpc(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  // absl and gRPC share the canonical code numbers.
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()), std::string(status.message()));
}

v1::JobState ToProto(JobState state) { return static_cast<v1::JobState>(static_cast<int>(state)); }

void SetTimestamp(int64_t unix_ms, google::protobuf::Timestamp* out) {
  *out = google::protobuf::util::TimeUtil::MillisecondsToTimestamp(unix_ms);
}

void ToProto(const JobView& view, const CoordinatorOptions& options, v1::Job* out) {
  const JobRecord& job = view.job;
  out->set_id(job.id);
  out->set_name(job.name);
  out->set_kind(job.kind);
  out->set_state(ToProto(job.state));
  out->set_priority(job.priority);
  out->set_devices_requested(job.devices_requested);
  for (int d : job.devices) {
    if (d >= 0 && d < static_cast<int>(options.devices.size())) {
      out->add_devices(options.devices[d].id);
    }
  }
  out->set_spec_toml(job.spec_toml);
  SetTimestamp(job.submit_ms, out->mutable_submit_time());
  if (job.start_ms > 0) SetTimestamp(job.start_ms, out->mutable_start_time());
  if (job.end_ms > 0) SetTimestamp(job.end_ms, out->mutable_end_time());
  out->set_step(job.step);
  out->set_total_steps(job.total_steps);
  out->set_loss(job.has_loss ? job.loss : std::nan(""));
  out->set_failure(job.failure);
  out->set_max_restarts(job.max_restarts);
  out->set_queue_position(view.queue_position);
  out->set_run_dir(view.run_dir);
  for (const AttemptRecord& a : view.attempts) {
    v1::Attempt* attempt = out->add_attempts();
    attempt->set_number(a.number);
    attempt->set_state(ToProto(a.state));
    SetTimestamp(a.start_ms, attempt->mutable_start_time());
    if (a.end_ms > 0) SetTimestamp(a.end_ms, attempt->mutable_end_time());
    attempt->set_reason(a.reason);
    attempt->set_resumed_from_step(a.resumed_from_step);
  }
}

bool ToProto(const EventRecord& event, v1::JobEvent* out) {
  Json p = Json::parse(event.payload, nullptr, false);
  if (!p.is_object()) return false;
  out->set_seq(event.seq);
  SetTimestamp(event.time_ms, out->mutable_time());
  if (event.kind == "state") {
    v1::StateChange* change = out->mutable_state_change();
    change->set_state(ToProto(ParseJobState(p.value("state", "")).value_or(JobState::kFailed)));
    change->set_attempt(p.value("attempt", 0));
    change->set_reason(p.value("reason", ""));
  } else if (event.kind == "metrics") {
    v1::Metrics* metrics = out->mutable_metrics();
    metrics->set_kind(p.value("kind", ""));
    metrics->set_step(p.value("step", int64_t{0}));
    if (p.contains("values") && p["values"].is_object()) {
      for (const auto& [key, value] : p["values"].items()) {
        if (value.is_number()) (*metrics->mutable_values())[key] = value.get<double>();
      }
    }
  } else if (event.kind == "checkpoint") {
    out->mutable_checkpoint()->set_step(p.value("step", int64_t{0}));
    out->mutable_checkpoint()->set_path(p.value("path", ""));
  } else {
    return false;
  }
  return true;
}

void ToProto(const ClusterView& view, v1::Cluster* out) {
  out->set_device_kind(view.devices.empty() ? "" : view.devices[0].kind);
  for (size_t i = 0; i < view.devices.size(); ++i) {
    const DeviceInfo& d = view.devices[i];
    v1::Device* device = out->add_devices();
    device->set_id(d.id);
    device->set_kind(d.kind);
    device->set_name(d.name);
    device->set_memory_bytes(d.memory_bytes);
    device->set_job_id(view.holders[i]);
  }
  for (const JobRecord& job : view.queue) {
    v1::QueuedJob* q = out->add_queue();
    q->set_job_id(job.id);
    q->set_name(job.name);
    q->set_priority(job.priority);
    q->set_devices_requested(job.devices_requested);
  }
  for (const auto& [state, count] : view.jobs_by_state)
    (*out->mutable_jobs_by_state())[state] = count;
}

}  // namespace matbert
