#include "server/proto_convert.h"

#include <google/protobuf/util/time_util.h>

#include <cmath>

#include "absl/strings/str_cat.h"
#include "proto/metrics_convert.h"
#include "server/core/event_payload.h"

namespace matbert {

grpc::Status ToGrpc(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  // absl and gRPC share the canonical code numbers.
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()), std::string(status.message()));
}

v1::JobState ToProto(JobState state) { return static_cast<v1::JobState>(static_cast<int>(state)); }

void SetTimestamp(int64_t unix_ms, google::protobuf::Timestamp* out) {
  *out = google::protobuf::util::TimeUtil::MillisecondsToTimestamp(unix_ms);
}

SubmitRequest FromProto(const v1::SubmitJobRequest& request, const std::string& owner) {
  SubmitRequest submit;
  submit.spec_toml = request.spec_toml();
  submit.overrides.assign(request.overrides().begin(), request.overrides().end());
  submit.source_name = request.source_name();
  submit.grace_period_s = request.grace_period_seconds();
  submit.owner = owner;
  return submit;
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
    // Slurm's rank slots are matbertd's bookkeeping, not places: the job's places are the
    // nodes Slurm runs it on (`nodes`), none while Slurm holds it in its queue.
    if (options.devices.front().kind == "slurm") break;
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
  out->set_owner(job.owner);
  out->set_reason(job.reason);
  out->set_nodes(view.nodes);
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
  out->set_seq(event.seq);
  SetTimestamp(event.time_ms, out->mutable_time());
  if (std::optional<StateEvent> state = DecodeStateEvent(event)) {
    v1::StateChange* change = out->mutable_state_change();
    change->set_state(ToProto(state->state));
    change->set_attempt(state->attempt);
    change->set_reason(state->reason);
  } else if (std::optional<MetricsEvent> metrics = DecodeMetricsEvent(event)) {
    ToProto(metrics->record, out->mutable_metrics());
  } else if (std::optional<CheckpointEvent> checkpoint = DecodeCheckpointEvent(event)) {
    out->mutable_checkpoint()->set_step(checkpoint->step);
    out->mutable_checkpoint()->set_path(checkpoint->path);
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
    q->set_owner(job.owner);
  }
  for (const auto& [state, count] : view.jobs_by_state)
    (*out->mutable_jobs_by_state())[state] = count;
  out->set_backend(view.executor.backend);
  out->set_executor_trouble(view.executor_trouble);
  out->set_executor_age_s(view.executor_age_s);
  for (const ExecutorCluster::Node& n : view.executor.nodes) {
    v1::ClusterNode* node = out->add_nodes();
    node->set_name(n.name);
    node->set_state(n.state);
    node->set_cpus(n.cpus);
    node->set_cpus_allocated(n.cpus_allocated);
    node->set_gres(n.gres);
    for (const std::string& p : n.partitions) node->add_partitions(p);
  }
  for (const ExecutorCluster::QueueEntry& e : view.executor.queue) {
    v1::ClusterQueueEntry* entry = out->add_slurm_queue();
    entry->set_id(e.id);
    entry->set_name(e.name);
    entry->set_state(e.state);
    entry->set_reason(e.reason);
    entry->set_nodes(e.nodes);
  }
}

}  // namespace matbert
