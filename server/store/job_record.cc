#include "server/store/job_record.h"

namespace matbert {
namespace {

constexpr struct {
  JobState state;
  const char* name;
} kStateNames[] = {
    {JobState::kQueued, "QUEUED"},       {JobState::kStarting, "STARTING"},
    {JobState::kRunning, "RUNNING"},     {JobState::kRetrying, "RETRYING"},
    {JobState::kSucceeded, "SUCCEEDED"}, {JobState::kFailed, "FAILED"},
    {JobState::kCancelled, "CANCELLED"}, {JobState::kPending, "PENDING"},
};

}  // namespace

const char* JobStateName(JobState state) {
  for (const auto& entry : kStateNames) {
    if (entry.state == state) return entry.name;
  }
  return "UNSPECIFIED";
}

std::optional<JobState> ParseJobState(absl::string_view name) {
  for (const auto& entry : kStateNames) {
    if (name == entry.name) return entry.state;
  }
  return std::nullopt;
}

bool IsFinal(JobState state) {
  return state == JobState::kSucceeded || state == JobState::kFailed ||
         state == JobState::kCancelled;
}

}  // namespace matbert
