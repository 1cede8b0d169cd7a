// The event log over a real SQLite file: numbering, resent duplicates, the memory copy
// agreeing with the store, and watchers woken only after what they wait for is stored.
#include "server/core/event_log.h"

#include <unistd.h>

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace matbert {
namespace {

class EventLogTest : public testing::Test {
 protected:
  void SetUp() override {
    path_ = absl::StrCat(testing::TempDir(), "/event_log_test_", getpid(), "_",
                         testing::UnitTest::GetInstance()->current_test_info()->name(), ".db");
    std::filesystem::remove(path_);
    store_ = std::move(*JobStore::Open(path_));
    JobRecord job;
    job.id = "job-a";
    job.order = 1;
    ASSERT_TRUE(store_->InsertJob(job).ok());
    job.id = "job-b";
    job.order = 2;
    ASSERT_TRUE(store_->InsertJob(job).ok());
  }
  std::string path_;
  std::unique_ptr<JobStore> store_;
};

std::vector<int64_t> Seqs(const std::vector<EventRecord>& events) {
  std::vector<int64_t> seqs;
  for (const EventRecord& e : events) seqs.push_back(e.seq);
  return seqs;
}

TEST_F(EventLogTest, NumbersEventsAndDropsResentDuplicates) {
  EventLog log(store_.get());
  EXPECT_EQ(*log.Append("job-a", 10, "state", "{\"s\":1}"), 1);
  EXPECT_EQ(*log.Append("job-a", 11, "metrics", "{\"m\":1}", "a1/train/1"), 2);
  EXPECT_EQ(*log.Append("job-a", 12, "metrics", "{\"m\":1}", "a1/train/1"), 0) << "resent";
  EXPECT_EQ(*log.Append("job-b", 13, "state", "{}"), 1) << "numbered per job";
  const std::vector<EventRecord> events = *log.After("job-a", 0, 100);
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[1].kind, "metrics");
  EXPECT_EQ(events[1].payload, "{\"m\":1}");
  EXPECT_EQ(events[1].time_ms, 11);
  EXPECT_EQ(log.LastSeq("job-a"), 2);
}

TEST_F(EventLogTest, MemoryAndStoreAgreeAcrossTheCacheWindow) {
  EventLog log(store_.get());
  const int n = static_cast<int>(EventLog::kRecentEvents) + 200;
  for (int i = 1; i <= n; ++i) ASSERT_EQ(*log.Append("job-a", i, "metrics", absl::StrCat(i)), i);
  // Pages that start before the memory copy come from SQLite; later ones from memory; a
  // fresh log (a restarted daemon) has only SQLite. All must read the same.
  EventLog fresh(store_.get());
  for (int64_t after : {int64_t{0}, int64_t{150}, int64_t{199}, int64_t{200}, int64_t{1000},
                        int64_t{n - 1}, int64_t{n}}) {
    const std::vector<EventRecord> warm = *log.After("job-a", after, 50);
    const std::vector<EventRecord> cold = *fresh.After("job-a", after, 50);
    EXPECT_EQ(Seqs(warm), Seqs(cold)) << "after " << after;
    if (!warm.empty()) {
      EXPECT_EQ(warm.front().seq, after + 1);
    }
    for (const EventRecord& e : warm) EXPECT_EQ(e.payload, absl::StrCat(e.seq));
  }
  log.Close("job-a");
  EXPECT_EQ(Seqs(*log.After("job-a", n - 2, 50)), (std::vector<int64_t>{n - 1, n}));
}

TEST_F(EventLogTest, WatchersWakeAfterTheirJobsEventsAreStored) {
  EventLog log(store_.get());
  int a_wakes = 0, b_wakes = 0;
  int64_t seen_at_wake = -1;
  const int64_t ha = log.Subscribe("job-a", [&] {
    ++a_wakes;
    seen_at_wake = log.LastSeq("job-a");
  });
  log.Subscribe("job-b", [&] { ++b_wakes; });
  ASSERT_TRUE(log.Append("job-a", 1, "state", "{}").ok());
  ASSERT_TRUE(log.Append("job-a", 2, "state", "{}").ok());
  EXPECT_EQ(a_wakes, 0) << "nobody is woken under the appender's lock";
  log.NotifyPending();
  EXPECT_EQ(a_wakes, 1) << "one wake for a burst of events";
  EXPECT_EQ(seen_at_wake, 2);
  EXPECT_EQ(b_wakes, 0);
  log.NotifyPending();
  EXPECT_EQ(a_wakes, 1) << "nothing new";
  ASSERT_EQ(*log.Append("job-a", 3, "state", "{}", "once"), 3);
  ASSERT_EQ(*log.Append("job-a", 4, "state", "{}", "once"), 0);
  log.Unsubscribe(ha);
  log.NotifyPending();
  EXPECT_EQ(a_wakes, 1) << "unsubscribed";
}

}  // namespace
}  // namespace matbert
