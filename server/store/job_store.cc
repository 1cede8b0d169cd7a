#include "server/store/job_store.h"

#include <sqlite3.h>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "nlohmann/json.hpp"

namespace matbert {
namespace {

using Json = nlohmann::json;

// The layout below, with the event payloads of server/core/event_payload.h, is schema
// version 5 (PRAGMA user_version). A file of version 0 is one written before versions were
// recorded. Each version adds a migration to kMigrations; a file newer than this build is
// refused, never rewritten.
constexpr int kSchemaVersion = 5;

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS jobs (
  id TEXT PRIMARY KEY,
  ord INTEGER NOT NULL,
  name TEXT NOT NULL,
  kind TEXT NOT NULL,
  state TEXT NOT NULL,
  priority INTEGER NOT NULL,
  devices_requested INTEGER NOT NULL,
  max_restarts INTEGER NOT NULL,
  grace_period_s INTEGER NOT NULL,
  spec_toml TEXT NOT NULL,
  submit_ms INTEGER NOT NULL,
  start_ms INTEGER NOT NULL,
  end_ms INTEGER NOT NULL,
  step INTEGER NOT NULL,
  total_steps INTEGER NOT NULL,
  loss REAL,
  failure TEXT NOT NULL,
  devices TEXT NOT NULL,
  attempts INTEGER NOT NULL,
  cancel_requested INTEGER NOT NULL,
  nodes INTEGER NOT NULL DEFAULT 1,
  owner TEXT NOT NULL DEFAULT '',
  reason TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS attempts (
  job_id TEXT NOT NULL,
  number INTEGER NOT NULL,
  state TEXT NOT NULL,
  start_ms INTEGER NOT NULL,
  end_ms INTEGER NOT NULL,
  reason TEXT NOT NULL,
  resumed_from_step INTEGER NOT NULL,
  interrupted INTEGER NOT NULL,
  workers TEXT NOT NULL,
  run_end TEXT NOT NULL DEFAULT '',
  executor_ref TEXT NOT NULL DEFAULT '',
  PRIMARY KEY (job_id, number)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS events (
  job_id TEXT NOT NULL,
  seq INTEGER NOT NULL,
  time_ms INTEGER NOT NULL,
  kind TEXT NOT NULL,
  payload TEXT NOT NULL,
  dedupe_key TEXT,
  PRIMARY KEY (job_id, seq)
) WITHOUT ROWID;
CREATE UNIQUE INDEX IF NOT EXISTS events_dedupe ON events (job_id, dedupe_key)
  WHERE dedupe_key IS NOT NULL;
)sql";

// A prepared statement, finalized on scope exit. Bind() takes 1-based positions.
class Statement {
 public:
  Statement(sqlite3* db, const char* sql) : db_(db) {
    rc_ = sqlite3_prepare_v2(db, sql, -1, &stmt_, nullptr);
  }
  ~Statement() { sqlite3_finalize(stmt_); }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  bool ok() const { return rc_ == SQLITE_OK; }
  void Bind(int i, int64_t v) { sqlite3_bind_int64(stmt_, i, v); }
  void Bind(int i, const std::string& v) {
    sqlite3_bind_text(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
  }
  void Bind(int i, double v) { sqlite3_bind_double(stmt_, i, v); }
  void BindNull(int i) { sqlite3_bind_null(stmt_, i); }
  // SQLITE_ROW, SQLITE_DONE or an error code.
  int Step() { return rc_ = sqlite3_step(stmt_); }
  int64_t Int(int col) const { return sqlite3_column_int64(stmt_, col); }
  double Real(int col) const { return sqlite3_column_double(stmt_, col); }
  bool IsNull(int col) const { return sqlite3_column_type(stmt_, col) == SQLITE_NULL; }
  std::string Text(int col) const {
    const unsigned char* text = sqlite3_column_text(stmt_, col);
    return text ? std::string(reinterpret_cast<const char*>(text), sqlite3_column_bytes(stmt_, col))
                : std::string();
  }
  // RESOURCE_EXHAUSTED when the disk is full (the caller may try again once there is room),
  // INTERNAL otherwise.
  absl::Status Error(absl::string_view what) const {
    const std::string message = absl::StrCat("sqlite: ", what, ": ", sqlite3_errmsg(db_));
    return rc_ == SQLITE_FULL ? absl::ResourceExhaustedError(message)
                              : absl::InternalError(message);
  }

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
  int rc_;
};

std::vector<int> ParseIntList(const std::string& text) {
  Json list = Json::parse(text, nullptr, false);
  std::vector<int> out;
  if (list.is_array()) {
    for (const Json& v : list) {
      if (v.is_number_integer()) out.push_back(v.get<int>());
    }
  }
  return out;
}

JobState StateOr(const std::string& name, JobState fallback) {
  return ParseJobState(name).value_or(fallback);
}

// kMigrations[v] turns a version-v file into version v + 1 (run in one transaction).
// Version 0 -> 1: the layout is unchanged; only the version is recorded.
// Version 1 -> 2: how a run ended moves from rank 0's "summary" metrics event into the
// attempt (attempts.run_end), filled in from the summary events already stored.
const std::vector<const char*> kMigrations = {
    "",
    R"sql(
ALTER TABLE attempts ADD COLUMN run_end TEXT NOT NULL DEFAULT '';
UPDATE attempts SET run_end = COALESCE((
  SELECT CASE WHEN json_extract(e.payload, '$.values.stopped') = 0 THEN 'COMPLETED'
              ELSE 'STOPPED' END
  FROM events e
  WHERE e.job_id = attempts.job_id AND e.kind = 'metrics'
    AND json_extract(e.payload, '$.kind') = 'summary'
    AND json_extract(e.payload, '$.attempt') = attempts.number
  ORDER BY e.seq DESC LIMIT 1), '');
)sql",
    // Version 2 -> 3: jobs span nodes (Slurm executor); attempts remember the executor's id.
    R"sql(
ALTER TABLE jobs ADD COLUMN nodes INTEGER NOT NULL DEFAULT 1;
ALTER TABLE attempts ADD COLUMN executor_ref TEXT NOT NULL DEFAULT '';
)sql",
    // Version 3 -> 4: every job has an owner; jobs from before owners belong to nobody
    // (owner ''), which only admins may act on.
    R"sql(
ALTER TABLE jobs ADD COLUMN owner TEXT NOT NULL DEFAULT '';
)sql",
    // Version 4 -> 5: a job keeps the reason of its latest state (why it waits, or its
    // latest change); older jobs have none until they change again. States may be PENDING.
    R"sql(
ALTER TABLE jobs ADD COLUMN reason TEXT NOT NULL DEFAULT '';
)sql"};

}  // namespace

absl::StatusOr<std::unique_ptr<JobStore>> JobStore::Open(const std::string& path) {
  sqlite3* db = nullptr;
  int rc =
      sqlite3_open_v2(path.c_str(), &db,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    std::string message = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    sqlite3_close(db);
    return absl::UnavailableError(absl::StrCat("cannot open ", path, ": ", message));
  }
  std::unique_ptr<JobStore> store(new JobStore(db));
  std::lock_guard<std::mutex> lock(store->mu_);
  sqlite3_busy_timeout(db, 5000);
  // WAL: readers do not block the writer; FULL: a commit is on disk when it returns.
  for (const char* sql : {"PRAGMA journal_mode=WAL", "PRAGMA synchronous=FULL"}) {
    if (absl::Status s = store->Exec(sql); !s.ok()) {
      return absl::Status(s.code(), absl::StrCat(path, ": ", s.message()));
    }
  }
  if (absl::Status s = store->Migrate(); !s.ok()) {
    return absl::Status(s.code(), absl::StrCat(path, ": ", s.message()));
  }
  Statement last(db, "SELECT job_id, MAX(seq) FROM events GROUP BY job_id");
  while (last.Step() == SQLITE_ROW) store->last_seq_[last.Text(0)] = last.Int(1);
  return store;
}

JobStore::~JobStore() {
  std::lock_guard<std::mutex> lock(mu_);
  sqlite3_close(db_);
}

int JobStore::SchemaVersion() const {
  std::lock_guard<std::mutex> lock(mu_);
  Statement version(db_, "PRAGMA user_version");
  return version.Step() == SQLITE_ROW ? static_cast<int>(version.Int(0)) : -1;
}

absl::Status JobStore::Migrate() {
  Statement read(db_, "PRAGMA user_version");
  if (read.Step() != SQLITE_ROW) return read.Error("PRAGMA user_version");
  int version = static_cast<int>(read.Int(0));
  if (version > kSchemaVersion) {
    return absl::FailedPreconditionError(
        absl::StrCat("schema version ", version, " is newer than this matbertd understands (",
                     kSchemaVersion, "); run the matbertd that wrote it, or a newer one"));
  }
  Statement tables(db_, "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table'");
  if (tables.Step() != SQLITE_ROW) return tables.Error("reading the schema");
  const bool fresh = tables.Int(0) == 0;
  RETURN_IF_ERROR(Exec("BEGIN IMMEDIATE"));
  absl::Status status = Exec(kSchema);  // CREATE ... IF NOT EXISTS: a no-op on older files
  for (int v = version; status.ok() && !fresh && v < kSchemaVersion; ++v) {
    if (*kMigrations[v] != '\0') status = Exec(kMigrations[v]);
    if (!status.ok()) {
      status = absl::Status(status.code(), absl::StrCat("migrating the schema from version ", v,
                                                        " to ", v + 1, ": ", status.message()));
    }
  }
  if (status.ok()) status = Exec(absl::StrCat("PRAGMA user_version = ", kSchemaVersion).c_str());
  if (!status.ok()) {
    (void)Exec("ROLLBACK");
    return status;
  }
  return Exec("COMMIT");
}

absl::Status JobStore::Exec(const char* sql) {
  char* error = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &error) != SQLITE_OK) {
    absl::Status status = absl::InternalError(absl::StrCat("sqlite: ", error ? error : "?"));
    sqlite3_free(error);
    return status;
  }
  return absl::OkStatus();
}

absl::Status JobStore::InsertJob(const JobRecord& job) { return WriteJob(job, true); }
absl::Status JobStore::UpdateJob(const JobRecord& job) { return WriteJob(job, false); }

void JobStore::InjectWriteFault(std::function<absl::Status()> fault) {
  std::lock_guard<std::mutex> lock(mu_);
  fault_ = std::move(fault);
}

absl::Status JobStore::WriteJob(const JobRecord& job, bool insert) {
  std::lock_guard<std::mutex> lock(mu_);
  if (fault_) RETURN_IF_ERROR(fault_());
  Statement st(db_, insert ? "INSERT INTO jobs (id, ord, name, kind, state, priority, "
                             "devices_requested, max_restarts, grace_period_s, spec_toml, "
                             "submit_ms, start_ms, end_ms, step, total_steps, loss, failure, "
                             "devices, attempts, cancel_requested, nodes, owner, reason) VALUES "
                             "(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, "
                             "?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23)"
                           : "UPDATE jobs SET ord = ?2, name = ?3, kind = ?4, state = ?5, "
                             "priority = ?6, devices_requested = ?7, max_restarts = ?8, "
                             "grace_period_s = ?9, spec_toml = ?10, submit_ms = ?11, "
                             "start_ms = ?12, end_ms = ?13, step = ?14, total_steps = ?15, "
                             "loss = ?16, failure = ?17, devices = ?18, attempts = ?19, "
                             "cancel_requested = ?20, nodes = ?21, owner = ?22, reason = ?23 "
                             "WHERE id = ?1");
  if (!st.ok()) return st.Error("prepare job write");
  st.Bind(1, job.id);
  st.Bind(2, job.order);
  st.Bind(3, job.name);
  st.Bind(4, job.kind);
  st.Bind(5, std::string(JobStateName(job.state)));
  st.Bind(6, int64_t{job.priority});
  st.Bind(7, int64_t{job.devices_requested});
  st.Bind(8, int64_t{job.max_restarts});
  st.Bind(9, int64_t{job.grace_period_s});
  st.Bind(10, job.spec_toml);
  st.Bind(11, job.submit_ms);
  st.Bind(12, job.start_ms);
  st.Bind(13, job.end_ms);
  st.Bind(14, job.step);
  st.Bind(15, job.total_steps);
  if (job.has_loss) {
    st.Bind(16, job.loss);
  } else {
    st.BindNull(16);
  }
  st.Bind(17, job.failure);
  st.Bind(18, Json(job.devices).dump());
  st.Bind(19, int64_t{job.attempts});
  st.Bind(20, int64_t{job.cancel_requested});
  st.Bind(21, int64_t{job.nodes});
  st.Bind(22, job.owner);
  st.Bind(23, job.reason);
  const int rc = st.Step();
  if (rc == SQLITE_CONSTRAINT) {
    return absl::AlreadyExistsError(absl::StrCat("job ", job.id, " already exists"));
  }
  if (rc != SQLITE_DONE) return st.Error(absl::StrCat("write job ", job.id));
  if (!insert && sqlite3_changes(db_) == 0) {
    return absl::NotFoundError(absl::StrCat("job ", job.id, " not in the store"));
  }
  return absl::OkStatus();
}

absl::Status JobStore::PutAttempt(const AttemptRecord& attempt) {
  Json workers = Json::array();
  for (const WorkerProcess& w : attempt.workers) {
    workers.push_back({{"rank", w.rank}, {"pid", w.pid}, {"start_ticks", w.start_ticks}});
  }
  std::lock_guard<std::mutex> lock(mu_);
  if (fault_) RETURN_IF_ERROR(fault_());
  Statement st(db_,
               "INSERT OR REPLACE INTO attempts (job_id, number, state, start_ms, end_ms, "
               "reason, resumed_from_step, interrupted, workers, run_end, executor_ref) VALUES "
               "(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)");
  if (!st.ok()) return st.Error("prepare attempt write");
  st.Bind(1, attempt.job_id);
  st.Bind(2, int64_t{attempt.number});
  st.Bind(3, std::string(JobStateName(attempt.state)));
  st.Bind(4, attempt.start_ms);
  st.Bind(5, attempt.end_ms);
  st.Bind(6, attempt.reason);
  st.Bind(7, attempt.resumed_from_step);
  st.Bind(8, int64_t{attempt.interrupted});
  st.Bind(9, workers.dump());
  st.Bind(10, std::string(RunEndName(attempt.run_end)));
  st.Bind(11, attempt.executor_ref);
  if (st.Step() != SQLITE_DONE) return st.Error("write attempt");
  return absl::OkStatus();
}

absl::StatusOr<int64_t> JobStore::AppendEvent(const std::string& job_id, int64_t time_ms,
                                              const std::string& kind, const std::string& payload,
                                              const std::string& dedupe_key) {
  std::lock_guard<std::mutex> lock(mu_);
  if (fault_) RETURN_IF_ERROR(fault_());
  const int64_t seq = last_seq_[job_id] + 1;
  Statement st(db_,
               "INSERT OR IGNORE INTO events (job_id, seq, time_ms, kind, payload, dedupe_key) "
               "VALUES (?1, ?2, ?3, ?4, ?5, ?6)");
  if (!st.ok()) return st.Error("prepare event append");
  st.Bind(1, job_id);
  st.Bind(2, seq);
  st.Bind(3, time_ms);
  st.Bind(4, kind);
  st.Bind(5, payload);
  if (dedupe_key.empty()) {
    st.BindNull(6);
  } else {
    st.Bind(6, dedupe_key);
  }
  if (st.Step() != SQLITE_DONE) return st.Error("append event");
  if (sqlite3_changes(db_) == 0) return int64_t{0};  // duplicate
  last_seq_[job_id] = seq;
  return seq;
}

absl::StatusOr<std::vector<EventRecord>> JobStore::EventsAfter(const std::string& job_id,
                                                               int64_t after_seq, int limit) const {
  std::lock_guard<std::mutex> lock(mu_);
  Statement st(db_,
               "SELECT seq, time_ms, kind, payload FROM events WHERE job_id = ?1 AND seq > ?2 "
               "ORDER BY seq LIMIT ?3");
  if (!st.ok()) return st.Error("prepare event read");
  st.Bind(1, job_id);
  st.Bind(2, after_seq);
  st.Bind(3, int64_t{limit});
  std::vector<EventRecord> events;
  int rc;
  while ((rc = st.Step()) == SQLITE_ROW) {
    events.push_back({st.Int(0), st.Int(1), st.Text(2), st.Text(3)});
  }
  if (rc != SQLITE_DONE) return st.Error("read events");
  return events;
}

int64_t JobStore::LastSeq(const std::string& job_id) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = last_seq_.find(job_id);
  return it == last_seq_.end() ? 0 : it->second;
}

absl::StatusOr<std::vector<JobRecord>> JobStore::LoadJobs() const {
  std::lock_guard<std::mutex> lock(mu_);
  Statement st(db_,
               "SELECT id, ord, name, kind, state, priority, devices_requested, max_restarts, "
               "grace_period_s, spec_toml, submit_ms, start_ms, end_ms, step, total_steps, loss, "
               "failure, devices, attempts, cancel_requested, nodes, owner, reason FROM jobs "
               "ORDER BY ord");
  if (!st.ok()) return st.Error("prepare job read");
  std::vector<JobRecord> jobs;
  int rc;
  while ((rc = st.Step()) == SQLITE_ROW) {
    JobRecord job;
    job.id = st.Text(0);
    job.order = st.Int(1);
    job.name = st.Text(2);
    job.kind = st.Text(3);
    job.state = StateOr(st.Text(4), JobState::kFailed);
    job.priority = static_cast<int>(st.Int(5));
    job.devices_requested = static_cast<int>(st.Int(6));
    job.max_restarts = static_cast<int>(st.Int(7));
    job.grace_period_s = static_cast<int>(st.Int(8));
    job.spec_toml = st.Text(9);
    job.submit_ms = st.Int(10);
    job.start_ms = st.Int(11);
    job.end_ms = st.Int(12);
    job.step = st.Int(13);
    job.total_steps = st.Int(14);
    job.has_loss = !st.IsNull(15);
    job.loss = st.Real(15);
    job.failure = st.Text(16);
    job.devices = ParseIntList(st.Text(17));
    job.attempts = static_cast<int>(st.Int(18));
    job.cancel_requested = st.Int(19) != 0;
    job.nodes = static_cast<int>(st.Int(20));
    job.owner = st.Text(21);
    job.reason = st.Text(22);
    jobs.push_back(std::move(job));
  }
  if (rc != SQLITE_DONE) return st.Error("read jobs");
  return jobs;
}

absl::StatusOr<std::vector<AttemptRecord>> JobStore::LoadAttempts(const std::string& job_id) const {
  std::lock_guard<std::mutex> lock(mu_);
  Statement st(db_,
               "SELECT number, state, start_ms, end_ms, reason, resumed_from_step, interrupted, "
               "workers, run_end, executor_ref FROM attempts WHERE job_id = ?1 ORDER BY number");
  if (!st.ok()) return st.Error("prepare attempt read");
  st.Bind(1, job_id);
  std::vector<AttemptRecord> attempts;
  int rc;
  while ((rc = st.Step()) == SQLITE_ROW) {
    AttemptRecord a;
    a.job_id = job_id;
    a.number = static_cast<int>(st.Int(0));
    a.state = StateOr(st.Text(1), JobState::kFailed);
    a.start_ms = st.Int(2);
    a.end_ms = st.Int(3);
    a.reason = st.Text(4);
    a.resumed_from_step = st.Int(5);
    a.interrupted = st.Int(6) != 0;
    const Json workers = Json::parse(st.Text(7), nullptr, false);
    if (workers.is_array()) {
      for (const Json& w : workers) {
        a.workers.push_back(
            {w.value("rank", 0), w.value("pid", 0), w.value("start_ticks", int64_t{0})});
      }
    }
    a.run_end = ParseRunEnd(st.Text(8));
    a.executor_ref = st.Text(9);
    attempts.push_back(std::move(a));
  }
  if (rc != SQLITE_DONE) return st.Error("read attempts");
  return attempts;
}

}  // namespace matbert
