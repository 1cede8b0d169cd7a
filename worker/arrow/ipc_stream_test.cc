#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <vector>

#include "common/file_util.h"
#include "gtest/gtest.h"
#include "worker/arrow/ipc_stream_reader.h"
#include "worker/arrow/ipc_stream_writer.h"

namespace matbert::arrow {
namespace {

ListSchema TestSchema() {
  return {{{"ids", ElementType::kInt32}, {"x", ElementType::kFloat64}}, {{"k", "v"}}};
}

// Row i has i % 4 elements: ids = i*10 + j, x = i + j/8.
ListBatch MakeBatch(int64_t first, int64_t rows) {
  std::vector<int64_t> lengths(2, 0);
  for (int64_t i = first; i < first + rows; ++i) lengths[0] += i % 4;
  lengths[1] = lengths[0];
  ListBatch b = ListBatch::Allocate(TestSchema(), rows, lengths);
  int32_t pos = 0;
  for (int64_t i = 0; i < rows; ++i) {
    b.offsets(0)[i] = b.offsets(1)[i] = pos;
    for (int j = 0; j < (first + i) % 4; ++j, ++pos) {
      b.values<int32_t>(0)[pos] = static_cast<int32_t>((first + i) * 10 + j);
      b.values<double>(1)[pos] = (first + i) + j / 8.0;
    }
  }
  b.offsets(0)[rows] = b.offsets(1)[rows] = pos;
  return b;
}

class IpcStreamTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = ::testing::TempDir() + "/ipc_stream_test_" + std::to_string(::getpid()) + ".arrow";
    auto writer = IpcStreamWriter::Open(path_, TestSchema());
    ASSERT_TRUE(writer.ok()) << writer.status();
    ASSERT_TRUE(writer->Write(MakeBatch(0, 7)).ok());
    ASSERT_TRUE(writer->Write(MakeBatch(7, 5)).ok());
    ASSERT_TRUE(writer->Finish().ok());
    bytes_ = *ReadFileToString(path_);
  }
  void TearDown() override { std::filesystem::remove(path_); }
  void Rewrite(const std::string& bytes) { ASSERT_TRUE(WriteFileAtomically(path_, bytes).ok()); }

  std::string path_;
  std::string bytes_;
};

TEST_F(IpcStreamTest, RoundTrip) {
  auto reader = IpcStreamReader::Open(path_);
  ASSERT_TRUE(reader.ok()) << reader.status();
  EXPECT_EQ(reader->schema().fields, TestSchema().fields);
  EXPECT_EQ(reader->schema().metadata, TestSchema().metadata);
  ASSERT_EQ(reader->num_batches(), 2);
  EXPECT_EQ(reader->num_rows(), 12);
  for (int k = 0; k < 2; ++k) {
    auto batch = reader->ReadBatch(k);
    ASSERT_TRUE(batch.ok()) << batch.status();
    for (int64_t i = 0; i < batch->rows(); ++i) {
      const int64_t row = reader->batch_first_row(k) + i;
      auto ids = batch->row<int32_t>(0, i);
      auto x = batch->row<double>(1, i);
      ASSERT_EQ(ids.size(), static_cast<size_t>(row % 4));
      for (size_t j = 0; j < ids.size(); ++j) {
        EXPECT_EQ(ids[j], row * 10 + static_cast<int64_t>(j));
        EXPECT_EQ(x[j], row + j / 8.0);
      }
    }
  }
}

TEST_F(IpcStreamTest, StreamFraming) {
  // Continuation marker first, 8-byte multiples, end-of-stream marker last.
  EXPECT_EQ(bytes_.substr(0, 4), std::string(4, '\xFF'));
  EXPECT_EQ(bytes_.size() % 8, 0u);
  EXPECT_EQ(bytes_.substr(bytes_.size() - 8), std::string("\xFF\xFF\xFF\xFF\0\0\0\0", 8));
  EXPECT_EQ(bytes_.find("ARROW1"), std::string::npos);
}

TEST_F(IpcStreamTest, TruncatedStreamNamesOffset) {
  Rewrite(bytes_.substr(0, bytes_.size() - 8));
  auto reader = IpcStreamReader::Open(path_);
  ASSERT_FALSE(reader.ok());
  EXPECT_NE(
      reader.status().message().find(path_ + ": byte offset " + std::to_string(bytes_.size() - 8)),
      std::string::npos)
      << reader.status();
  Rewrite(bytes_.substr(0, bytes_.size() - 100));
  EXPECT_FALSE(IpcStreamReader::Open(path_).ok());
}

TEST_F(IpcStreamTest, GarbageIsRefused) {
  std::string bad = bytes_;
  bad[0] = 'A';
  auto reader = IpcStreamReader::Open(path_ + ".missing");
  EXPECT_EQ(reader.status().code(), absl::StatusCode::kNotFound);
  Rewrite(bad);
  reader = IpcStreamReader::Open(path_);
  ASSERT_FALSE(reader.ok());
  EXPECT_NE(reader.status().message().find("byte offset 0: expected the continuation marker"),
            std::string::npos)
      << reader.status();
  // Scribble over the schema flatbuffer.
  bad = bytes_;
  for (int i = 8; i < 40; ++i) bad[i] = '\x7F';
  Rewrite(bad);
  EXPECT_FALSE(IpcStreamReader::Open(path_).ok());
}

TEST_F(IpcStreamTest, CorruptOffsetsAreRefusedWithTheirPosition) {
  auto reader = IpcStreamReader::Open(path_);
  ASSERT_TRUE(reader.ok());
  // Find the first batch's body: the offsets of column 0 start 0, 0, 1, 3 (rows 0..2).
  const int32_t pattern[4] = {0, 0, 1, 3};
  size_t at = bytes_.find(std::string(reinterpret_cast<const char*>(pattern), sizeof(pattern)));
  ASSERT_NE(at, std::string::npos);
  std::string bad = bytes_;
  const int32_t huge = 1000000;
  std::memcpy(bad.data() + at + 8, &huge, 4);  // offset of row 2
  Rewrite(bad);
  reader = IpcStreamReader::Open(path_);
  ASSERT_TRUE(reader.ok()) << reader.status();  // headers are still fine
  auto batch = reader->ReadBatch(0);
  ASSERT_FALSE(batch.ok());
  EXPECT_NE(batch.status().message().find("byte offset " + std::to_string(at + 8)),
            std::string::npos)
      << batch.status();
}

// Damaged files of every kind are refused with a status naming the file, never a crash: 20 000
// seeded mutations of the valid stream (bytes replaced, bits flipped, 32-bit fields set to
// extremes, bytes cut out), each opened and every batch read. Under AddressSanitizer
// (scripts/test.sh's sanitizer build) an out-of-bounds read fails this test too.
TEST_F(IpcStreamTest, MutatedStreamsAreRefusedNeverCrash) {
  std::mt19937 rng(20261124);
  int refused = 0, opened = 0;
  for (int i = 0; i < 20000; ++i) {
    std::string bad = bytes_;
    const int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits && !bad.empty(); ++e) {
      const size_t at = rng() % bad.size();
      switch (rng() % 4) {
        case 0:
          bad[at] = static_cast<char>(rng());
          break;
        case 1:
          bad[at] = static_cast<char>(bad[at] ^ (1 << (rng() % 8)));
          break;
        case 2: {
          static constexpr uint32_t kExtremes[] = {0, 1, 0xFFFFFFFF, 0x7FFFFFFF, 0x80000000};
          const uint32_t v = kExtremes[rng() % 5];
          std::memcpy(bad.data() + at, &v, std::min<size_t>(4, bad.size() - at));
          break;
        }
        default:
          bad.erase(at, 1 + rng() % 8);
      }
    }
    {
      std::ofstream out(path_, std::ios::binary | std::ios::trunc);
      out.write(bad.data(), static_cast<std::streamsize>(bad.size()));
    }
    auto reader = IpcStreamReader::Open(path_);
    if (!reader.ok()) {
      ++refused;
      EXPECT_NE(reader.status().message().find(path_), std::string::npos) << reader.status();
      continue;
    }
    ++opened;
    for (int k = 0; k < reader->num_batches(); ++k) {
      auto batch = reader->ReadBatch(k);
      if (!batch.ok()) {
        EXPECT_EQ(batch.status().code(), absl::StatusCode::kDataLoss) << batch.status();
      }
    }
  }
  // Most mutations break the framing; some only change values, which still parse.
  EXPECT_GT(refused, 10000);
  EXPECT_GT(opened, 100);
}

}  // namespace
}  // namespace matbert::arrow
