#include "server/core/checkpoint_catalog.h"

#include "gtest/gtest.h"

namespace matbert {
namespace {

CheckpointDir Dir(int64_t step) {
  CheckpointDir d;
  d.step = step;
  d.name = "step-" + std::to_string(step);
  return d;
}

EventRecord Event(int64_t seq, const std::string& kind, const std::string& payload) {
  return {seq, 1000 * seq, kind, payload};
}

TEST(CheckpointCatalog, EvalsComeFromEvalMetricsEventsOnly) {
  const std::vector<EventRecord> events = {
      Event(1, "state", R"({"state":"RUNNING"})"),
      Event(2, "metrics", R"({"kind":"train","step":100,"values":{"loss":0.5}})"),
      Event(3, "metrics", R"({"kind":"eval","step":100,"values":{"eval_rmse":0.9,"x":"s"}})"),
      Event(4, "checkpoint", R"({"step":100,"path":"checkpoints/step-0000100"})"),
      Event(5, "metrics", "not json"),
      Event(6, "metrics", R"({"kind":"eval","step":300,"values":{"eval_rmse":0.7}})"),
      Event(7, "metrics", R"({"kind":"eval","step":300,"values":{"eval_rmse":0.6}})")};
  auto evals = EvalsByStep(events);
  ASSERT_EQ(evals.size(), 2u);
  EXPECT_EQ(evals[100], (std::map<std::string, double>{{"eval_rmse", 0.9}}));
  EXPECT_EQ(evals[300], (std::map<std::string, double>{{"eval_rmse", 0.6}}));  // the later one
}

TEST(CheckpointCatalog, EachCheckpointGetsTheLatestEvalAtOrBeforeItsStep) {
  const std::map<int64_t, std::map<std::string, double>> evals = {{100, {{"eval_rmse", 0.9}}},
                                                                  {300, {{"eval_rmse", 0.6}}}};
  auto entries = CatalogCheckpoints({Dir(50), Dir(100), Dir(200), Dir(300), Dir(400)}, evals);
  ASSERT_EQ(entries.size(), 5u);
  EXPECT_TRUE(entries[0].eval.empty());  // before any eval
  EXPECT_EQ(entries[1].eval, (std::map<std::string, double>{{"eval_rmse", 0.9}, {"step", 100}}));
  EXPECT_EQ(entries[2].eval, (std::map<std::string, double>{{"eval_rmse", 0.9}, {"step", 100}}));
  EXPECT_EQ(entries[3].eval, (std::map<std::string, double>{{"eval_rmse", 0.6}, {"step", 300}}));
  EXPECT_EQ(entries[4].eval, (std::map<std::string, double>{{"eval_rmse", 0.6}, {"step", 300}}));
  EXPECT_EQ(entries[4].dir.step, 400);
}

TEST(CheckpointCatalog, SelectingACheckpoint) {
  const std::vector<CheckpointDir> dirs = {Dir(10), Dir(20), Dir(30)};
  EXPECT_EQ(SelectCheckpoint(dirs, std::nullopt, "k3x9qa")->step, 30);
  EXPECT_EQ(SelectCheckpoint(dirs, -1, "k3x9qa")->step, 30);
  EXPECT_EQ(SelectCheckpoint(dirs, 20, "k3x9qa")->step, 20);
  auto missing = SelectCheckpoint(dirs, 25, "k3x9qa");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(missing.status().message(),
            "job k3x9qa has no checkpoint at step 25; it has steps 10, 20, 30");
  auto none = SelectCheckpoint({}, std::nullopt, "k3x9qa");
  EXPECT_EQ(none.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(none.status().message(), "job k3x9qa has no checkpoint yet");
}

}  // namespace
}  // namespace matbert
