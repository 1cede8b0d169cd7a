#include "server/scheduler/gang_scheduler.h"

#include <map>
#include <random>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace matbert {
namespace {

QueuedJob Job(const std::string& id, int devices, int priority = 0) {
  static int64_t order = 0;
  return {id, priority, ++order, devices};
}

std::vector<std::string> Ids(const std::vector<Placement>& placements) {
  std::vector<std::string> ids;
  for (const Placement& p : placements) ids.push_back(p.job_id);
  return ids;
}

TEST(GangScheduler, PlacesInSubmissionOrderOnLowestFreeDevices) {
  GangScheduler s(4);
  ASSERT_TRUE(s.Enqueue(Job("a", 1)).ok());
  ASSERT_TRUE(s.Enqueue(Job("b", 2)).ok());
  auto placed = s.Schedule();
  ASSERT_EQ(placed.size(), 2u);
  EXPECT_EQ(placed[0].job_id, "a");
  EXPECT_EQ(placed[0].devices, std::vector<int>({0}));
  EXPECT_EQ(placed[1].job_id, "b");
  EXPECT_EQ(placed[1].devices, std::vector<int>({1, 2}));
  EXPECT_EQ(s.free_devices(), 1);
  EXPECT_EQ(s.holder(2), "b");
  EXPECT_EQ(s.holder(3), "");
}

TEST(GangScheduler, HigherPriorityFirstThenSubmissionOrder) {
  GangScheduler s(1);
  ASSERT_TRUE(s.Enqueue(Job("low", 1, 0)).ok());
  ASSERT_TRUE(s.Enqueue(Job("high1", 1, 5)).ok());
  ASSERT_TRUE(s.Enqueue(Job("mid", 1, 1)).ok());
  ASSERT_TRUE(s.Enqueue(Job("high2", 1, 5)).ok());
  EXPECT_EQ(s.QueuePosition("high1"), 1);
  EXPECT_EQ(s.QueuePosition("high2"), 2);
  EXPECT_EQ(s.QueuePosition("low"), 4);
  std::vector<std::string> order;
  for (int i = 0; i < 4; ++i) {
    auto placed = s.Schedule();
    ASSERT_EQ(placed.size(), 1u);
    order.push_back(placed[0].job_id);
    EXPECT_TRUE(s.Schedule().empty()) << "device is busy";
    ASSERT_TRUE(s.Release(placed[0].job_id));
  }
  EXPECT_EQ(order, std::vector<std::string>({"high1", "high2", "mid", "low"}));
}

TEST(GangScheduler, GangThatDoesNotFitWaitsForAllItsDevices) {
  GangScheduler s(4);
  ASSERT_TRUE(s.Enqueue(Job("one", 1)).ok());
  ASSERT_TRUE(s.Enqueue(Job("four", 4)).ok());
  EXPECT_EQ(Ids(s.Schedule()), std::vector<std::string>({"one"}));
  EXPECT_TRUE(s.Schedule().empty());  // 3 free, 4 needed: nothing partial
  EXPECT_EQ(s.free_devices(), 3);
  ASSERT_TRUE(s.Release("one"));
  auto placed = s.Schedule();
  ASSERT_EQ(placed.size(), 1u);
  EXPECT_EQ(placed[0].devices, std::vector<int>({0, 1, 2, 3}));
}

TEST(GangScheduler, SmallJobsDoNotStarveALargeGang) {
  GangScheduler s(4);
  ASSERT_TRUE(s.Enqueue(Job("s0", 1)).ok());
  ASSERT_TRUE(s.Enqueue(Job("s1", 1)).ok());
  s.Schedule();
  ASSERT_TRUE(s.Enqueue(Job("big", 4)).ok());
  // A stream of small jobs arrives and small jobs keep finishing: none may jump the gang.
  for (int i = 0; i < 50; ++i) ASSERT_TRUE(s.Enqueue(Job(absl::StrCat("t", i), 1)).ok());
  EXPECT_TRUE(s.Schedule().empty());
  ASSERT_TRUE(s.Release("s0"));
  EXPECT_TRUE(s.Schedule().empty());
  ASSERT_TRUE(s.Release("s1"));
  EXPECT_EQ(Ids(s.Schedule()), std::vector<std::string>({"big"}));
  ASSERT_TRUE(s.Release("big"));
  EXPECT_EQ(Ids(s.Schedule()), std::vector<std::string>({"t0", "t1", "t2", "t3"}));
}

TEST(GangScheduler, RefusesImpossibleAndDuplicateJobs) {
  GangScheduler s(2);
  absl::Status too_big = s.Enqueue(Job("x", 3));
  EXPECT_EQ(too_big.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(too_big.message().find("between 1 and 2"), std::string::npos) << too_big;
  EXPECT_EQ(s.Enqueue(Job("y", 0)).code(), absl::StatusCode::kInvalidArgument);
  ASSERT_TRUE(s.Enqueue(Job("a", 1)).ok());
  EXPECT_EQ(s.Enqueue(Job("a", 1)).code(), absl::StatusCode::kAlreadyExists);
  s.Schedule();
  EXPECT_EQ(s.Enqueue(Job("a", 1)).code(), absl::StatusCode::kAlreadyExists);
}

TEST(GangScheduler, DequeueAndHold) {
  GangScheduler s(3);
  ASSERT_TRUE(s.Hold("adopted", {1}).ok());
  EXPECT_EQ(s.Hold("other", {1}).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.Hold("other", {7}).code(), absl::StatusCode::kInvalidArgument);
  ASSERT_TRUE(s.Enqueue(Job("a", 2)).ok());
  ASSERT_TRUE(s.Enqueue(Job("b", 1)).ok());
  EXPECT_TRUE(s.Dequeue("a"));
  EXPECT_FALSE(s.Dequeue("a"));
  auto placed = s.Schedule();
  ASSERT_EQ(placed.size(), 1u);
  EXPECT_EQ(placed[0].devices, std::vector<int>({0}));
  EXPECT_FALSE(s.Release("nobody"));
}

// Random arrivals and completions: devices are never over-allocated, every placed gang gets
// exactly its size, and placements follow queue order (priority, then submission).
TEST(GangScheduler, RandomWorkloadKeepsInvariants) {
  std::mt19937 rng(7);
  for (int trial = 0; trial < 20; ++trial) {
    const int devices = 1 + trial % 8;
    GangScheduler s(devices);
    std::map<std::string, int> running;  // job -> size
    int next = 0;
    for (int tick = 0; tick < 400; ++tick) {
      if (rng() % 2) {
        const int size = 1 + rng() % devices;
        ASSERT_TRUE(s.Enqueue(Job(absl::StrCat("j", next++), size, rng() % 3)).ok());
      }
      if (!running.empty() && rng() % 3 == 0) {
        auto it = std::next(running.begin(), rng() % running.size());
        ASSERT_TRUE(s.Release(it->first));
        running.erase(it);
      }
      const std::vector<QueuedJob> before = s.Queue();
      const auto placed = s.Schedule();
      // Placed jobs are exactly a prefix of the queue.
      ASSERT_LE(placed.size(), before.size());
      for (size_t i = 0; i < placed.size(); ++i) {
        ASSERT_EQ(placed[i].job_id, before[i].id);
        ASSERT_EQ(static_cast<int>(placed[i].devices.size()), before[i].devices);
        running[placed[i].job_id] = before[i].devices;
      }
      // The next job in line did not fit.
      if (placed.size() < before.size()) {
        ASSERT_GT(before[placed.size()].devices, s.free_devices());
      }
      int held = 0;
      std::map<std::string, int> per_job;
      for (int d = 0; d < devices; ++d) {
        if (!s.holder(d).empty()) {
          ++held;
          ++per_job[s.holder(d)];
        }
      }
      ASSERT_EQ(held + s.free_devices(), devices);
      ASSERT_EQ(per_job, running);
    }
  }
}

}  // namespace
}  // namespace matbert
