// EventFollower over a real Coordinator (scripted executor, SQLite on disk): what WatchJob
// streams, without a channel — the stored events in order from any seq, pages of at most
// kPage, new events with a wake, the ranks' log lines, and the end.
#include "server/core/event_follower.h"

#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/run_layout.h"
#include "gtest/gtest.h"
#include "server/testing/scripted_executor.h"
#include "server/testing/test_dir.h"

namespace matbert {
namespace {

class EventFollowerTest : public testing::Test {
 protected:
  void SetUp() override {
    const std::string state_dir = FreshTestDir("event_follower_test");
    CoordinatorOptions options;
    options.state_dir = state_dir;
    options.worker_path = "/usr/bin/matbert-worker";
    options.spec_root = std::string(MATBERT_SOURCE_DIR) + "/configs";
    options.control_thread = false;
    options.devices.push_back({"cpu:0", "cpu", 0, "CPU slot", 0});
    coordinator_ = *Coordinator::Create(options, &executor_);
    const std::string spec =
        *ReadFileToString(std::string(MATBERT_SOURCE_DIR) + "/configs/bert_matcomp_cpu.toml");
    job_ = coordinator_->Submit({spec, {}, "test.toml"})->job.id;
  }

  std::vector<int64_t> Seqs(const EventFollower::Batch& batch) {
    std::vector<int64_t> seqs;
    for (const EventRecord& e : batch.events) seqs.push_back(e.seq);
    return seqs;
  }

  ScriptedExecutor executor_;
  std::unique_ptr<Coordinator> coordinator_;
  std::string job_;
};

TEST_F(EventFollowerTest, FollowsEventsAndLogsToTheEnd) {
  std::atomic<int> wakes{0};
  EventFollower follower(coordinator_.get(), job_, 0, /*include_logs=*/true, [&] { ++wakes; });
  EventFollower::Batch batch = *follower.Next();
  EXPECT_EQ(Seqs(batch), std::vector<int64_t>{1});  // QUEUED
  EXPECT_FALSE(batch.ended);
  EXPECT_FALSE(batch.more);
  EXPECT_TRUE(follower.Next()->events.empty()) << "nothing new, nothing again";

  coordinator_->TickForTest();  // STARTING
  EXPECT_GT(wakes.load(), 0);
  ASSERT_TRUE(coordinator_->Register({job_, 1, 0}, 100).ok());  // RUNNING
  std::ofstream(RunLogPath(coordinator_->RunDir(job_), 0), std::ios::app) << "step 1\nhalf";
  batch = *follower.Next();
  EXPECT_EQ(Seqs(batch), (std::vector<int64_t>{2, 3}));
  ASSERT_EQ(batch.logs.size(), 1u) << "the partial line waits";
  EXPECT_EQ(batch.logs[0].text, "step 1");

  // More than a page of reports: a full page says to come back at once.
  std::vector<MetricsRecord> records;
  for (int step = 1; step <= EventFollower::kPage + 10; ++step) {
    records.push_back({"train", step, {{"loss", 1.0 / step}}});
  }
  ASSERT_TRUE(coordinator_->ReportMetrics({job_, 1, 0}, records).ok());
  batch = *follower.Next();
  EXPECT_EQ(batch.events.size(), static_cast<size_t>(EventFollower::kPage));
  EXPECT_TRUE(batch.more);
  EXPECT_EQ(batch.events.front().seq, 4);
  batch = *follower.Next();
  EXPECT_EQ(batch.events.size(), 10u);
  EXPECT_FALSE(batch.more);

  executor_.ExitAll(0);
  coordinator_->TickForTest();  // SUCCEEDED
  batch = *follower.Next();
  ASSERT_EQ(batch.events.size(), 1u);
  EXPECT_EQ(batch.events[0].kind, "state");
  EXPECT_TRUE(batch.ended);
  EXPECT_EQ(follower.seq(), batch.events[0].seq);
}

TEST_F(EventFollowerTest, StartsAfterTheSeqItIsGivenAndNamesAnUnknownJob) {
  coordinator_->TickForTest();
  ASSERT_TRUE(coordinator_->Register({job_, 1, 0}, 100).ok());
  EventFollower follower(coordinator_.get(), job_, 2, /*include_logs=*/false, [] {});
  EXPECT_EQ(Seqs(*follower.Next()), std::vector<int64_t>{3});
  EXPECT_EQ(follower.poll_interval(), std::chrono::milliseconds(5000));

  EventFollower unknown(coordinator_.get(), "nosuch", 0, false, [] {});
  EXPECT_EQ(unknown.Next().status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace matbert
