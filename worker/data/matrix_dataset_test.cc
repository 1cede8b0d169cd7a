#include "worker/data/matrix_dataset.h"

#include <unistd.h>

#include <cmath>
#include <filesystem>

#include "common/file_util.h"
#include "gtest/gtest.h"
#include "worker/data/dataset_format.h"
#include "worker/data/dataset_generator.h"

namespace matbert {
namespace {
namespace fs = std::filesystem;

class MatrixDatasetTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = ::testing::TempDir() + "/matrix_dataset_test_" + std::to_string(::getpid());
    fs::create_directories(root_);
  }
  void TearDown() override { fs::remove_all(root_); }

  GenerateOptions Options(const std::string& name, int threads) {
    GenerateOptions o;
    o.shape = {6, 5, 2};
    o.tokenizer = {2, 4, true};
    o.n_samples = 2345;  // not a multiple of the 1000-row batches
    o.shards = 3;
    o.threads = threads;
    o.seed = 9;
    o.output_dir = root_ + "/" + name;
    o.progress = ProgressBar::Mode::kQuiet;
    return o;
  }

  std::string root_;
};

std::string ReadAll(const std::string& path) { return *ReadFileToString(path); }

TEST_F(MatrixDatasetTest, ReaderReturnsTheGeneratedMatrices) {
  GenerateOptions options = Options("a", 2);
  auto result = GenerateDataset(options);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->rows, 2345);

  auto dataset = MatrixDataset::Open(options.output_dir);
  ASSERT_TRUE(dataset.ok()) << dataset.status();
  EXPECT_EQ(dataset->num_rows(), 2345);
  EXPECT_EQ(dataset->row_length(), 6 * 5 + 2 + 5);
  EXPECT_EQ(dataset->tokenizer().vocab_size(), 806);
  // Shards of 781/782/782 rows: batches 781 | 782 | 782 (all under 1000 rows).
  EXPECT_EQ(dataset->num_batches(), 3);

  MatrixGenerator generator(options.shape, options.seed);
  MatrixTokenizer tokenizer = *MatrixTokenizer::Create(options.tokenizer);
  std::vector<double> matrix(30), expected_values(dataset->row_length());
  std::vector<int32_t> expected_ids(dataset->row_length());
  int64_t seen = 0;
  ASSERT_TRUE(dataset
                  ->ForEachRow([&](int64_t row, std::span<const int32_t> ids,
                                   std::span<const double> values) {
                    EXPECT_EQ(row, seen++);
                    generator.Generate(row, matrix);
                    tokenizer.EncodeMatrix(matrix, 6, 5, expected_ids, expected_values);
                    ASSERT_TRUE(std::equal(ids.begin(), ids.end(), expected_ids.begin()));
                    for (size_t j = 0; j < values.size(); ++j) {
                      if (std::isnan(expected_values[j])) {
                        ASSERT_TRUE(std::isnan(values[j]));
                      } else {
                        ASSERT_EQ(values[j], expected_values[j]);
                      }
                    }
                  })
                  .ok());
  EXPECT_EQ(seen, 2345);
}

TEST_F(MatrixDatasetTest, OutputIsIdenticalForAnyThreadCount) {
  ASSERT_TRUE(GenerateDataset(Options("t1", 1)).ok());
  ASSERT_TRUE(GenerateDataset(Options("t3", 3)).ok());
  int files = 0;
  for (const auto& entry : fs::recursive_directory_iterator(root_ + "/t1")) {
    if (!entry.is_regular_file()) continue;
    const std::string rel = fs::relative(entry.path(), root_ + "/t1").string();
    EXPECT_EQ(ReadAll(entry.path().string()), ReadAll(root_ + "/t3/" + rel)) << rel;
    ++files;
  }
  EXPECT_EQ(files, 3 + 6);  // three shards and six JSON files
}

TEST_F(MatrixDatasetTest, CorruptionIsRefusedNamingTheFile) {
  GenerateOptions options = Options("c", 2);
  ASSERT_TRUE(GenerateDataset(options).ok());
  const std::string dir = options.output_dir;
  const std::string shard = dir + "/train/" + ShardFileName(1, 3);

  // A token id outside the vocabulary.
  std::string bytes = ReadAll(shard);
  std::string good = bytes;
  const int32_t cls_then_bin[1] = {MatrixTokenizer::kClsId};
  size_t at = bytes.find(std::string(reinterpret_cast<const char*>(cls_then_bin), 4), 1000);
  ASSERT_NE(at, std::string::npos);
  bytes[at] = 100;  // id 100 is past [CLS]..., but still < vocab; make it far out instead
  bytes[at + 3] = 0x40;
  ASSERT_TRUE(WriteFileAtomically(shard, bytes).ok());
  auto dataset = MatrixDataset::Open(dir);
  ASSERT_TRUE(dataset.ok()) << dataset.status();
  absl::Status status = dataset->ForEachRow([](int64_t, auto, auto) {});
  ASSERT_FALSE(status.ok());
  EXPECT_NE(status.message().find(shard), std::string::npos) << status;
  EXPECT_NE(status.message().find("outside the vocabulary"), std::string::npos) << status;

  // A truncated shard.
  ASSERT_TRUE(WriteFileAtomically(shard, good.substr(0, good.size() / 2)).ok());
  dataset = MatrixDataset::Open(dir);
  ASSERT_FALSE(dataset.ok());
  EXPECT_NE(dataset.status().message().find(shard + ": byte offset"), std::string::npos)
      << dataset.status();

  // A shard name that escapes the split folder.
  ASSERT_TRUE(WriteFileAtomically(shard, good).ok());
  std::string state = ReadAll(dir + "/train/state.json");
  const std::string name = ShardFileName(0, 3);
  state.replace(state.find(name), name.size(), "../config.json");
  ASSERT_TRUE(WriteFileAtomically(dir + "/train/state.json", state).ok());
  dataset = MatrixDataset::Open(dir);
  ASSERT_FALSE(dataset.ok());
  EXPECT_NE(dataset.status().message().find("state.json"), std::string::npos);
}

TEST_F(MatrixDatasetTest, ExistingOutputNeedsOverwrite) {
  GenerateOptions options = Options("o", 1);
  options.n_samples = 10;
  options.shards = 1;
  ASSERT_TRUE(GenerateDataset(options).ok());
  EXPECT_EQ(GenerateDataset(options).status().code(), absl::StatusCode::kAlreadyExists);
  options.overwrite = true;
  options.seed = 10;
  ASSERT_TRUE(GenerateDataset(options).ok());
  auto dataset = MatrixDataset::Open(options.output_dir);
  ASSERT_TRUE(dataset.ok());
  EXPECT_EQ(dataset->seed(), 10u);
}

}  // namespace
}  // namespace matbert
