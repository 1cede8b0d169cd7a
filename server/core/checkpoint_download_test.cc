// CheckpointDownload on real files: the bytes it streams equal the files and their manifest
// digests equal an independent SHA-256 (OpenSSL's, through common/sha256); a damaged file
// is refused by name before anything is sent; a checkpoint removed mid-download is ABORTED.
#include "server/core/checkpoint_download.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>

#include "absl/strings/str_cat.h"
#include "common/checkpoint_sums.h"
#include "common/run_layout.h"
#include "common/sha256.h"
#include "gtest/gtest.h"
#include "server/testing/test_dir.h"

namespace matbert {
namespace {

class CheckpointDownloadTest : public testing::Test {
 protected:
  void SetUp() override { run_dir_ = FreshTestDir("checkpoint_download_test"); }
  // A checkpoint of `step` with these files, and its SHA256SUMS as the trainer writes it.
  std::string Write(int64_t step, const std::map<std::string, std::string>& files) {
    const std::string dir = run_dir_ + "/checkpoints/" + CheckpointDirName(step);
    std::filesystem::create_directories(dir);
    for (const auto& [name, bytes] : files) std::ofstream(dir + "/" + name) << bytes;
    EXPECT_TRUE(WriteChecksums(dir).ok());
    return dir;
  }
  // Every chunk of `download`, put back together by file.
  std::map<std::string, std::string> ReadAll(CheckpointDownload& download, size_t chunk) {
    std::map<std::string, std::string> out;
    for (;;) {
      absl::StatusOr<std::optional<CheckpointDownload::Chunk>> next = download.Next(chunk);
      EXPECT_TRUE(next.ok()) << next.status();
      if (!next.ok() || !*next) return out;
      EXPECT_LE((*next)->data.size(), chunk);
      EXPECT_EQ((*next)->offset, static_cast<int64_t>(out[(*next)->file].size()));
      out[(*next)->file] += (*next)->data;
    }
  }
  std::string run_dir_;
};

TEST_F(CheckpointDownloadTest, StreamsTheNewestCheckpointByteForByteInChunks) {
  Write(10, {{"model.safetensors", "old"}});
  const std::string big(5000, 'w');
  const std::string dir =
      Write(20, {{"model.safetensors", big}, {"trainer_state.json", "{}"}, {"empty.bin", ""}});
  absl::StatusOr<CheckpointDownload> download =
      CheckpointDownload::Open(run_dir_, std::nullopt, "j1");
  ASSERT_TRUE(download.ok()) << download.status();
  EXPECT_EQ(download->step(), 20);
  std::vector<std::string> names;
  for (const FileDigest& f : download->manifest()) {
    names.push_back(f.name);
    EXPECT_EQ(f.sha256, *Sha256File(dir + "/" + f.name)) << f.name;
  }
  EXPECT_EQ(names, (std::vector<std::string>{"SHA256SUMS", "empty.bin", "model.safetensors",
                                             "trainer_state.json"}));
  const std::map<std::string, std::string> got = ReadAll(*download, 1024);
  EXPECT_EQ(got.at("model.safetensors"), big);
  EXPECT_EQ(got.at("trainer_state.json"), "{}");
  EXPECT_FALSE(got.count("empty.bin")) << "an empty file has no chunk";
  absl::StatusOr<std::optional<CheckpointDownload::Chunk>> after = download->Next(1024);
  ASSERT_TRUE(after.ok());
  EXPECT_FALSE(after->has_value()) << "the end stays the end";

  absl::StatusOr<CheckpointDownload> older = CheckpointDownload::Open(run_dir_, 10, "j1");
  ASSERT_TRUE(older.ok());
  EXPECT_EQ(ReadAll(*older, 2).at("model.safetensors"), "old");
  EXPECT_EQ(CheckpointDownload::Open(run_dir_, 15, "j1").status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(CheckpointDownloadTest, ADamagedFileIsRefusedByNameBeforeAnythingIsSent) {
  const std::string dir = Write(30, {{"model.safetensors", "weights"}});
  std::ofstream(dir + "/model.safetensors") << "weighTs";
  absl::StatusOr<CheckpointDownload> download = CheckpointDownload::Open(run_dir_, 30, "j2");
  EXPECT_EQ(download.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(download.status().message().find("checkpoint step 30 of job j2: "), std::string::npos)
      << download.status();
  EXPECT_NE(download.status().message().find("model.safetensors"), std::string::npos);
}

TEST_F(CheckpointDownloadTest, ACheckpointRemovedDuringTheDownloadIsAborted) {
  const std::string dir = Write(40, {{"a.bin", std::string(100, 'a')}, {"b.bin", "b"}});
  absl::StatusOr<CheckpointDownload> download = CheckpointDownload::Open(run_dir_, 40, "j3");
  ASSERT_TRUE(download.ok());
  ASSERT_TRUE(download->Next(10).ok());  // the first chunk of SHA256SUMS
  std::filesystem::remove_all(dir);      // keep-K rotated it away
  // The file being read is read to its end; the next one is gone.
  absl::StatusOr<std::optional<CheckpointDownload::Chunk>> next;
  std::string sums;
  while ((next = download->Next(10)).ok() && next->has_value() && (*next)->file == "SHA256SUMS") {
    sums += (*next)->data;
  }
  EXPECT_GT(sums.size(), 100u);
  EXPECT_EQ(next.status().code(), absl::StatusCode::kAborted);
  EXPECT_EQ(next.status().message(),
            "checkpoint step 40 was removed during the download; try again");
}

}  // namespace
}  // namespace matbert
