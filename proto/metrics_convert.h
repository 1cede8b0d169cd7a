// The typed metrics record (common/worker_report.h) and run end as the API carries them: one
// conversion each way, for the rank that reports and the daemon that receives. Include only
// from .cc files that already speak gRPC.
#pragma once

#include "common/worker_report.h"
#include "matbert/v1/job.pb.h"
#include "matbert/v1/worker_service.pb.h"

namespace matbert {

inline void ToProto(const MetricsRecord& record, v1::Metrics* out) {
  out->set_kind(record.kind);
  out->set_step(record.step);
  out->mutable_values()->insert(record.values.begin(), record.values.end());
}

inline MetricsRecord FromProto(const v1::Metrics& metrics) {
  return {metrics.kind(), metrics.step(), {metrics.values().begin(), metrics.values().end()}};
}

inline v1::RunEnd ToProto(RunEnd end) {
  switch (end) {
    case RunEnd::kCompleted:
      return v1::RUN_END_COMPLETED;
    case RunEnd::kStopped:
      return v1::RUN_END_STOPPED;
    default:
      return v1::RUN_END_UNSPECIFIED;
  }
}

inline RunEnd FromProto(v1::RunEnd end) {
  switch (end) {
    case v1::RUN_END_COMPLETED:
      return RunEnd::kCompleted;
    case v1::RUN_END_STOPPED:
      return RunEnd::kStopped;
    default:
      return RunEnd::kUnknown;
  }
}

}  // namespace matbert
