#include "common/dist_env.h"

#include <stdlib.h>

#include "absl/strings/str_split.h"
#include "gtest/gtest.h"

namespace matbert {
namespace {

// Replaces this process's rank variables with `entries` ("NAME=value").
void SetEnvironment(const std::vector<std::string>& entries) {
  for (const char* name :
       {kEnvRank, kEnvLocalRank, kEnvWorldSize, kEnvLocalWorldSize, kEnvMasterAddr, kEnvMasterPort,
        kEnvCudaVisibleDevices, kEnvCoordinator, kEnvJobId, kEnvAttempt, kEnvToken, kEnvTlsCa}) {
    unsetenv(name);
  }
  for (const std::string& entry : entries) {
    std::pair<std::string, std::string> kv = absl::StrSplit(entry, absl::MaxSplits('=', 1));
    setenv(kv.first.c_str(), kv.second.c_str(), 1);
  }
}

TEST(DistEnv, WhatTheDaemonWritesTheWorkerReadsBack) {
  RankEnv written;
  written.dist = {.rank = 2,
                  .local_rank = 0,
                  .world_size = 4,
                  .local_world_size = 2,
                  .master_addr = "10.0.0.7",
                  .master_port = 29517};
  written.cuda_visible_devices = "3";
  written.coordinator = {.address = "127.0.0.1:50051",
                         .job_id = "k3x9qa",
                         .attempt = 3,
                         .token = "s3cret",
                         .tls_ca = "/etc/matbert/ca.pem"};
  const std::vector<std::string> entries = RankEnvEntries(written);
  for (const std::string& e : entries) EXPECT_TRUE(IsRankEnvEntry(e)) << e;
  SetEnvironment(entries);
  absl::StatusOr<DistEnv> dist = ReadDistEnv();
  ASSERT_TRUE(dist.ok()) << dist.status();
  EXPECT_EQ(dist->rank, 2);
  EXPECT_EQ(dist->local_rank, 0);
  EXPECT_EQ(dist->world_size, 4);
  EXPECT_EQ(dist->local_world_size, 2);
  EXPECT_EQ(dist->master_addr, "10.0.0.7");
  EXPECT_EQ(dist->master_port, 29517);
  EXPECT_STREQ(getenv(kEnvCudaVisibleDevices), "3");
  auto coordinator = ReadCoordinatorEnv();
  ASSERT_TRUE(coordinator.ok()) << coordinator.status();
  ASSERT_TRUE(coordinator->has_value());
  EXPECT_EQ((*coordinator)->address, "127.0.0.1:50051");
  EXPECT_EQ((*coordinator)->job_id, "k3x9qa");
  EXPECT_EQ((*coordinator)->attempt, 3);
  EXPECT_EQ((*coordinator)->token, "s3cret");
  EXPECT_EQ((*coordinator)->tls_ca, "/etc/matbert/ca.pem");
}

TEST(DistEnv, OptionalVariablesAreLeftOutAndByHandMeansNoCoordinator) {
  RankEnv written;
  written.coordinator = {.address = "127.0.0.1:1", .job_id = "j", .attempt = 1};
  for (const std::string& e : RankEnvEntries(written)) {
    EXPECT_NE(e.rfind("MATBERT_TOKEN=", 0), 0u) << e;
    EXPECT_NE(e.rfind("MATBERT_TLS_CA=", 0), 0u) << e;
  }
  SetEnvironment({});
  auto by_hand = ReadCoordinatorEnv();
  ASSERT_TRUE(by_hand.ok());
  EXPECT_FALSE(by_hand->has_value());
  auto alone = ReadDistEnv();
  ASSERT_TRUE(alone.ok());
  EXPECT_EQ(alone->world_size, 1);
  EXPECT_FALSE(IsRankEnvEntry("PATH=/usr/bin"));
  EXPECT_FALSE(IsRankEnvEntry("RANKING=1"));
  EXPECT_TRUE(IsRankEnvEntry("MATBERT_ANYTHING=1"));
}

TEST(DistEnv, MalformedVariablesAreNamed) {
  SetEnvironment({"MATBERT_COORDINATOR=127.0.0.1:1", "MATBERT_ATTEMPT=1"});
  EXPECT_EQ(ReadCoordinatorEnv().status().message(),
            "MATBERT_JOB_ID must be set with MATBERT_COORDINATOR");
  SetEnvironment({"MATBERT_COORDINATOR=127.0.0.1:1", "MATBERT_JOB_ID=j", "MATBERT_ATTEMPT=0"});
  EXPECT_EQ(ReadCoordinatorEnv().status().message(),
            "MATBERT_ATTEMPT must be a number >= 1, got \"0\"");
  SetEnvironment({"RANK=x"});
  EXPECT_EQ(ReadDistEnv().status().message(),
            "environment variable RANK must be a non-negative integer, got \"x\"");
  SetEnvironment({"RANK=3", "WORLD_SIZE=2"});
  EXPECT_EQ(ReadDistEnv().status().message(), "RANK must be in 0..WORLD_SIZE-1 = 1, got 3");
}

}  // namespace
}  // namespace matbert
