#include "common/run_layout.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace matbert {
namespace {

TEST(RunLayout, PathsOfARunDirectory) {
  EXPECT_EQ(RunSpecPath("/s/runs/k3x9qa"), "/s/runs/k3x9qa/spec.toml");
  EXPECT_EQ(RunConfigPath("r"), "r/config.toml");
  EXPECT_EQ(RunMetricsPath("r"), "r/metrics.jsonl");
  EXPECT_EQ(RunLogPath("r", 3), "r/logs/rank-3.log");
  EXPECT_EQ(RunCheckpointsDir("r"), "r/checkpoints");
}

TEST(RunLayout, CheckpointNamesRoundTripAndNothingElseParses) {
  EXPECT_EQ(CheckpointDirName(42), "step-0000042");
  EXPECT_EQ(CheckpointDirName(123456789), "step-123456789");
  for (int64_t step : {0L, 1L, 500L, 9999999L, 10000000L, 123456789012L}) {
    EXPECT_EQ(ParseCheckpointDirName(CheckpointDirName(step)), step) << step;
  }
  for (const char* name :
       {"step-42", "step-+000042", "step--000042", "step- 000042", ".step-0000042.tmp-77",
        "step-0000042.tmp", "steps-0000042", "step-", "Step-0000042", "step-00000x2", ""}) {
    EXPECT_FALSE(ParseCheckpointDirName(name).has_value()) << name;
  }
}

TEST(RunLayout, ListsCompleteCheckpointDirectoriesInStepOrder) {
  const std::string dir = absl::StrCat(testing::TempDir(), "/run_layout_test_", getpid());
  std::filesystem::remove_all(dir);
  for (const char* name :
       {"step-0000100", "step-0000020", "step-10000000", ".step-0000300.tmp-5", "other"}) {
    std::filesystem::create_directories(dir + "/" + name);
  }
  std::ofstream(dir + "/step-0000400");  // a file, not a checkpoint
  EXPECT_EQ(ListCheckpointSteps(dir), (std::vector<int64_t>{20, 100, 10000000}));
  EXPECT_TRUE(ListCheckpointSteps(dir + "/missing").empty());
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace matbert
