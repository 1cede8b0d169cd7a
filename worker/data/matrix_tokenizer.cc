#include "worker/data/matrix_tokenizer.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"

namespace matbert {
namespace {

// Rounds a non-negative x < 2^52 to the nearest integer, half to even (as numpy.round and
// torch.round do). Adding and subtracting 2^52 rounds in the FPU's default mode; unlike
// std::nearbyint it needs no libm call, so loops over it vectorise.
inline double RoundHalfEven(double x) { return (x + 0x1p52) - 0x1p52; }

}  // namespace

absl::StatusOr<MatrixTokenizer> MatrixTokenizer::Create(const TokenizerOptions& options) {
  if (options.prec < 0 || options.prec > kMaxPrec) {
    return absl::InvalidArgumentError(
        absl::StrCat("prec must be in 0..", kMaxPrec, ", got ", options.prec));
  }
  if (options.n_sigma < 1 || options.n_sigma > kMaxNSigma) {
    return absl::InvalidArgumentError(
        absl::StrCat("n_sigma must be in 1..", kMaxNSigma, ", got ", options.n_sigma));
  }
  return MatrixTokenizer(options);
}

MatrixTokenizer::MatrixTokenizer(const TokenizerOptions& options) : options_(options) {
  int64_t pow10 = 1;
  for (int i = 0; i < options.prec; ++i) pow10 *= 10;
  scale_ = static_cast<double>(pow10);
  n_bins_ = TokenBins(options.prec, options.n_sigma);
}

int64_t MatrixTokenizer::Bin(double value) const {
  const double limit = options_.n_sigma;
  double clamped = std::clamp(value, -limit, limit);
  return static_cast<int64_t>(RoundHalfEven((clamped + limit) * scale_));
}

double MatrixTokenizer::Decode(int32_t id) const {
  return static_cast<double>(id - kFirstBinId) / scale_ - options_.n_sigma;
}

int64_t MatrixTokenizer::SequenceLength(int m, int n) const {
  return TokenSequenceLength(m, n, options_.row_sep);
}

void MatrixTokenizer::EncodeMatrix(std::span<const double> matrix, int m, int n,
                                   std::span<int32_t> ids, std::span<double> values) const {
  constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
  const bool with_values = !values.empty();
  const double limit = options_.n_sigma;
  size_t pos = 0;
  auto put = [&](int32_t id, double value) {
    ids[pos] = id;
    if (with_values) values[pos] = value;
    ++pos;
  };
  put(kClsId, kNaN);
  for (int i = 0; i < m; ++i) {
    if (i > 0 && options_.row_sep) put(row_sep_id(), kNaN);
    const double* row = matrix.data() + static_cast<size_t>(i) * n;
    int32_t* out = ids.data() + pos;
    for (int j = 0; j < n; ++j) {
      double clamped = std::clamp(row[j], -limit, limit);
      out[j] = kFirstBinId + static_cast<int32_t>(RoundHalfEven((clamped + limit) * scale_));
    }
    if (with_values) std::copy(row, row + n, values.data() + pos);
    pos += static_cast<size_t>(n);
  }
  put(kSepId, kNaN);
}

}  // namespace matbert
