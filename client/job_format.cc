#include "client/job_format.h"

#include <cmath>
#include <ctime>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"

namespace matbert {

using Json = nlohmann::json;

std::string StateName(v1::JobState state) {
  return std::string(absl::StripPrefix(v1::JobState_Name(state), "JOB_STATE_"));
}

std::string Rfc3339(const google::protobuf::Timestamp& t) {
  if (t.seconds() == 0 && t.nanos() == 0) return "";
  const std::time_t seconds = t.seconds();
  std::tm tm;
  gmtime_r(&seconds, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string Age(const google::protobuf::Timestamp& t) {
  const int64_t s = std::max<int64_t>(0, std::time(nullptr) - t.seconds());
  if (s < 60) return absl::StrCat(s, "s");
  if (s < 3600) return absl::StrCat(s / 60, "m");
  if (s < 86400) return absl::StrCat(s / 3600, "h");
  return absl::StrCat(s / 86400, "d");
}

std::string Bytes(int64_t n) {
  if (n < 1000) return absl::StrCat(n, " B");
  if (n < 1000 * 1000) return absl::StrFormat("%.1f kB", n / 1e3);
  if (n < int64_t{1000} * 1000 * 1000) return absl::StrFormat("%.1f MB", n / 1e6);
  return absl::StrFormat("%.2f GB", n / 1e9);
}

std::string OwnerText(const std::string& owner) { return owner.empty() ? "-" : owner; }

std::string DevicesText(const v1::Job& job) {
  if (!job.nodes().empty()) return job.nodes();  // Slurm places the ranks on its nodes
  if (job.devices_size() > 0) {
    // "cpu:0", "cpu:1" → "cpu:0,1"
    const std::string& first = job.devices(0);
    const size_t colon = first.find(':');
    std::string text = first;
    for (int i = 1; i < job.devices_size(); ++i) {
      const std::string& d = job.devices(i);
      absl::StrAppend(&text, ",",
                      d.compare(0, colon + 1, first, 0, colon + 1) == 0 ? d.substr(colon + 1) : d);
    }
    return text;
  }
  if (job.state() == v1::JOB_STATE_QUEUED || job.state() == v1::JOB_STATE_RETRYING) {
    return absl::StrCat("wait ", job.devices_requested());
  }
  if (job.state() == v1::JOB_STATE_PENDING) return "pending";  // in the executor's queue
  return "-";
}

Json JobJson(const v1::Job& job, bool with_spec) {
  Json attempts = Json::array();
  for (const v1::Attempt& a : job.attempts()) {
    attempts.push_back({{"number", a.number()},
                        {"state", StateName(a.state())},
                        {"start_time", Rfc3339(a.start_time())},
                        {"end_time", Rfc3339(a.end_time())},
                        {"reason", a.reason()},
                        {"resumed_from_step", a.resumed_from_step()}});
  }
  Json out = {
      {"id", job.id()},
      {"name", job.name()},
      {"owner", job.owner()},
      {"kind", job.kind()},
      {"state", StateName(job.state())},
      {"priority", job.priority()},
      {"devices_requested", job.devices_requested()},
      {"devices", Json(std::vector<std::string>(job.devices().begin(), job.devices().end()))},
      {"nodes", job.nodes()},
      {"step", job.step()},
      {"total_steps", job.total_steps()},
      {"loss", std::isnan(job.loss()) ? Json(nullptr) : Json(job.loss())},
      {"submit_time", Rfc3339(job.submit_time())},
      {"start_time", Rfc3339(job.start_time())},
      {"end_time", Rfc3339(job.end_time())},
      {"failure", job.failure()},
      {"reason", job.reason()},
      {"max_restarts", job.max_restarts()},
      {"queue_position", job.queue_position()},
      {"run_dir", job.run_dir()},
      {"attempts", attempts}};
  if (with_spec) out["spec_toml"] = job.spec_toml();
  return out;
}

Json CheckpointJson(const v1::CheckpointInfo& info) {
  Json eval = Json::object();
  for (const auto& [key, value] : info.eval()) eval[key] = value;
  return {{"step", info.step()},
          {"size_bytes", info.size_bytes()},
          {"time", Rfc3339(info.time())},
          {"path", info.path()},
          {"eval", eval}};
}

Json ClusterJson(const v1::Cluster& cluster) {
  Json devices = Json::array(), queue = Json::array(), by_state = Json::object();
  for (const v1::Device& d : cluster.devices()) {
    devices.push_back({{"id", d.id()},
                       {"kind", d.kind()},
                       {"name", d.name()},
                       {"memory_bytes", d.memory_bytes()},
                       {"job_id", d.job_id()}});
  }
  for (const v1::QueuedJob& q : cluster.queue()) {
    queue.push_back({{"job_id", q.job_id()},
                     {"name", q.name()},
                     {"owner", q.owner()},
                     {"priority", q.priority()},
                     {"devices_requested", q.devices_requested()}});
  }
  for (const auto& [state, count] : cluster.jobs_by_state()) by_state[state] = count;
  Json nodes = Json::array(), slurm_queue = Json::array();
  for (const v1::ClusterNode& n : cluster.nodes()) {
    nodes.push_back({{"name", n.name()},
                     {"state", n.state()},
                     {"cpus", n.cpus()},
                     {"cpus_allocated", n.cpus_allocated()},
                     {"gres", n.gres()},
                     {"partitions", Json(std::vector<std::string>(n.partitions().begin(),
                                                                  n.partitions().end()))}});
  }
  for (const v1::ClusterQueueEntry& e : cluster.slurm_queue()) {
    slurm_queue.push_back({{"id", e.id()},
                           {"name", e.name()},
                           {"state", e.state()},
                           {"reason", e.reason()},
                           {"nodes", e.nodes()}});
  }
  return {{"backend", cluster.backend()},
          {"nodes", nodes},
          {"slurm_queue", slurm_queue},
          {"device_kind", cluster.device_kind()},
          {"devices", devices},
          {"queue", queue},
          {"jobs_by_state", by_state},
          {"version", cluster.version()},
          {"executor_trouble", cluster.executor_trouble()},
          {"executor_age_s", cluster.executor_age_s()}};
}

Json EventJson(const v1::JobEvent& e) {
  Json out = {{"seq", e.seq()}, {"time", Rfc3339(e.time())}};
  switch (e.event_case()) {
    case v1::JobEvent::kStateChange:
      out["type"] = "state";
      out["state"] = StateName(e.state_change().state());
      out["attempt"] = e.state_change().attempt();
      out["reason"] = e.state_change().reason();
      break;
    case v1::JobEvent::kMetrics: {
      out["type"] = "metrics";
      out["kind"] = e.metrics().kind();
      out["step"] = e.metrics().step();
      Json values = Json::object();
      for (const auto& [key, value] : e.metrics().values()) values[key] = value;
      out["values"] = values;
      break;
    }
    case v1::JobEvent::kCheckpoint:
      out["type"] = "checkpoint";
      out["step"] = e.checkpoint().step();
      out["path"] = e.checkpoint().path();
      break;
    case v1::JobEvent::kLog:
      out["type"] = "log";
      out["rank"] = e.log().rank();
      out["text"] = e.log().text();
      break;
    default:
      out["type"] = "unknown";
  }
  return out;
}

void PrintJson(const Json& value) {
  std::fputs(value.dump().c_str(), stdout);
  std::fputc('\n', stdout);
  std::fflush(stdout);
}

}  // namespace matbert
