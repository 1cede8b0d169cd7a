#include "server/store/job_store.h"

#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace matbert {
namespace {

std::string TempDb(const std::string& name) {
  std::string dir = absl::StrCat(testing::TempDir(), "/job_store_test_", getpid());
  std::filesystem::create_directories(dir);
  std::string path = dir + "/" + name;
  std::filesystem::remove(path);
  std::filesystem::remove(path + "-wal");
  std::filesystem::remove(path + "-shm");
  return path;
}

JobRecord SampleJob(const std::string& id) {
  JobRecord job;
  job.id = id;
  job.name = "bert_" + id;
  job.kind = "train";
  job.priority = 3;
  job.nodes = 2;
  job.devices_requested = 2;
  job.max_restarts = 1;
  job.grace_period_s = 7;
  job.spec_toml = "[job]\nname = \"x\"\n";
  job.order = 42;
  job.submit_ms = 1700000000123;
  job.total_steps = 1000;
  job.owner = "alice";
  return job;
}

TEST(JobStore, JobsAndAttemptsSurviveReopen) {
  const std::string path = TempDb("reopen.db");
  {
    auto store = JobStore::Open(path);
    ASSERT_TRUE(store.ok()) << store.status();
    JobRecord job = SampleJob("a1");
    ASSERT_TRUE((*store)->InsertJob(job).ok());
    EXPECT_EQ((*store)->InsertJob(job).code(), absl::StatusCode::kAlreadyExists);
    job.state = JobState::kRunning;
    job.devices = {0, 3};
    job.step = 250;
    job.loss = 0.125;
    job.has_loss = true;
    job.attempts = 2;
    job.failure = "rank 1 exited with code 1";
    ASSERT_TRUE((*store)->UpdateJob(job).ok());
    JobRecord missing = SampleJob("nope");
    EXPECT_EQ((*store)->UpdateJob(missing).code(), absl::StatusCode::kNotFound);
    AttemptRecord attempt{"a1",
                          2,
                          JobState::kRunning,
                          5,
                          0,
                          "",
                          200,
                          false,
                          RunEnd::kUnknown,
                          {{0, 1234, 99}, {1, 1235, 100}},
                          "slurm-77"};
    ASSERT_TRUE((*store)->PutAttempt(attempt).ok());
    attempt.number = 1;
    attempt.state = JobState::kFailed;
    attempt.reason = "lost";
    attempt.interrupted = true;
    ASSERT_TRUE((*store)->PutAttempt(attempt).ok());
  }
  auto store = JobStore::Open(path);
  ASSERT_TRUE(store.ok());
  auto jobs = (*store)->LoadJobs();
  ASSERT_TRUE(jobs.ok());
  ASSERT_EQ(jobs->size(), 1u);
  const JobRecord& job = (*jobs)[0];
  EXPECT_EQ(job.id, "a1");
  EXPECT_EQ(job.name, "bert_a1");
  EXPECT_EQ(job.state, JobState::kRunning);
  EXPECT_EQ(job.priority, 3);
  EXPECT_EQ(job.nodes, 2);
  EXPECT_EQ(job.devices_requested, 2);
  EXPECT_EQ(job.max_restarts, 1);
  EXPECT_EQ(job.grace_period_s, 7);
  EXPECT_EQ(job.spec_toml, "[job]\nname = \"x\"\n");
  EXPECT_EQ(job.order, 42);
  EXPECT_EQ(job.submit_ms, 1700000000123);
  EXPECT_EQ(job.step, 250);
  EXPECT_TRUE(job.has_loss);
  EXPECT_EQ(job.loss, 0.125);
  EXPECT_EQ(job.devices, std::vector<int>({0, 3}));
  EXPECT_EQ(job.attempts, 2);
  EXPECT_EQ(job.failure, "rank 1 exited with code 1");
  EXPECT_EQ(job.owner, "alice");
  auto attempts = (*store)->LoadAttempts("a1");
  ASSERT_TRUE(attempts.ok());
  ASSERT_EQ(attempts->size(), 2u);
  EXPECT_EQ((*attempts)[0].number, 1);
  EXPECT_EQ((*attempts)[0].state, JobState::kFailed);
  EXPECT_EQ((*attempts)[0].reason, "lost");
  EXPECT_TRUE((*attempts)[0].interrupted);
  EXPECT_FALSE((*attempts)[1].interrupted);
  EXPECT_EQ((*attempts)[1].resumed_from_step, 200);
  ASSERT_EQ((*attempts)[1].workers.size(), 2u);
  EXPECT_EQ((*attempts)[1].workers[1].pid, 1235);
  EXPECT_EQ((*attempts)[1].workers[1].start_ticks, 100);
  EXPECT_EQ((*attempts)[1].executor_ref, "slurm-77");
}

TEST(JobStore, EventsAreNumberedPerJobAndDeduplicated) {
  auto store = JobStore::Open(TempDb("events.db"));
  ASSERT_TRUE(store.ok());
  JobStore& s = **store;
  EXPECT_EQ(*s.AppendEvent("a", 1, "state", "{}"), 1);
  EXPECT_EQ(*s.AppendEvent("b", 2, "state", "{}"), 1);
  EXPECT_EQ(*s.AppendEvent("a", 3, "metrics", "{\"step\":10}", "1/train/10"), 2);
  EXPECT_EQ(*s.AppendEvent("a", 4, "metrics", "{\"step\":10}", "1/train/10"), 0);
  EXPECT_EQ(*s.AppendEvent("a", 5, "metrics", "{\"step\":20}", "1/train/20"), 3);
  EXPECT_EQ(s.LastSeq("a"), 3);
  EXPECT_EQ(s.LastSeq("zzz"), 0);
  auto events = s.EventsAfter("a", 1, 100);
  ASSERT_TRUE(events.ok());
  ASSERT_EQ(events->size(), 2u);
  EXPECT_EQ((*events)[0].seq, 2);
  EXPECT_EQ((*events)[0].time_ms, 3);
  EXPECT_EQ((*events)[0].kind, "metrics");
  EXPECT_EQ((*events)[1].payload, "{\"step\":20}");
  EXPECT_EQ(s.EventsAfter("a", 0, 1)->size(), 1u);
}

// A writer process is SIGKILLed while appending; every append it reported as done (through a
// pipe, after the call returned) is in the file when it is opened again.
TEST(JobStore, KillLosesNothingAcknowledged) {
  const std::string path = TempDb("kill.db");
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    close(fds[0]);
    auto store = JobStore::Open(path);
    if (!store.ok()) _exit(3);
    for (int64_t i = 1;; ++i) {
      auto seq = (*store)->AppendEvent("k", i, "metrics", absl::StrCat("{\"step\":", i, "}"));
      if (!seq.ok() || *seq != i) _exit(4);
      if (write(fds[1], &i, sizeof(i)) != sizeof(i)) _exit(5);
    }
  }
  close(fds[1]);
  int64_t acked = 0, value;
  while (acked < 40 && read(fds[0], &value, sizeof(value)) == sizeof(value)) acked = value;
  kill(child, SIGKILL);
  while (read(fds[0], &value, sizeof(value)) == sizeof(value)) acked = value;
  close(fds[0]);
  int status;
  waitpid(child, &status, 0);
  ASSERT_TRUE(WIFSIGNALED(status)) << "writer ended by itself: " << status;
  ASSERT_GE(acked, 40);
  auto store = JobStore::Open(path);
  ASSERT_TRUE(store.ok());
  EXPECT_GE((*store)->LastSeq("k"), acked);
  auto events = (*store)->EventsAfter("k", 0, 1 << 30);
  ASSERT_TRUE(events.ok());
  ASSERT_GE(static_cast<int64_t>(events->size()), acked);
  for (int64_t i = 0; i < acked; ++i) {
    EXPECT_EQ((*events)[i].seq, i + 1);
    EXPECT_EQ((*events)[i].payload, absl::StrCat("{\"step\":", i + 1, "}"));
  }
  // The next append continues the numbering.
  const int64_t last = (*store)->LastSeq("k");
  EXPECT_EQ(*(*store)->AppendEvent("k", 0, "state", "{}"), last + 1);
}

// Runs SQL on a closed store file, as an older or newer matbertd would have left it.
void RunSql(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  char* error = nullptr;
  EXPECT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &error), SQLITE_OK) << error;
  sqlite3_free(error);
  sqlite3_close(db);
}

// A version-1 file: attempts without run_end (a finished run's end is in a summary event)
// or executor_ref, jobs without nodes or owner.
void MakeVersionOne(const std::string& path, int version = 1) {
  RunSql(path,
         absl::StrCat("ALTER TABLE attempts DROP COLUMN run_end; ALTER TABLE attempts "
                      "DROP COLUMN executor_ref; ALTER TABLE jobs DROP COLUMN nodes; "
                      "ALTER TABLE jobs DROP COLUMN owner; ALTER TABLE jobs DROP COLUMN reason; "
                      "PRAGMA user_version = ",
                      version, ";"));
}

TEST(JobStore, SchemaVersionIsRecordedOldFilesMigrateNewerOnesAreRefused) {
  const std::string path = TempDb("versions.db");
  {
    auto store = JobStore::Open(path);
    ASSERT_TRUE(store.ok()) << store.status();
    EXPECT_EQ((*store)->SchemaVersion(), 5);
    ASSERT_TRUE((*store)->InsertJob(SampleJob("v1")).ok());
    ASSERT_TRUE((*store)->AppendEvent("v1", 5, "state", "{\"state\":\"QUEUED\"}").ok());
  }
  // A file written before versions were recorded (user_version 0, the version-1 layout)
  // opens, keeps its jobs and events, and is stamped with the current version.
  MakeVersionOne(path, 0);
  {
    auto store = JobStore::Open(path);
    ASSERT_TRUE(store.ok()) << store.status();
    EXPECT_EQ((*store)->SchemaVersion(), 5);
    auto job = (*store)->LoadJobs();
    ASSERT_TRUE(job.ok());
    ASSERT_EQ(job->size(), 1u);
    EXPECT_EQ((*job)[0].id, "v1");
    EXPECT_EQ((*job)[0].owner, "");  // from before owners: nobody's
    EXPECT_EQ((*store)->LastSeq("v1"), 1);
  }
  // A file from a newer matbertd is refused, naming the file and both versions, and left as
  // it was.
  RunSql(path, "PRAGMA user_version = 7;");
  auto newer = JobStore::Open(path);
  ASSERT_FALSE(newer.ok());
  EXPECT_EQ(newer.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(newer.status().message().find(path), std::string::npos) << newer.status();
  EXPECT_NE(newer.status().message().find("schema version 7 is newer"), std::string::npos);
  EXPECT_NE(newer.status().message().find("(5)"), std::string::npos);
}

TEST(JobStore, VersionTwoTakesEachAttemptsRunEndFromItsSummaryEvent) {
  const std::string path = TempDb("run_end.db");
  {
    auto store = std::move(*JobStore::Open(path));
    ASSERT_TRUE(store->InsertJob(SampleJob("m")).ok());
    for (int n : {1, 2, 3}) {
      AttemptRecord a;
      a.job_id = "m";
      a.number = n;
      ASSERT_TRUE(store->PutAttempt(a).ok());
    }
    // Attempt 1 was stopped by a signal, attempt 2 completed (its later summary wins over an
    // earlier one), attempt 3 never said.
    auto summary = [&](int attempt, int stopped) {
      ASSERT_TRUE(
          store
              ->AppendEvent(
                  "m", 1, "metrics",
                  absl::StrCat(R"({"attempt":)", attempt,
                               R"(,"kind":"summary","step":9,"values":{"stopped":)", stopped, "}}"))
              .ok());
    };
    summary(1, 1);
    summary(2, 1);
    summary(2, 0);
    ASSERT_TRUE(
        store
            ->AppendEvent("m", 1, "metrics", R"({"attempt":3,"kind":"train","step":9,"values":{}})")
            .ok());
  }
  MakeVersionOne(path);
  auto store = JobStore::Open(path);
  ASSERT_TRUE(store.ok()) << store.status();
  const std::vector<AttemptRecord> attempts = *(*store)->LoadAttempts("m");
  ASSERT_EQ(attempts.size(), 3u);
  EXPECT_EQ(attempts[0].run_end, RunEnd::kStopped);
  EXPECT_EQ(attempts[1].run_end, RunEnd::kCompleted);
  EXPECT_EQ(attempts[2].run_end, RunEnd::kUnknown);
  EXPECT_EQ((*(*store)->LoadJobs())[0].nodes, 1) << "version 3: jobs from before span 1 node";
  // And the columns are written from now on.
  AttemptRecord a = attempts[2];
  a.run_end = RunEnd::kCompleted;
  a.executor_ref = "4242";
  ASSERT_TRUE((*store)->PutAttempt(a).ok());
  EXPECT_EQ((*(*store)->LoadAttempts("m"))[2].run_end, RunEnd::kCompleted);
  EXPECT_EQ((*(*store)->LoadAttempts("m"))[2].executor_ref, "4242");
}

TEST(JobStore, OpenNamesTheFileItCannotOpen) {
  auto store = JobStore::Open("/nonexistent-dir/x/matbert.db");
  ASSERT_FALSE(store.ok());
  EXPECT_NE(store.status().message().find("/nonexistent-dir/x/matbert.db"), std::string::npos);
}

}  // namespace
}  // namespace matbert
