// The rank plan as scenarios: what each rank of a training or generate attempt runs.
#include "server/core/rank_plan.h"

#include <algorithm>

#include "gtest/gtest.h"

namespace matbert {
namespace {

JobRecord Job(const std::string& kind) {
  JobRecord job;
  job.id = "k3x9qa";
  job.kind = kind;
  return job;
}

RankPlanInput Input(int devices, const std::string& device_kind) {
  RankPlanInput in;
  in.worker_path = "/opt/matbert/bin/matbert-worker";
  in.run_dir = "/var/matbert/runs/k3x9qa";
  for (int i = 0; i < devices; ++i) {
    in.devices.push_back(
        {device_kind + ":" + std::to_string(2 * i + 1), device_kind, 2 * i + 1, "", 0});
  }
  in.attempt = 3;
  in.base_env = {"PATH=/usr/bin", "HOME=/root"};
  in.master_addr = "10.0.0.7";
  in.master_port = 29511;
  in.coordinator.address = "127.0.0.1:50051";
  return in;
}

bool Has(const RankLaunch& r, const std::string& entry) {
  return std::find(r.env.begin(), r.env.end(), entry) != r.env.end();
}

TEST(RankPlan, TrainingGetsOneRankPerDeviceWithTheEnvironmentContract) {
  const AttemptPlan plan = PlanAttempt(Job("train"), Input(2, "gpu"));
  EXPECT_EQ(plan.job_id, "k3x9qa");
  EXPECT_EQ(plan.attempt, 3);
  EXPECT_EQ(plan.resumed_from_step, 0);
  ASSERT_EQ(plan.ranks.size(), 2u);
  for (int rank = 0; rank < 2; ++rank) {
    const RankLaunch& r = plan.ranks[rank];
    EXPECT_EQ(r.rank, rank);
    EXPECT_EQ(r.argv, (std::vector<std::string>{"/opt/matbert/bin/matbert-worker", "train",
                                                "--config", "/var/matbert/runs/k3x9qa/spec.toml",
                                                "--run-dir", "/var/matbert/runs/k3x9qa"}));
    EXPECT_EQ(r.env[0], "PATH=/usr/bin") << "the daemon's environment comes first";
    EXPECT_EQ(r.env[1], "HOME=/root");
    for (const std::string& e :
         {"RANK=" + std::to_string(rank), "LOCAL_RANK=" + std::to_string(rank),
          std::string("WORLD_SIZE=2"), std::string("LOCAL_WORLD_SIZE=2"),
          std::string("MASTER_ADDR=10.0.0.7"), std::string("MASTER_PORT=29511"),
          std::string("CUDA_VISIBLE_DEVICES=1,3"), std::string("MATBERT_JOB_ID=k3x9qa"),
          std::string("MATBERT_ATTEMPT=3"), std::string("MATBERT_COORDINATOR=127.0.0.1:50051")}) {
      EXPECT_TRUE(Has(r, e)) << e;
    }
    EXPECT_FALSE(std::any_of(r.env.begin(), r.env.end(), [](const std::string& e) {
      return e.rfind("MATBERT_TOKEN=", 0) == 0;
    })) << "no token unless the daemon has one";
    EXPECT_EQ(r.log_path, "/var/matbert/runs/k3x9qa/logs/rank-" + std::to_string(rank) + ".log");
    EXPECT_EQ(r.log_header,
              "=== matbertd: job k3x9qa attempt 3, rank " + std::to_string(rank) + " of 2 ===\n");
  }
}

TEST(RankPlan, ARetryResumesFromTheNewestCheckpointAndCarriesTheCredentials) {
  RankPlanInput in = Input(1, "cpu");
  in.resume_step = 500;
  in.coordinator.token = "s3cret";
  in.coordinator.tls_ca = "/etc/matbert/ca.pem";
  const AttemptPlan plan = PlanAttempt(Job("train"), in);
  EXPECT_EQ(plan.resumed_from_step, 500);
  ASSERT_EQ(plan.ranks.size(), 1u);
  const std::vector<std::string>& argv = plan.ranks[0].argv;
  EXPECT_EQ(std::vector<std::string>(argv.end() - 2, argv.end()),
            (std::vector<std::string>{"--checkpoint.load_step", "500"}));
  EXPECT_TRUE(Has(plan.ranks[0], "CUDA_VISIBLE_DEVICES=")) << "CPU slots hide every GPU";
  EXPECT_TRUE(Has(plan.ranks[0], "MATBERT_TOKEN=s3cret"));
  EXPECT_TRUE(Has(plan.ranks[0], "MATBERT_TLS_CA=/etc/matbert/ca.pem"));
}

TEST(RankPlan, GenerateRunsOneProcessWithAThreadPerDevice) {
  RankPlanInput in = Input(4, "cpu");
  in.resume_step = 7;  // a generate job never resumes
  const AttemptPlan plan = PlanAttempt(Job("generate"), in);
  ASSERT_EQ(plan.ranks.size(), 1u);
  EXPECT_EQ(plan.resumed_from_step, 0);
  EXPECT_EQ(plan.ranks[0].argv,
            (std::vector<std::string>{"/opt/matbert/bin/matbert-worker", "generate", "--config",
                                      "/var/matbert/runs/k3x9qa/spec.toml", "--threads", "4",
                                      "--overwrite"}));
  EXPECT_TRUE(Has(plan.ranks[0], "WORLD_SIZE=1"));
}

}  // namespace
}  // namespace matbert
