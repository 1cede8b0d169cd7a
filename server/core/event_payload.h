// The payloads of stored job events (the `payload` column of matbert.db's events table), in
// one codec for the coordinator that writes them and everything that reads them (WatchJob,
// checkpoint listings, recovery). The payload layout is part of the store's schema version
// (server/store/job_store.cc): a change to it bumps the version with a migration of the
// stored payloads.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "common/worker_report.h"
#include "server/store/job_record.h"

namespace matbert {

// kind "state": the job changed state.
struct StateEvent {
  JobState state = JobState::kQueued;
  int attempt = 0;  // 0 before the first attempt
  std::string reason;
};

// kind "metrics": a record of rank 0 of `attempt`.
struct MetricsEvent {
  int attempt = 0;
  MetricsRecord record;
};

// kind "checkpoint": rank 0 of `attempt` finished a checkpoint.
struct CheckpointEvent {
  int attempt = 0;
  int64_t step = 0;
  std::string path;  // relative to the run directory
};

inline constexpr char kStateEventKind[] = "state";
inline constexpr char kMetricsEventKind[] = "metrics";
inline constexpr char kCheckpointEventKind[] = "checkpoint";

std::string EncodePayload(const StateEvent& event);
std::string EncodePayload(const MetricsEvent& event);
std::string EncodePayload(const CheckpointEvent& event);

// nullopt when the stored event is of another kind or its payload is not one of these.
std::optional<StateEvent> DecodeStateEvent(const EventRecord& event);
std::optional<MetricsEvent> DecodeMetricsEvent(const EventRecord& event);
std::optional<CheckpointEvent> DecodeCheckpointEvent(const EventRecord& event);

}  // namespace matbert
