// StoreJournal over a real SQLite store whose writes a test makes fail (as a full disk
// does): what matbertd writes itself stays queued, in order, and is stored in that order once
// the store takes writes again; ticketed writes (ranks' reports, a new job) are refused
// meanwhile with the store's error; flushes from many threads store everything once, each
// thread's writes in its order.
#include "server/core/store_journal.h"

#include <algorithm>
#include <thread>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "server/testing/test_dir.h"

namespace matbert {
namespace {

class StoreJournalTest : public testing::Test {
 protected:
  void SetUp() override {
    const std::string dir = FreshTestDir("store_journal_test");
    store_ = *JobStore::Open(dir + "/matbert.db");
    events_ = std::make_unique<EventLog>(store_.get());
    journal_ = std::make_unique<StoreJournal>(store_.get(), events_.get(), dir);
    job_.id = "j1";
    job_.name = "n";
    job_.kind = "train";
    ASSERT_TRUE(store_->InsertJob(job_).ok());
  }
  void DiskFull(bool full) {
    if (!full) return store_->InjectWriteFault(nullptr);
    store_->InjectWriteFault(
        [] { return absl::ResourceExhaustedError("sqlite: database or disk is full"); });
  }
  std::vector<std::string> StoredPayloads() {
    const absl::StatusOr<std::vector<EventRecord>> events = store_->EventsAfter("j1", 0, 1000);
    std::vector<std::string> out;
    for (const EventRecord& e : *events) out.push_back(e.payload);
    return out;
  }
  JobState StoredState() { return (*store_->LoadJobs())[0].state; }
  int64_t Own(const std::string& payload) {
    return journal_->AppendEvent("j1", 0, "state", payload, "", false);
  }
  int64_t Report(const std::string& payload, const std::string& key) {
    return journal_->AppendEvent("j1", 0, "metrics", payload, key, false);
  }

  std::unique_ptr<JobStore> store_;
  std::unique_ptr<EventLog> events_;
  std::unique_ptr<StoreJournal> journal_;
  JobRecord job_;
};

TEST_F(StoreJournalTest, AnOutageKeepsMatbertdsWritesInOrderAndStoresThemAfter) {
  EXPECT_EQ(Own("a"), 0) << "matbertd's own writes have no ticket";
  EXPECT_TRUE(journal_->EventsWait("j1")) << "queued, not stored, before a flush";
  journal_->Flush();
  EXPECT_EQ(StoredPayloads(), std::vector<std::string>{"a"});
  EXPECT_FALSE(journal_->Waiting());

  DiskFull(true);
  Own("b");
  job_.state = JobState::kRunning;
  journal_->SaveJob(job_);
  AttemptRecord attempt;
  attempt.job_id = "j1";
  attempt.number = 1;
  journal_->SaveAttempt(attempt);
  const int64_t report = Report("r", "a1/train/1");
  Own("c");
  journal_->Flush();
  // The report is refused with the store's own error; the rank sends it again.
  EXPECT_EQ(journal_->Outcome(report).code(), absl::StatusCode::kResourceExhausted);
  EXPECT_TRUE(journal_->EventsWait("j1"));
  journal_->Flush();  // still full: nothing moves
  EXPECT_EQ(StoredPayloads(), std::vector<std::string>{"a"});
  EXPECT_EQ(StoredState(), JobState::kQueued);

  DiskFull(false);
  const int64_t resent = Report("r", "a1/train/1");
  journal_->Flush();
  EXPECT_TRUE(journal_->Outcome(resent).ok());
  EXPECT_FALSE(journal_->Waiting());
  EXPECT_FALSE(journal_->EventsWait("j1"));
  EXPECT_EQ(StoredPayloads(), (std::vector<std::string>{"a", "b", "c", "r"}))
      << "what waited first, in order, then the resent report";
  EXPECT_EQ(StoredState(), JobState::kRunning);
  EXPECT_EQ(store_->LoadAttempts("j1")->size(), 1u);
  // Sent once more (its acknowledgement was lost): a no-op, and OK.
  const int64_t again = Report("r", "a1/train/1");
  journal_->Flush();
  EXPECT_TRUE(journal_->Outcome(again).ok());
  EXPECT_EQ(StoredPayloads().size(), 4u);
}

TEST_F(StoreJournalTest, ANewJobTheStoreRefusesIsNotStoredLater) {
  DiskFull(true);
  JobRecord other = job_;
  other.id = "j2";
  const int64_t insert = journal_->InsertJob(other);
  journal_->Flush();
  EXPECT_EQ(journal_->Outcome(insert).code(), absl::StatusCode::kResourceExhausted);
  DiskFull(false);
  journal_->Flush();
  EXPECT_EQ(store_->LoadJobs()->size(), 1u) << "the client was told it failed";
}

TEST_F(StoreJournalTest, FlushesFromManyThreadsStoreEverythingOnceInEachThreadsOrder) {
  constexpr int kThreads = 4, kEach = 50;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) {
        Own(absl::StrCat(t, ":", i));
        if (i % 7 == 0) journal_->Flush();
      }
      journal_->Flush();
    });
  }
  for (std::thread& t : threads) t.join();
  const std::vector<std::string> stored = StoredPayloads();
  ASSERT_EQ(stored.size(), static_cast<size_t>(kThreads * kEach));
  for (int t = 0; t < kThreads; ++t) {
    std::vector<int> order;
    for (const std::string& p : stored) {
      if (p.rfind(absl::StrCat(t, ":"), 0) == 0)
        order.push_back(std::stoi(p.substr(p.find(':') + 1)));
    }
    ASSERT_EQ(order.size(), static_cast<size_t>(kEach));
    EXPECT_TRUE(std::is_sorted(order.begin(), order.end())) << "thread " << t;
  }
  const absl::StatusOr<std::vector<EventRecord>> events = store_->EventsAfter("j1", 0, 1000);
  for (size_t i = 0; i < events->size(); ++i) EXPECT_EQ((*events)[i].seq, int64_t(i + 1));
}

}  // namespace
}  // namespace matbert
