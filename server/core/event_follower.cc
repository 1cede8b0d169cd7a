#include "server/core/event_follower.h"

#include <utility>

namespace matbert {

EventFollower::EventFollower(Coordinator* coordinator, std::string job_id, int64_t after_seq,
                             bool include_logs, std::function<void()> wake)
    : coordinator_(coordinator),
      job_id_(std::move(job_id)),
      include_logs_(include_logs),
      seq_(after_seq),
      handle_(coordinator_->Subscribe(job_id_, std::move(wake))),
      logs_(coordinator_->RunDir(job_id_), {}, /*discover=*/true) {}

EventFollower::~EventFollower() { coordinator_->Unsubscribe(handle_); }

absl::StatusOr<EventFollower::Batch> EventFollower::Next() {
  // Subscribed before the first read, so no event stored after it goes unnoticed.
  absl::StatusOr<Coordinator::EventPage> page = coordinator_->Events(job_id_, seq_, kPage);
  if (!page.ok()) return page.status();
  Batch batch;
  batch.events = std::move(page->events);
  if (!batch.events.empty()) seq_ = batch.events.back().seq;
  if (include_logs_) batch.logs = logs_.Read();
  batch.more = static_cast<int>(batch.events.size()) == kPage;
  batch.ended = page->job_ended;
  return batch;
}

}  // namespace matbert
