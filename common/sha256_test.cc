#include "common/sha256.h"

#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "gtest/gtest.h"

namespace matbert {
namespace {

TEST(Sha256, KnownVectorsAndPieces) {
  Sha256 empty;
  EXPECT_EQ(empty.HexDigest(), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  Sha256 abc;
  abc.Update("a");
  abc.Update("bc");
  EXPECT_EQ(abc.HexDigest(), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(Sha256, FileEqualsBytes) {
  const std::string path = absl::StrCat(testing::TempDir(), "/sha256_test_", getpid());
  std::string data(3 << 20, 'x');  // spans several read buffers
  data[12345] = 'y';
  ASSERT_TRUE(WriteFileAtomically(path, data).ok());
  Sha256 sha;
  sha.Update(data);
  EXPECT_EQ(*Sha256File(path), sha.HexDigest());
  EXPECT_FALSE(Sha256File(path + ".missing").ok());
  unlink(path.c_str());
}

}  // namespace
}  // namespace matbert
