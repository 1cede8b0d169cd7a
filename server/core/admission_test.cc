// Admission as scenarios: which requests become jobs, the record they become, and the error
// (naming the key) of those that do not.
#include "server/core/admission.h"

#include "absl/strings/match.h"
#include "common/file_util.h"
#include "gtest/gtest.h"

namespace matbert {
namespace {

class AdmissionTest : public testing::Test {
 protected:
  void SetUp() override {
    spec_ = *ReadFileToString(std::string(MATBERT_SOURCE_DIR) + "/configs/bert_matcomp_cpu.toml");
    limits_.spec_root = std::string(MATBERT_SOURCE_DIR) + "/configs";
    limits_.data_root = "/var/matbert/data/";
    limits_.num_devices = 4;
    limits_.device_kind = "cpu";
    limits_.queued = 2;
    limits_.max_queued = 3;
    limits_.default_grace_period_s = 30;
  }
  absl::StatusOr<JobRecord> Admit(std::vector<std::string> overrides, int grace = 0) {
    return matbert::Admit({spec_, std::move(overrides), "test.toml", grace}, "k3x9qa", limits_);
  }

  std::string spec_;
  AdmissionLimits limits_;
};

TEST_F(AdmissionTest, AnAdmittedSpecBecomesItsJobRecord) {
  absl::StatusOr<JobRecord> job =
      Admit({"job.name=sweep-1", "job.gpus=4", "job.priority=5", "job.max_restarts=2",
             "training.steps=300", "matrix.dataset=sets/a"});
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(job->id, "k3x9qa");
  EXPECT_EQ(job->name, "sweep-1");
  EXPECT_EQ(job->kind, "train");
  EXPECT_EQ(job->state, JobState::kQueued);
  EXPECT_EQ(job->devices_requested, 4);
  EXPECT_EQ(job->priority, 5);
  EXPECT_EQ(job->max_restarts, 2);
  EXPECT_EQ(job->grace_period_s, 30) << "the daemon's default";
  EXPECT_EQ(job->total_steps, 300);
  EXPECT_TRUE(absl::StrContains(job->spec_toml, "'/var/matbert/data/sets/a'"))
      << "the dataset resolves inside the data root:\n"
      << job->spec_toml;
  EXPECT_EQ(Admit({}, /*grace=*/5)->grace_period_s, 5);
}

TEST_F(AdmissionTest, AGenerateJobWritesIntoTheDataRoot) {
  absl::StatusOr<JobRecord> job = Admit({"job.kind=generate", "generate.n_samples=64"});
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(job->kind, "generate");
  EXPECT_EQ(job->total_steps, 64) << "a generate job's steps are its samples";
  EXPECT_TRUE(absl::StrContains(job->spec_toml, "'/var/matbert/data/k3x9qa'")) << job->spec_toml;
}

TEST_F(AdmissionTest, RefusalsNameTheKeyAndTheAllowedValues) {
  struct Scenario {
    std::vector<std::string> overrides;
    int grace;
    absl::StatusCode code;
    std::string says;
  };
  const std::vector<Scenario> scenarios = {
      {{"job.gpus=5"},
       0,
       absl::StatusCode::kInvalidArgument,
       "test.toml: job.gpus must be between 1 and 4 (the CPU slots of this server), got 5"},
      {{"matrix.dataset=../../etc"},
       0,
       absl::StatusCode::kInvalidArgument,
       "matrix.dataset must be a relative path inside the server's data directory"},
      {{"matrix.dataset=/etc/passwd"},
       0,
       absl::StatusCode::kInvalidArgument,
       "matrix.dataset must be a relative path"},
      {{"job.kind=generate", "generate.output_dir=a/../../b"},
       0,
       absl::StatusCode::kInvalidArgument,
       "generate.output_dir must be a relative path"},
      {{}, -1, absl::StatusCode::kInvalidArgument, "grace_period_seconds must be >= 0, got -1"},
      {{"job.gpus"}, 0, absl::StatusCode::kInvalidArgument, "job.gpus"},
      {{"job.colour=red"}, 0, absl::StatusCode::kInvalidArgument, "job.colour"},
      {{"job.kind=serve"}, 0, absl::StatusCode::kInvalidArgument, "\"train\""},
      {{"job.nodes=2"},
       0,
       absl::StatusCode::kInvalidArgument,
       "test.toml: job.nodes must be 1 on this server, which runs jobs on its own host"},
  };
  for (const Scenario& s : scenarios) {
    absl::StatusOr<JobRecord> job = Admit(s.overrides, s.grace);
    ASSERT_FALSE(job.ok()) << s.says;
    EXPECT_EQ(job.status().code(), s.code) << job.status();
    EXPECT_TRUE(absl::StrContains(job.status().message(), s.says)) << job.status();
  }
}

TEST_F(AdmissionTest, AFullQueueIsResourceExhausted) {
  limits_.queued = 3;
  absl::StatusOr<JobRecord> job = Admit({});
  EXPECT_EQ(job.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_TRUE(absl::StrContains(job.status().message(), "(--max-queued 3)")) << job.status();
}

TEST_F(AdmissionTest, UnderSlurmAJobSpansNodesAndItsRanksAreCounted) {
  limits_.device_kind = "slurm";
  limits_.num_devices = 8;
  limits_.max_nodes = 4;
  absl::StatusOr<JobRecord> job = Admit({"job.nodes=2", "job.gpus=3"});
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(job->nodes, 2);
  EXPECT_EQ(job->devices_requested, 6) << "the world size";
  EXPECT_EQ(Admit({"job.nodes=5"}).status().message(),
            "test.toml: job.nodes must be between 1 and 4, got 5");
  EXPECT_EQ(Admit({"job.nodes=3", "job.gpus=3"}).status().message(),
            "test.toml: job.nodes × job.gpus must be at most 8 ranks (matbertd --slurm-max-ranks), "
            "got 9");
}

}  // namespace
}  // namespace matbert
