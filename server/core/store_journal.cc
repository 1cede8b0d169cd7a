#include "server/core/store_journal.h"

#include <spdlog/spdlog.h>

#include <utility>

#include "absl/strings/str_cat.h"

namespace matbert {

int64_t StoreJournal::Queue(Write write) {
  if (const auto* e = std::get_if<EventWrite>(&write.what)) ++queued_events_[e->job_id];
  const int64_t ticket = write.ticket;
  queue_.push_back(std::move(write));
  return ticket;
}

int64_t StoreJournal::InsertJob(const JobRecord& job) {
  std::lock_guard<std::mutex> lock(mu_);
  return Queue({JobWrite{job, true}, next_ticket_++});
}

void StoreJournal::SaveJob(const JobRecord& job) {
  std::lock_guard<std::mutex> lock(mu_);
  // The newest record goes last, after the events that led to it.
  for (auto it = queue_.begin(); it != queue_.end(); ++it) {
    const auto* queued = std::get_if<JobWrite>(&it->what);
    if (queued != nullptr && it->ticket == 0 && !queued->insert && queued->job.id == job.id) {
      queue_.erase(it);
      break;
    }
  }
  Queue({JobWrite{job, false}, 0});
}

int64_t StoreJournal::SaveAttempt(const AttemptRecord& attempt, bool ticketed) {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto it = queue_.begin(); it != queue_.end(); ++it) {
    const auto* queued = std::get_if<AttemptRecord>(&it->what);
    if (queued != nullptr && it->ticket == 0 && queued->job_id == attempt.job_id &&
        queued->number == attempt.number) {
      queue_.erase(it);
      break;
    }
  }
  return Queue({attempt, ticketed ? next_ticket_++ : 0});
}

int64_t StoreJournal::AppendEvent(const std::string& job_id, int64_t time_ms,
                                  const std::string& kind, const std::string& payload,
                                  const std::string& dedupe_key, bool job_ended, bool ticketed) {
  std::lock_guard<std::mutex> lock(mu_);
  const int64_t ticket = ticketed || !dedupe_key.empty() ? next_ticket_++ : 0;
  return Queue({EventWrite{job_id, time_ms, kind, payload, dedupe_key, job_ended}, ticket});
}

absl::Status StoreJournal::Store(const Write& write) {
  if (const auto* j = std::get_if<JobWrite>(&write.what)) {
    return j->insert ? store_->InsertJob(j->job) : store_->UpdateJob(j->job);
  }
  if (const auto* a = std::get_if<AttemptRecord>(&write.what)) return store_->PutAttempt(*a);
  const EventWrite& e = std::get<EventWrite>(write.what);
  absl::Status stored =
      events_->Append(e.job_id, e.time_ms, e.kind, e.payload, e.dedupe_key).status();
  if (stored.ok() && e.job_ended) events_->Close(e.job_id);
  return stored;
}

void StoreJournal::Flush() {
  std::lock_guard<std::mutex> writer(write_mu_);
  std::deque<Write> batch;
  {
    std::lock_guard<std::mutex> lock(mu_);
    batch.swap(queue_);
  }
  if (batch.empty()) return;
  size_t done = 0;
  absl::Status refused;
  std::map<int64_t, absl::Status> outcomes;
  for (; done < batch.size(); ++done) {
    absl::Status s = Store(batch[done]);
    if (!s.ok() && !absl::IsAlreadyExists(s)) {
      refused = std::move(s);
      break;
    }
    if (batch[done].ticket != 0) outcomes[batch[done].ticket] = std::move(s);
  }
  std::lock_guard<std::mutex> lock(mu_);
  outcomes_.merge(outcomes);
  std::deque<Write> kept;
  for (size_t i = 0; i < batch.size(); ++i) {
    const auto* e = std::get_if<EventWrite>(&batch[i].what);
    if (i >= done && batch[i].ticket == 0) {
      kept.push_back(std::move(batch[i]));  // still counted in queued_events_
      continue;
    }
    if (i >= done) outcomes_[batch[i].ticket] = refused;
    if (e != nullptr && --queued_events_[e->job_id] == 0) queued_events_.erase(e->job_id);
  }
  if (!refused.ok()) {
    NoteFailure(refused);
    // In front of whatever was queued meanwhile: the order stays the order decided.
    queue_.insert(queue_.begin(), std::make_move_iterator(kept.begin()),
                  std::make_move_iterator(kept.end()));
    return;
  }
  if (failing_) {
    spdlog::info("the job database is writable again; every waiting state and event is stored");
    failing_ = false;
  }
}

absl::Status StoreJournal::Outcome(int64_t ticket) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = outcomes_.find(ticket);
  if (it == outcomes_.end()) {
    return absl::InternalError(absl::StrCat("no outcome for store ticket ", ticket));
  }
  absl::Status outcome = std::move(it->second);
  outcomes_.erase(it);
  return outcome;
}

bool StoreJournal::EventsWait(const std::string& job_id) const {
  std::lock_guard<std::mutex> lock(mu_);
  return queued_events_.contains(job_id);
}

bool StoreJournal::Waiting() const {
  std::lock_guard<std::mutex> lock(mu_);
  return !queue_.empty();
}

void StoreJournal::NoteFailure(const absl::Status& status) {
  if (failing_) return;
  failing_ = true;
  if (absl::IsResourceExhausted(status)) {
    spdlog::error(
        "the filesystem of {} is full ({}): job states and events wait in memory and are "
        "stored once there is room; ranks' reports are refused until then; free space there "
        "(runs/*/checkpoints hold the large files)",
        state_dir_, std::string(status.message()));
  } else {
    spdlog::error("cannot write the job database: {}; retrying", status.ToString());
  }
}

}  // namespace matbert
