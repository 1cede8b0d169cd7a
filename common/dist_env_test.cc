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
        kEnvCudaVisibleDevices, kEnvCoordinator, kEnvJobId, kEnvAttempt, kEnvToken, kEnvTlsCa,
        "SLURM_PROCID", "SLURM_LOCALID", "SLURM_NTASKS", "SLURM_NNODES", "SLURM_JOB_NODELIST",
        "SLURM_NODELIST", "SLURM_JOB_ID"}) {
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
  written.coordinator = {
      .address = "127.0.0.1:1", .job_id = "j", .attempt = 1, .token = "", .tls_ca = ""};
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

TEST(DistEnv, UnderSrunTheRanksComeFromSlurmsVariables) {
  // Rank 3 of 2 nodes × 2 tasks, as srun sets it for `sbatch --nodes=2 --ntasks-per-node=2`.
  SetEnvironment({"SLURM_PROCID=3", "SLURM_LOCALID=1", "SLURM_NTASKS=4", "SLURM_NNODES=2",
                  "SLURM_JOB_NODELIST=gpu-[007-008]", "SLURM_JOB_ID=123456"});
  absl::StatusOr<DistEnv> env = ReadDistEnv();
  ASSERT_TRUE(env.ok()) << env.status();
  EXPECT_EQ(env->rank, 3);
  EXPECT_EQ(env->local_rank, 1);
  EXPECT_EQ(env->world_size, 4);
  EXPECT_EQ(env->local_world_size, 2);
  EXPECT_EQ(env->master_addr, "gpu-007");
  EXPECT_EQ(env->master_port, 20000 + 123456 % 20000);
  // Explicit torchrun variables win: MASTER_* over the node list, RANK over SLURM_PROCID.
  setenv("MASTER_ADDR", "10.0.0.9", 1);
  setenv("MASTER_PORT", "29600", 1);
  env = ReadDistEnv();
  EXPECT_EQ(env->master_addr, "10.0.0.9");
  EXPECT_EQ(env->master_port, 29600);
  setenv("RANK", "0", 1);
  setenv("WORLD_SIZE", "1", 1);
  EXPECT_EQ(ReadDistEnv()->rank, 0);
  SetEnvironment({"SLURM_PROCID=4", "SLURM_NTASKS=4", "SLURM_JOB_NODELIST=n1"});
  EXPECT_EQ(ReadDistEnv().status().message(),
            "SLURM_PROCID must be in 0..SLURM_NTASKS-1 = 3, got 4");
  SetEnvironment({"SLURM_PROCID=0", "SLURM_NTASKS=2"});
  EXPECT_NE(ReadDistEnv().status().message().find("SLURM_JOB_NODELIST"), std::string::npos);
  SetEnvironment({});
}

TEST(DistEnv, FirstSlurmHostOfAHostList) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"node1", "node1"},       {"node1,node2", "node1"},
      {"node[1-2]", "node1"},   {"node[3-5,9]", "node3"},
      {"node[9,3-5]", "node9"}, {"gpu-[007-008]-ib,x", "gpu-007-ib"},
      {"a[1-2],b[3-4]", "a1"},  {"", ""},
  };
  for (const auto& [list, first] : cases) EXPECT_EQ(FirstSlurmHost(list), first) << list;
}

}  // namespace
}  // namespace matbert
