#include "server/scheduler/gang_scheduler.h"

#include "absl/strings/str_cat.h"

namespace matbert {

GangScheduler::GangScheduler(int num_devices) : holders_(num_devices), free_(num_devices) {}

absl::Status GangScheduler::Enqueue(const QueuedJob& job) {
  if (job.devices < 1 || job.devices > num_devices()) {
    return absl::InvalidArgumentError(absl::StrCat("job.gpus must be between 1 and ", num_devices(),
                                                   " (the devices of this host), got ",
                                                   job.devices));
  }
  if (queued_by_id_.count(job.id) || held_by_job_.count(job.id)) {
    return absl::AlreadyExistsError(absl::StrCat("job ", job.id, " is already scheduled"));
  }
  queue_.insert(job);
  queued_by_id_.emplace(job.id, job);
  return absl::OkStatus();
}

bool GangScheduler::Dequeue(const std::string& job_id) {
  auto it = queued_by_id_.find(job_id);
  if (it == queued_by_id_.end()) return false;
  queue_.erase(it->second);
  queued_by_id_.erase(it);
  return true;
}

absl::Status GangScheduler::Hold(const std::string& job_id, const std::vector<int>& devices) {
  if (held_by_job_.count(job_id)) {
    return absl::AlreadyExistsError(absl::StrCat("job ", job_id, " already holds devices"));
  }
  for (int d : devices) {
    if (d < 0 || d >= num_devices()) {
      return absl::InvalidArgumentError(absl::StrCat("device ", d, " does not exist"));
    }
    if (!holders_[d].empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("device ", d, " is held by job ", holders_[d]));
    }
  }
  for (int d : devices) holders_[d] = job_id;
  free_ -= static_cast<int>(devices.size());
  held_by_job_[job_id] = devices;
  return absl::OkStatus();
}

bool GangScheduler::Release(const std::string& job_id) {
  auto it = held_by_job_.find(job_id);
  if (it == held_by_job_.end()) return false;
  for (int d : it->second) holders_[d].clear();
  free_ += static_cast<int>(it->second.size());
  held_by_job_.erase(it);
  return true;
}

std::vector<Placement> GangScheduler::Schedule() {
  std::vector<Placement> placements;
  while (!queue_.empty() && queue_.begin()->devices <= free_) {
    const QueuedJob job = *queue_.begin();
    Placement placement{job.id, {}};
    for (int d = 0; d < num_devices() && static_cast<int>(placement.devices.size()) < job.devices;
         ++d) {
      if (holders_[d].empty()) placement.devices.push_back(d);
    }
    Dequeue(job.id);
    // Cannot fail: the devices were free and the job held none.
    (void)Hold(job.id, placement.devices);
    placements.push_back(std::move(placement));
  }
  return placements;
}

std::vector<QueuedJob> GangScheduler::Queue() const { return {queue_.begin(), queue_.end()}; }

int GangScheduler::QueuePosition(const std::string& job_id) const {
  auto it = queued_by_id_.find(job_id);
  if (it == queued_by_id_.end()) return 0;
  return static_cast<int>(std::distance(queue_.begin(), queue_.find(it->second))) + 1;
}

}  // namespace matbert
