#include "common/worker_report.h"

#include "gtest/gtest.h"

namespace matbert {
namespace {

TEST(WorkerReport, MetricsLinesBecomeTypedRecords) {
  // A summary line as the trainer writes it: numbers, a boolean, a string, a nested object.
  const std::optional<MetricsRecord> summary = ParseMetricsLine(
      R"({"kind":"summary","step":300,"stopped":false,"final_loss":0.25,"libtorch":"2.15.0",)"
      R"("seconds_per_step":{"forward":0.5,"backward":1.25,"note":"x"}})");
  ASSERT_TRUE(summary.has_value());
  EXPECT_EQ(*summary, (MetricsRecord{"summary",
                                     300,
                                     {{"stopped", 0},
                                      {"final_loss", 0.25},
                                      {"seconds_per_step.forward", 0.5},
                                      {"seconds_per_step.backward", 1.25}}}));
  EXPECT_EQ(*ParseMetricsLine(R"({"kind":"train","step":7,"loss":1.5})"),
            (MetricsRecord{"train", 7, {{"loss", 1.5}}}));
  EXPECT_EQ(ParseMetricsLine(R"({"kind":"checkpoint","step":5,"path":"x"})"), std::nullopt);
  EXPECT_EQ(ParseMetricsLine("[1, 2]"), std::nullopt);
  EXPECT_EQ(ParseMetricsLine("{\"kind\":"), std::nullopt);
}

TEST(WorkerReport, RunEndNamesRoundTrip) {
  for (RunEnd end : {RunEnd::kUnknown, RunEnd::kCompleted, RunEnd::kStopped}) {
    EXPECT_EQ(ParseRunEnd(RunEndName(end)), end);
  }
  EXPECT_EQ(ParseRunEnd("completed"), RunEnd::kUnknown);
}

}  // namespace
}  // namespace matbert
