#include "worker/data/matrix_tokenizer.h"

#include <cmath>
#include <vector>

#include "gtest/gtest.h"

namespace matbert {
namespace {

MatrixTokenizer Make(int prec, int n_sigma = 4, bool row_sep = false) {
  auto t = MatrixTokenizer::Create({prec, n_sigma, row_sep});
  EXPECT_TRUE(t.ok()) << t.status();
  return *t;
}

TEST(MatrixTokenizerTest, VocabularyTable) {
  const int64_t bins[] = {9, 81, 801, 8001, 80001};
  const int64_t vocab[] = {13, 85, 805, 8005, 80005};
  for (int prec = 0; prec <= 4; ++prec) {
    EXPECT_EQ(Make(prec).n_bins(), bins[prec]) << prec;
    EXPECT_EQ(Make(prec).vocab_size(), vocab[prec]) << prec;
    EXPECT_EQ(Make(prec, 4, true).vocab_size(), vocab[prec] + 1) << prec;
    EXPECT_EQ(Make(prec, 4, true).row_sep_id(), bins[prec] + 4) << prec;
  }
  EXPECT_EQ(Make(6).n_bins(), 8000001);
  EXPECT_EQ(Make(2).row_sep_id(), -1);
}

TEST(MatrixTokenizerTest, RejectsOutOfRangeOptions) {
  auto bad_prec = MatrixTokenizer::Create({7, 4, false});
  EXPECT_EQ(bad_prec.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(bad_prec.status().message(), "prec must be in 0..6, got 7");
  EXPECT_FALSE(MatrixTokenizer::Create({-1, 4, false}).ok());
  EXPECT_FALSE(MatrixTokenizer::Create({2, 0, false}).ok());
}

TEST(MatrixTokenizerTest, KnownBinsAndClamping) {
  MatrixTokenizer t = Make(2);  // bins of 0.01 over [-4, 4]
  EXPECT_EQ(t.Encode(-4.0), 4);
  EXPECT_EQ(t.Encode(0.0), 4 + 400);
  EXPECT_EQ(t.Encode(4.0), 4 + 800);
  EXPECT_EQ(t.Encode(1.234), 4 + 523);
  EXPECT_EQ(t.Encode(-100.0), 4);         // clamped
  EXPECT_EQ(t.Encode(1e300), 4 + 800);    // clamped
  EXPECT_EQ(Make(0).Encode(0.5), 4 + 4);  // 4.5 rounds half to even
  EXPECT_EQ(Make(0).Encode(1.5), 4 + 6);  // 5.5 rounds half to even
  EXPECT_DOUBLE_EQ(t.Decode(4 + 523), 1.23);
  EXPECT_DOUBLE_EQ(t.Decode(4), -4.0);
}

TEST(MatrixTokenizerTest, DecodeOfEncodeIsWithinHalfABin) {
  for (int prec = 0; prec <= 4; ++prec) {
    MatrixTokenizer t = Make(prec);
    const double half_bin = 0.5 / std::pow(10.0, prec);
    for (double v = -3.999; v < 4.0; v += 0.00731) {
      EXPECT_LE(std::abs(t.Decode(t.Encode(v)) - v), half_bin * (1 + 1e-9)) << v << " " << prec;
    }
  }
}

TEST(MatrixTokenizerTest, SequenceLayout) {
  const std::vector<double> matrix = {0.0, 1.0, -1.0, 2.0, 0.5, -4.0};  // 2 x 3
  for (bool row_sep : {false, true}) {
    MatrixTokenizer t = Make(1, 4, row_sep);
    const int64_t length = t.SequenceLength(2, 3);
    EXPECT_EQ(length, row_sep ? 9 : 8);
    std::vector<int32_t> ids(length);
    std::vector<double> values(length);
    t.EncodeMatrix(matrix, 2, 3, ids, values);
    std::vector<int32_t> expected = {MatrixTokenizer::kClsId, 44, 54, 34};
    if (row_sep) expected.push_back(t.row_sep_id());
    for (int32_t id : {64, 49, 4}) expected.push_back(id);
    expected.push_back(MatrixTokenizer::kSepId);
    EXPECT_EQ(ids, expected);
    for (size_t i = 0; i < ids.size(); ++i) {
      if (t.IsBinId(ids[i])) {
        EXPECT_EQ(t.Encode(values[i]), ids[i]);
      } else {
        EXPECT_TRUE(std::isnan(values[i])) << i;
      }
    }
    EXPECT_EQ(values[row_sep ? 5 : 4], 2.0);
  }
}

}  // namespace
}  // namespace matbert

namespace matbert {
namespace {

TEST(MatrixTokenizerTest, EntryTokenPositionIsWhereEncodeMatrixPutsEachEntry) {
  for (bool row_sep : {false, true}) {
    const MatrixTokenizer tok = *MatrixTokenizer::Create({2, 4, row_sep});
    const int m = 3, n = 4;
    std::vector<double> matrix(m * n);
    for (int e = 0; e < m * n; ++e) matrix[e] = 0.01 * e;
    std::vector<int32_t> ids(tok.SequenceLength(m, n));
    std::vector<double> values(ids.size());
    tok.EncodeMatrix(matrix, m, n, ids, values);
    for (int e = 0; e < m * n; ++e) {
      EXPECT_EQ(values[EntryTokenPosition(e, n, row_sep)], matrix[e]) << e << " " << row_sep;
    }
  }
}

}  // namespace
}  // namespace matbert
