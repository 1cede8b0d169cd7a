#include "common/job_spec.h"

#include <filesystem>

#include "common/file_util.h"
#include "common/token_layout.h"
#include "gtest/gtest.h"

namespace matbert {
namespace {

std::string ConfigsDir() { return std::string(MATBERT_SOURCE_DIR) + "/configs"; }

absl::StatusOr<JobSpec> Parse(const std::string& text, std::vector<Override> overrides = {}) {
  return ParseJobSpec(text, "spec.toml", ConfigsDir(), overrides);
}

void ExpectError(const absl::StatusOr<JobSpec>& spec, const std::string& message) {
  ASSERT_FALSE(spec.ok());
  EXPECT_EQ(spec.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(std::string(spec.status().message()), message);
}

TEST(JobSpecTest, ShippedConfigsLoad) {
  for (const char* name : {"bert_matcomp.toml", "bert_training.toml", "bert_matcomp_cpu.toml"}) {
    auto spec = LoadJobSpec(ConfigsDir() + "/" + name);
    EXPECT_TRUE(spec.ok()) << name << ": " << spec.status();
  }
  auto spec = LoadJobSpec(ConfigsDir() + "/bert_matcomp.toml");
  ASSERT_TRUE(spec.ok());
  EXPECT_EQ(spec->model.hidden_size, 768);                        // from bert_arch.json
  EXPECT_EQ(spec->model.position_embedding_type, "absolute_2d");  // inline override
  EXPECT_EQ(spec->job.name, "bert_matcomp");
  EXPECT_EQ(spec->VocabSize(), 805);
  EXPECT_EQ(spec->SequenceLength(), 402);
}

TEST(JobSpecTest, DefaultsAndValues) {
  auto spec = Parse("[training]\nsteps = 7\nlr = 1\nwarmup_steps = 0\n[matrix]\nrow_sep = true\n");
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->training.steps, 7);
  EXPECT_EQ(spec->training.lr, 1.0);  // an integer is accepted for a float key
  EXPECT_EQ(spec->VocabSize(), 806);
  EXPECT_EQ(spec->job.name, "spec");
  EXPECT_FALSE(spec->checkpoint.load_step.has_value());
}

TEST(JobSpecTest, WarmupAndCooldownShrinkToFitAnyStepCount) {
  struct Case {
    std::string training;
    int64_t warmup, cooldown;
    std::string note;  // "" = none
  };
  const Case cases[] = {
      {"steps = 1000\nwarmup_steps = 100\ncooldown_steps = 50", 100, 50, ""},
      {"steps = 10\nwarmup_steps = 100", 10, 0,
       "training.warmup_steps 100 + training.cooldown_steps 0 are longer than training.steps "
       "10: shrunk in proportion to 10 + 0"},
      {"steps = 10\nwarmup_steps = 60\ncooldown_steps = 40", 6, 4,
       "training.warmup_steps 60 + training.cooldown_steps 40 are longer than training.steps "
       "10: shrunk in proportion to 6 + 4"},
      {"steps = 7\nwarmup_steps = 20\ncooldown_steps = 10", 4, 2,  // floor(4.67), floor(2.33)
       "training.warmup_steps 20 + training.cooldown_steps 10 are longer than training.steps "
       "7: shrunk in proportion to 4 + 2"},
      {"steps = 30\nwarmup_ratio = 0.1\ncooldown_ratio = 0.2", 3, 6, ""},
      {"steps = 10\nwarmup_ratio = 0.8\ncooldown_ratio = 0.7", 5, 4,
       "training.warmup_steps 8 + training.cooldown_steps 7 are longer than training.steps 10: "
       "shrunk in proportion to 5 + 4"},
  };
  for (const Case& c : cases) {
    auto spec = Parse("[training]\n" + c.training + "\n");
    ASSERT_TRUE(spec.ok()) << c.training << ": " << spec.status();
    EXPECT_EQ(spec->training.warmup_steps, c.warmup) << c.training;
    EXPECT_EQ(spec->training.cooldown_steps, c.cooldown) << c.training;
    EXPECT_EQ(spec->notes,
              c.note.empty() ? std::vector<std::string>{} : std::vector<std::string>{c.note})
        << c.training;
    // The resolved spec parses back to the same phases, with nothing left to say.
    auto again = Parse(spec->ToToml());
    ASSERT_TRUE(again.ok()) << again.status();
    EXPECT_EQ(again->training.warmup_steps, c.warmup) << c.training;
    EXPECT_EQ(again->training.cooldown_steps, c.cooldown) << c.training;
    EXPECT_TRUE(again->notes.empty()) << c.training;
  }
  ExpectError(Parse("[training]\nwarmup_ratio = 1.5\n"),
              "spec.toml:2: training.warmup_ratio must be a number in [0, 1], got 1.5");
  ExpectError(Parse("[training]\nwarmup_steps = 5\nwarmup_ratio = 0.25\n"),
              "spec.toml: training.warmup_steps and training.warmup_ratio are both set; set one "
              "(a ratio is a fraction of training.steps)");
  // Across sources the later one wins: an override in steps replaces the file's ratio, and an
  // override ratio replaces the file's steps.
  auto steps_over_ratio = Parse("[training]\nsteps = 100\nwarmup_ratio = 0.25\n",
                                {{"training.warmup_steps", "5", "--training.warmup_steps"}});
  ASSERT_TRUE(steps_over_ratio.ok()) << steps_over_ratio.status();
  EXPECT_EQ(steps_over_ratio->training.warmup_steps, 5);
  auto ratio_over_steps = Parse("[training]\nsteps = 100\nwarmup_steps = 5\n",
                                {{"training.warmup_ratio", "0.25", "--training.warmup_ratio"}});
  ASSERT_TRUE(ratio_over_steps.ok()) << ratio_over_steps.status();
  EXPECT_EQ(ratio_over_steps->training.warmup_steps, 25);
}

TEST(JobSpecTest, MaskScheduleAndBertProbabilitiesAreChecked) {
  ExpectError(Parse("[matrix]\nmask_prob_start = 0.1\n"),
              "spec.toml: matrix.mask_prob_start and matrix.mask_prob_end make a schedule "
              "together: set both above 0, or neither (got 0.1 and 0)");
  ExpectError(Parse("[matrix]\nmask_random_prob = 0.6\nmask_keep_prob = 0.5\n"),
              "spec.toml: matrix.mask_random_prob + matrix.mask_keep_prob must be <= 1, got 1.1");
  auto spec = Parse("[matrix]\nmask_prob_start = 0.1\nmask_prob_end = 0.4\n");
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->matrix.mask_prob_end, 0.4);
}

TEST(JobSpecTest, EveryShippedConfigRunsTenSteps) {
  for (const char* name : {"bert_matcomp.toml", "bert_training.toml", "bert_matcomp_cpu.toml"}) {
    auto spec =
        LoadJobSpec(ConfigsDir() + "/" + name, {{"training.steps", "10", "--training.steps"}});
    ASSERT_TRUE(spec.ok()) << name << ": " << spec.status();
    EXPECT_LE(spec->training.warmup_steps + spec->training.cooldown_steps, 10) << name;
  }
}

TEST(JobSpecTest, ErrorsNameKeyLineAndAllowedValues) {
  ExpectError(Parse("[training]\nsteps = 10\n\nlr = 50\n"),
              "spec.toml:4: training.lr must be a number in (0, 10], got 50");
  ExpectError(Parse("[training]\nsteps = \"many\"\n"),
              "spec.toml:2: training.steps must be an integer in [1, 1e+12], got \"many\"");
  ExpectError(Parse("[training]\nschedule = \"step\"\n"),
              "spec.toml:2: training.schedule must be one of \"constant\", \"linear\", "
              "\"cosine\", got \"step\"");
  ExpectError(Parse("[matrix]\nrow_sep = 1\n"),
              "spec.toml:2: matrix.row_sep must be true or false, got 1");
  ExpectError(Parse("[trainig]\nsteps = 1\n"),
              "spec.toml:1: unknown section [trainig]; allowed: job, model, matrix, training, "
              "checkpoint, generate");
  auto unknown = Parse("[matrix]\nm = 4\nrank = 2\n");
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(std::string(unknown.status().message())
                .find("spec.toml:3: unknown key matrix.rank; "
                      "allowed in [matrix]: m, n, r,"),
            std::string::npos)
      << unknown.status();
  ExpectError(Parse("[matrix]\nm = 4\nn = 6\nr = 5\n"),
              "spec.toml: matrix.r must be in 1..min(matrix.m, matrix.n) = 4, got 5");
  ExpectError(Parse("[model]\nhidden_size = 100\nnum_attention_heads = 3\n"),
              "spec.toml: model.hidden_size (100) must be a multiple of "
              "model.num_attention_heads (3)");
  ExpectError(Parse("[model]\nmax_position_embeddings = 100\n"),
              "spec.toml: model.max_position_embeddings must be >= the sequence length m*n+2 = "
              "402, got 100");
  auto syntax = Parse("[training]\nsteps = = 3\n");
  ASSERT_FALSE(syntax.ok());
  EXPECT_EQ(std::string(syntax.status().message()).rfind("spec.toml:2: ", 0), 0u)
      << syntax.status();
}

TEST(JobSpecTest, OverridesApplyLastAndAreChecked) {
  std::vector<Override> overrides = {{"training.steps", "1000", "--training.steps"},
                                     *ParseSetOverride("matrix.prec=3"),
                                     {"checkpoint.load-step", "-1", "--checkpoint.load-step"},
                                     {"training.schedule", "linear", "--training.schedule"}};
  auto spec = Parse("[training]\nsteps = 10\n", overrides);
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->training.steps, 1000);
  EXPECT_EQ(spec->matrix.prec, 3);
  EXPECT_EQ(spec->checkpoint.load_step, -1);
  EXPECT_EQ(spec->training.schedule, "linear");
  ExpectError(Parse("", {{"training.lr", "-1", "--training.lr"}}),
              "--training.lr: training.lr must be a number in (0, 10], got -1");
  auto bad = Parse("", {{"training.stepz", "1", "--training.stepz"}});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(std::string(bad.status().message()).find("--training.stepz: unknown key"),
            std::string::npos);
  EXPECT_FALSE(ParseSetOverride("training.steps").ok());
}

TEST(JobSpecTest, ArchJsonErrorsNameTheFile) {
  const std::string dir = ::testing::TempDir() + "arch_json_test";
  std::filesystem::create_directories(dir);
  ASSERT_TRUE(WriteFileAtomically(dir + "/arch.json", "{\"hidden_size\": 64, \"hiden\": 1}").ok());
  auto spec = ParseJobSpec("[model]\narch = \"arch.json\"\n", "spec.toml", dir);
  ASSERT_FALSE(spec.ok());
  EXPECT_NE(std::string(spec.status().message()).find(dir + "/arch.json: unknown key \"hiden\""),
            std::string::npos)
      << spec.status();
  ASSERT_TRUE(WriteFileAtomically(dir + "/arch.json", "{\"hidden_size\": \"big\"}").ok());
  spec = ParseJobSpec("[model]\narch = \"arch.json\"\n", "spec.toml", dir);
  ASSERT_FALSE(spec.ok());
  EXPECT_NE(std::string(spec.status().message()).find("model.hidden_size must be an integer"),
            std::string::npos);
}

TEST(JobSpecTest, ResolvedTomlRoundTrips) {
  auto spec = LoadJobSpec(ConfigsDir() + "/bert_matcomp.toml",
                          {{"checkpoint.load_step", "40", "--checkpoint.load_step"}});
  ASSERT_TRUE(spec.ok());
  const std::string text = spec->ToToml();
  EXPECT_EQ(text.find("arch"), std::string::npos);
  auto again = ParseJobSpec(text, "resolved.toml", "/nonexistent");
  ASSERT_TRUE(again.ok()) << again.status() << "\n" << text;
  EXPECT_EQ(again->ToToml(), text);
  EXPECT_EQ(again->model.hidden_size, 768);
  EXPECT_EQ(again->checkpoint.load_step, 40);
  EXPECT_EQ(again->training.lr, spec->training.lr);
}

TEST(JobSpec, OverrideArgumentsAreTakenOutOfTheCommandLine) {
  std::vector<std::string> args = {"submit", "spec.toml", "--training.steps",
                                   "500",    "--quiet",   "--matrix.prec=3",
                                   "--name", "x.y",       "--set",
                                   "a.b=1"};
  auto overrides = ExtractOverrideArgs(&args);
  ASSERT_TRUE(overrides.ok()) << overrides.status();
  EXPECT_EQ(args, (std::vector<std::string>{"submit", "spec.toml", "--quiet", "--name", "x.y",
                                            "--set", "a.b=1"}));
  ASSERT_EQ(overrides->size(), 2u);
  EXPECT_EQ((*overrides)[0].key, "training.steps");
  EXPECT_EQ((*overrides)[0].value, "500");
  EXPECT_EQ((*overrides)[0].origin, "--training.steps");
  EXPECT_EQ((*overrides)[1].key, "matrix.prec");
  EXPECT_EQ((*overrides)[1].value, "3");
  std::vector<std::string> dangling = {"--training.lr"};
  auto missing = ExtractOverrideArgs(&dangling);
  EXPECT_EQ(missing.status().message(), "--training.lr needs a value");
}

TEST(TokenLayout, VocabularyAndSequenceLengthOfTheContract) {
  // DESIGN.md §2: prec 0/1/2/3 give vocab 13/85/805/8005 without row separators.
  EXPECT_EQ(TokenVocabSize(0, 4, false), 13);
  EXPECT_EQ(TokenVocabSize(1, 4, false), 85);
  EXPECT_EQ(TokenVocabSize(2, 4, false), 805);
  EXPECT_EQ(TokenVocabSize(3, 4, false), 8005);
  EXPECT_EQ(TokenVocabSize(2, 4, true), 806);
  EXPECT_EQ(TokenBins(2, 4), 801);
  EXPECT_EQ(TokenSequenceLength(20, 20, false), 402);
  EXPECT_EQ(TokenSequenceLength(7, 9, true), 7 * 9 + 2 + 6);
}

}  // namespace
}  // namespace matbert
