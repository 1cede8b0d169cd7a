#include "common/checkpoint_sums.h"

#include <unistd.h>

#include <cstdlib>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "gtest/gtest.h"

namespace matbert {
namespace {

std::string MakeDir(const std::string& name) {
  const std::string dir = absl::StrCat(testing::TempDir(), "/sums_", name, "_", getpid());
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  EXPECT_TRUE(WriteFileAtomically(dir + "/model.safetensors", std::string(100000, 'w')).ok());
  EXPECT_TRUE(WriteFileAtomically(dir + "/trainer_state.json", "{\"step\": 20}\n").ok());
  EXPECT_TRUE(WriteFileAtomically(dir + "/.hidden", "not listed").ok());
  return dir;
}

TEST(CheckpointSums, CoreutilsReadsWhatWeWrite) {
  const std::string dir = MakeDir("coreutils");
  ASSERT_TRUE(WriteChecksums(dir).ok());
  auto sums = ReadChecksums(dir);
  ASSERT_TRUE(sums.ok()) << sums.status();
  EXPECT_EQ(sums->size(), 2u);  // not .hidden, not SHA256SUMS
  EXPECT_EQ(sums->at("trainer_state.json").size(), 64u);
  // An independent implementation agrees: sha256sum -c checks every file it lists.
  const std::string check =
      absl::StrCat("cd '", dir, "' && sha256sum --quiet --strict -c SHA256SUMS >/dev/null 2>&1");
  EXPECT_EQ(std::system(check.c_str()), 0);
  EXPECT_TRUE(VerifyChecksums(dir).ok());
}

TEST(CheckpointSums, AFlippedByteOrAMissingFileIsNamed) {
  const std::string dir = MakeDir("flip");
  ASSERT_TRUE(WriteChecksums(dir).ok());
  std::string bytes = *ReadFileToString(dir + "/model.safetensors");
  bytes[54321] ^= 0x10;
  ASSERT_TRUE(WriteFileAtomically(dir + "/model.safetensors", bytes).ok());
  absl::Status flipped = VerifyChecksums(dir);
  EXPECT_EQ(flipped.code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(flipped.message().find(dir + "/model.safetensors is corrupt: its SHA-256 is "),
            std::string::npos)
      << flipped;
  std::filesystem::remove(dir + "/model.safetensors");
  absl::Status missing = VerifyChecksums(dir);
  EXPECT_EQ(missing.code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(missing.message(), dir + "/model.safetensors is missing (SHA256SUMS lists it)");
}

TEST(CheckpointSums, OlderCheckpointsWithoutSumsPassMalformedOnesDoNot) {
  const std::string dir = MakeDir("old");
  EXPECT_TRUE(VerifyChecksums(dir).ok());
  EXPECT_TRUE(CompareWithChecksums(dir, {}).ok());
  ASSERT_TRUE(WriteFileAtomically(dir + "/SHA256SUMS", "abc  model.safetensors\n").ok());
  absl::Status malformed = VerifyChecksums(dir);
  EXPECT_EQ(malformed.code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(malformed.message(), dir + "/SHA256SUMS line 1: not \"<64 hex digits>  <file name>\"");
}

}  // namespace
}  // namespace matbert
