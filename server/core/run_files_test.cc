// Reading the ranks' logs of a run directory on real files: where a reader starts (resume,
// tail, all), and following logs as ranks append to them, partial lines held back.
#include "server/core/run_files.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "common/run_layout.h"
#include "gtest/gtest.h"
#include "server/testing/test_dir.h"

namespace matbert {
namespace {

class RunFilesTest : public testing::Test {
 protected:
  void SetUp() override {
    run_dir_ = FreshTestDir("run_files_test");
    std::filesystem::create_directories(run_dir_ + "/logs");
  }
  void Append(int rank, const std::string& text) {
    std::ofstream(RunLogPath(run_dir_, rank), std::ios::app) << text;
  }
  std::string run_dir_;
};

std::vector<std::string> Texts(const std::vector<RankLogLine>& lines) {
  std::vector<std::string> out;
  for (const RankLogLine& l : lines) out.push_back(absl::StrCat(l.rank, ":", l.text));
  return out;
}

TEST_F(RunFilesTest, LogStartOffsetsResumeTailOrStart) {
  Append(0, "a\nb\nc\n");  // offsets: a 0..2, b 2..4, c 4..6
  Append(1, "x\ny\n");
  using Offsets = std::map<int, int64_t>;
  EXPECT_EQ(*LogStartOffsets(run_dir_, 2, {}), (Offsets{{0, 0}, {1, 0}}));
  EXPECT_EQ(*LogStartOffsets(run_dir_, 2, {std::nullopt, {}, 2}), (Offsets{{0, 2}, {1, 0}}))
      << "the last two lines of each log";
  EXPECT_EQ(*LogStartOffsets(run_dir_, 2, {std::nullopt, {{1, 2}}, 1}), (Offsets{{0, 4}, {1, 2}}))
      << "a resume offset wins over the tail";
  EXPECT_EQ(*LogStartOffsets(run_dir_, 2, {1, {}, 0}), (Offsets{{1, 0}}));
  EXPECT_EQ(*LogStartOffsets(run_dir_, 3, {2, {}, 5}), (Offsets{{2, 0}})) << "no log yet";
  EXPECT_EQ(LogStartOffsets(run_dir_, 2, {2, {}, 0}).status().message(),
            "rank must be between 0 and 1, got 2");
  EXPECT_EQ(LogStartOffsets(run_dir_, 2, {std::nullopt, {}, -1}).status().message(),
            "tail_lines must be >= 0, got -1");
}

TEST_F(RunFilesTest, RankLogsFollowAppendsAndHoldBackPartialLines) {
  Append(0, "start 0\n");
  RankLogs logs(run_dir_, {{0, 0}, {1, 0}});
  EXPECT_EQ(Texts(logs.Read()), (std::vector<std::string>{"0:start 0"}));
  EXPECT_TRUE(logs.Read().empty());
  Append(1, "start 1\nhalf");
  Append(0, "step 1\n");
  EXPECT_EQ(Texts(logs.Read()), (std::vector<std::string>{"0:step 1", "1:start 1"}));
  Append(1, " a line\n");
  const std::vector<RankLogLine> lines = logs.Read();
  EXPECT_EQ(Texts(lines), (std::vector<std::string>{"1:half a line"}));
  EXPECT_EQ(lines[0].end, 20);  // "start 1\n" and "half a line\n"
  EXPECT_EQ(logs.offsets(), (std::map<int, int64_t>{{0, 15}, {1, 20}}));
}

TEST_F(RunFilesTest, DiscoveringRankLogsFindsLogsAsRanksStart) {
  RankLogs logs(run_dir_, {}, /*discover=*/true);
  EXPECT_TRUE(logs.Read().empty());
  Append(0, "r0\n");
  Append(2, "r2\n");  // rank 1 has no log yet: rank 2 waits for it
  EXPECT_EQ(Texts(logs.Read()), (std::vector<std::string>{"0:r0"}));
  Append(1, "r1\n");
  EXPECT_EQ(Texts(logs.Read()), (std::vector<std::string>{"1:r1", "2:r2"}));
}

}  // namespace
}  // namespace matbert
