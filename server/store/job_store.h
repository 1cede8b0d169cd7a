// Durable state of matbertd in one SQLite file (WAL, synchronous=FULL): jobs, their
// attempts, and each job's numbered events. A call that returned OK has been committed, so a
// crash of the daemon right after it loses nothing.
//
// Thread-safe: one connection behind a mutex.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "server/store/job_record.h"

struct sqlite3;

namespace matbert {

class JobStore {
 public:
  // Opens (creating if needed) the database at `path`. Its schema version (PRAGMA
  // user_version) is brought up to this build's, older files migrated in one transaction; a
  // file of a newer version is FAILED_PRECONDITION, naming the file and both versions.
  // Event payloads are versioned with the schema: a reader knows their fields by it.
  static absl::StatusOr<std::unique_ptr<JobStore>> Open(const std::string& path);
  ~JobStore();

  // The file's schema version (PRAGMA user_version).
  int SchemaVersion() const;

  // Inserts a new job; AlreadyExists if the id is taken.
  absl::Status InsertJob(const JobRecord& job);
  // Rewrites every field of an existing job.
  absl::Status UpdateJob(const JobRecord& job);
  absl::Status PutAttempt(const AttemptRecord& attempt);

  // Appends an event and returns its seq. A non-empty `dedupe_key` makes the append
  // idempotent: a second event of the job with the same key is dropped and 0 returned
  // (workers resend what a crashed daemon may or may not have stored).
  absl::StatusOr<int64_t> AppendEvent(const std::string& job_id, int64_t time_ms,
                                      const std::string& kind, const std::string& payload,
                                      const std::string& dedupe_key = "");
  // Events of a job with seq > after_seq, oldest first, at most `limit`.
  absl::StatusOr<std::vector<EventRecord>> EventsAfter(const std::string& job_id, int64_t after_seq,
                                                       int limit) const;
  int64_t LastSeq(const std::string& job_id) const;

  absl::StatusOr<std::vector<JobRecord>> LoadJobs() const;
  absl::StatusOr<std::vector<AttemptRecord>> LoadAttempts(const std::string& job_id) const;

  // Fault injection for tests: every write (InsertJob, UpdateJob, PutAttempt, AppendEvent)
  // first asks `fault`, and a non-OK answer is that write's result, nothing written (e.g.
  // RESOURCE_EXHAUSTED, as a full disk gives). Empty: no fault.
  void InjectWriteFault(std::function<absl::Status()> fault);

 private:
  explicit JobStore(sqlite3* db) : db_(db) {}
  absl::Status Exec(const char* sql) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Creates the schema in a new file, migrates an older one, refuses a newer one.
  absl::Status Migrate() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status WriteJob(const JobRecord& job, bool insert);

  mutable std::mutex mu_;
  sqlite3* db_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, int64_t> last_seq_ ABSL_GUARDED_BY(mu_);
  std::function<absl::Status()> fault_ ABSL_GUARDED_BY(mu_);
};

}  // namespace matbert
