#include "common/staging_dir.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>

#include "common/file_util.h"
#include "gtest/gtest.h"

namespace matbert {
namespace {
namespace fs = std::filesystem;

class StagingDirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/staging_dir_test.XXXXXX";
    root_ = ::mkdtemp(tmpl);
  }
  void TearDown() override { fs::remove_all(root_); }
  int CountEntries() {
    int n = 0;
    for ([[maybe_unused]] auto& e : fs::directory_iterator(root_)) ++n;
    return n;
  }
  std::string root_;
};

TEST_F(StagingDirTest, AppearsOnlyAfterCommit) {
  const std::string target = root_ + "/out";
  auto staging = StagingDir::Create(target, false);
  ASSERT_TRUE(staging.ok()) << staging.status();
  ASSERT_TRUE(WriteFileAtomically(staging->path() + "/a.txt", "hello").ok());
  EXPECT_FALSE(fs::exists(target));
  EXPECT_EQ(fs::path(staging->path()).filename().string().rfind(".out.tmp-", 0), 0u);
  ASSERT_TRUE(staging->Commit().ok());
  EXPECT_EQ(*ReadFileToString(target + "/a.txt"), "hello");
  EXPECT_EQ(CountEntries(), 1);  // no staging directory left
}

TEST_F(StagingDirTest, RefusesExistingTargetWithoutOverwrite) {
  const std::string target = root_ + "/out";
  fs::create_directory(target);
  auto staging = StagingDir::Create(target, false);
  EXPECT_EQ(staging.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(CountEntries(), 1);
}

TEST_F(StagingDirTest, OverwriteReplacesWholeDirectory) {
  const std::string target = root_ + "/out";
  fs::create_directory(target);
  ASSERT_TRUE(WriteFileAtomically(target + "/old.txt", "old").ok());
  auto staging = StagingDir::Create(target, true);
  ASSERT_TRUE(staging.ok());
  ASSERT_TRUE(WriteFileAtomically(staging->path() + "/new.txt", "new").ok());
  EXPECT_TRUE(fs::exists(target + "/old.txt"));  // untouched until commit
  ASSERT_TRUE(staging->Commit().ok());
  EXPECT_FALSE(fs::exists(target + "/old.txt"));
  EXPECT_EQ(*ReadFileToString(target + "/new.txt"), "new");
  EXPECT_EQ(CountEntries(), 1);
}

TEST_F(StagingDirTest, AbandonedStagingIsRemoved) {
  const std::string target = root_ + "/out";
  {
    auto staging = StagingDir::Create(target, false);
    ASSERT_TRUE(staging.ok());
    ASSERT_TRUE(WriteFileAtomically(staging->path() + "/a.txt", "x").ok());
  }
  EXPECT_EQ(CountEntries(), 0);
}

TEST_F(StagingDirTest, StagingOfDeadProcessIsRemovedByNextWriter) {
  pid_t child = ::fork();
  if (child == 0) _exit(0);
  ::waitpid(child, nullptr, 0);  // child's pid is now free (and very unlikely reused)
  const std::string stale = root_ + "/.out.tmp-" + std::to_string(child);
  fs::create_directory(stale);
  auto staging = StagingDir::Create(root_ + "/out", false);
  ASSERT_TRUE(staging.ok());
  EXPECT_FALSE(fs::exists(stale));
}

TEST_F(StagingDirTest, UnwritableParentIsAnError) {
  ASSERT_TRUE(WriteFileAtomically(root_ + "/file", "x").ok());
  auto staging = StagingDir::Create(root_ + "/file/out", false);
  EXPECT_FALSE(staging.ok());
  EXPECT_NE(staging.status().message().find("file"), std::string::npos);
}

}  // namespace
}  // namespace matbert
