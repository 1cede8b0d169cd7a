#include "server/core/event_log.h"

#include <algorithm>

namespace matbert {

absl::StatusOr<int64_t> EventLog::Append(const std::string& job_id, int64_t time_ms,
                                         const std::string& kind, const std::string& payload,
                                         const std::string& dedupe_key) {
  // One writer at a time keeps seq and the memory copy in the same order.
  std::lock_guard<std::mutex> lock(mu_);
  absl::StatusOr<int64_t> seq = store_->AppendEvent(job_id, time_ms, kind, payload, dedupe_key);
  if (!seq.ok() || *seq == 0) return seq;
  std::deque<EventRecord>& recent = recent_[job_id];
  if (!recent.empty() && recent.back().seq != *seq - 1) recent.clear();  // a gap: start over
  recent.push_back({*seq, time_ms, kind, payload});
  if (recent.size() > kRecentEvents) recent.pop_front();
  pending_.push_back(job_id);
  return seq;
}

void EventLog::Close(const std::string& job_id) {
  std::lock_guard<std::mutex> lock(mu_);
  recent_.erase(job_id);
}

absl::StatusOr<std::vector<EventRecord>> EventLog::After(const std::string& job_id,
                                                         int64_t after_seq, int limit) const {
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = recent_.find(job_id);
    if (it != recent_.end() && !it->second.empty() && it->second.front().seq <= after_seq + 1) {
      const std::deque<EventRecord>& recent = it->second;
      std::vector<EventRecord> events;
      for (auto e = recent.begin() + std::max<int64_t>(0, after_seq + 1 - recent.front().seq);
           e != recent.end() && static_cast<int>(events.size()) < limit; ++e) {
        events.push_back(*e);
      }
      return events;
    }
  }
  return store_->EventsAfter(job_id, after_seq, limit);
}

int64_t EventLog::Subscribe(const std::string& job_id, std::function<void()> wake) {
  std::lock_guard<std::mutex> lock(mu_);
  const int64_t handle = next_handle_++;
  watchers_[handle] = {job_id, std::move(wake)};
  return handle;
}

void EventLog::Unsubscribe(int64_t handle) {
  std::lock_guard<std::mutex> lock(mu_);
  watchers_.erase(handle);
}

void EventLog::NotifyPending() {
  std::vector<std::function<void()>> wakes;
  {
    std::lock_guard<std::mutex> lock(mu_);
    std::sort(pending_.begin(), pending_.end());
    pending_.erase(std::unique(pending_.begin(), pending_.end()), pending_.end());
    for (const auto& [handle, watcher] : watchers_) {
      if (std::binary_search(pending_.begin(), pending_.end(), watcher.first)) {
        wakes.push_back(watcher.second);
      }
    }
    pending_.clear();
  }
  for (const auto& wake : wakes) wake();
}

}  // namespace matbert
