// The scheduling policy of matbertd (DESIGN.md §7) as pure logic: devices and a queue in,
// placements out. No clocks, processes or I/O; the coordinator applies what it returns.
//
// Policy: jobs are ordered by priority (higher first), then by submission order. A job gets
// all the devices it asks for at once (gang) or none. Placement walks the queue in order and
// stops at the first job that does not fit: with no run-time estimates any job placed past
// it could delay it, so a large gang can never be starved by a stream of small jobs.
// A job asking for more devices than exist is refused at Enqueue.
#pragma once

#include <cstdint>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "absl/status/status.h"

namespace matbert {

struct QueuedJob {
  std::string id;
  int priority = 0;   // higher first
  int64_t order = 0;  // submission order, unique; lower first among equal priorities
  int devices = 1;    // gang size, >= 1
};

struct Placement {
  std::string job_id;
  std::vector<int> devices;  // indices into the device list, ascending
};

// Not thread-safe: the coordinator calls it under its own lock.
class GangScheduler {
 public:
  explicit GangScheduler(int num_devices);

  int num_devices() const { return static_cast<int>(holders_.size()); }
  int free_devices() const { return free_; }
  // The job holding device `index`, or "" when free.
  const std::string& holder(int index) const { return holders_[index]; }

  // Adds a job to the queue. InvalidArgument if it asks for 0 or more devices than exist;
  // AlreadyExists if the id is queued or holds devices.
  absl::Status Enqueue(const QueuedJob& job);
  // Removes a queued job; false if it was not queued.
  bool Dequeue(const std::string& job_id);
  // Marks devices as held by a job without queueing it (used when the coordinator restarts
  // and adopts running jobs). InvalidArgument if any of them is out of range or held.
  absl::Status Hold(const std::string& job_id, const std::vector<int>& devices);
  // Frees the devices a job holds; false if it held none.
  bool Release(const std::string& job_id);

  // Places queued jobs in order until one does not fit; the placed jobs leave the queue
  // and hold their devices (lowest free indices first).
  std::vector<Placement> Schedule();

  // The queue in placement order.
  std::vector<QueuedJob> Queue() const;
  size_t queue_size() const { return queue_.size(); }
  // 1-based position of a queued job, 0 if not queued. O(queue length).
  int QueuePosition(const std::string& job_id) const;

 private:
  struct Before {
    bool operator()(const QueuedJob& a, const QueuedJob& b) const {
      if (a.priority != b.priority) return a.priority > b.priority;
      return a.order < b.order;
    }
  };

  std::vector<std::string> holders_;  // per device
  int free_ = 0;
  std::set<QueuedJob, Before> queue_;
  std::unordered_map<std::string, QueuedJob> queued_by_id_;
  std::unordered_map<std::string, std::vector<int>> held_by_job_;
};

}  // namespace matbert
