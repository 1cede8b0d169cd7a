// How matbertctl shows jobs: the stable JSON of --json (docs/matbertctl.md) and the pieces
// of its text tables (state names, ages, sizes, device lists).
#pragma once

#include <string>

#include "matbert/v1/cluster_service.pb.h"
#include "matbert/v1/job.pb.h"
#include "matbert/v1/job_service.pb.h"
#include "nlohmann/json.hpp"

namespace matbert {

// "RUNNING" for JOB_STATE_RUNNING.
std::string StateName(v1::JobState state);
// RFC 3339 UTC ("2026-11-23T05:41:07Z"), or "" for an unset time.
std::string Rfc3339(const google::protobuf::Timestamp& t);
// Seconds since `t`, as "45s", "12m", "3h", "2d".
std::string Age(const google::protobuf::Timestamp& t);
// "512 B", "10.6 MB".
std::string Bytes(int64_t n);
// Held devices as "cpu:0,1", else "wait N" while queued, "-" once ended.
std::string DevicesText(const v1::Job& job);
// A job's owner, or "-" when the daemon takes no tokens.
std::string OwnerText(const std::string& owner);

nlohmann::json JobJson(const v1::Job& job, bool with_spec);
nlohmann::json CheckpointJson(const v1::CheckpointInfo& info);
nlohmann::json ClusterJson(const v1::Cluster& cluster);
nlohmann::json EventJson(const v1::JobEvent& event);

// Prints a JSON value on one line of stdout.
void PrintJson(const nlohmann::json& value);

}  // namespace matbert
