#include "worker/data/matrix_generator.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "worker/data/random.h"

namespace matbert {

absl::Status MatrixShape::Validate() const {
  if (m < 1) return absl::InvalidArgumentError(absl::StrCat("m must be >= 1, got ", m));
  if (n < 1) return absl::InvalidArgumentError(absl::StrCat("n must be >= 1, got ", n));
  if (r < 1 || r > std::min(m, n)) {
    return absl::InvalidArgumentError(
        absl::StrCat("r must be in 1..min(m, n) = ", std::min(m, n), ", got ", r));
  }
  return absl::OkStatus();
}

double MatrixStats::Get(int i) const {
  switch (i) {
    case 0:
      return nuclear_norm;
    case 1:
      return spectral_gap;
    case 2:
      return mean;
    case 3:
      return variance;
    case 4:
      return trace;
    default:
      return range;
  }
}

MatrixGenerator::MatrixGenerator(const MatrixShape& shape, uint64_t seed)
    : shape_(shape),
      seed_(seed),
      u_(static_cast<size_t>(shape.m) * shape.r),
      v_(static_cast<size_t>(shape.n) * shape.r),
      sigma_(static_cast<size_t>(shape.r)),
      spectrum_(shape.m, shape.n, shape.r) {}

void MatrixGenerator::Generate(uint64_t index, std::span<double> matrix, MatrixStats* stats) {
  const int m = shape_.m, n = shape_.n, r = shape_.r;
  RandomStream rng(seed_, index);
  for (double& x : u_) x = rng.NextNormal();  // U (m, r)
  for (double& x : v_) x = rng.NextNormal();  // V (n, r)

  // M = U Vᵀ  (m, n)
  for (int i = 0; i < m; ++i) {
    double* row = matrix.data() + static_cast<size_t>(i) * n;
    std::fill(row, row + n, 0.0);
    for (int k = 0; k < r; ++k) {
      const double uik = u_[i * r + k];
      for (int j = 0; j < n; ++j) row[j] += uik * v_[j * r + k];
    }
  }

  // Two passes for an accurate population variance.
  const double count = static_cast<double>(shape_.entries());
  double sum = 0;
  for (double x : matrix) sum += x;
  const double raw_mean = sum / count;
  double squares = 0;
  for (double x : matrix) squares += (x - raw_mean) * (x - raw_mean);
  const double raw_std = std::sqrt(squares / count);
  const double inv_std = raw_std > 0 ? 1.0 / raw_std : 1.0;
  for (double& x : matrix) x *= inv_std;
  if (stats == nullptr) return;

  spectrum_.Compute(u_, v_, sigma_);
  double nuclear = 0;
  for (double s : sigma_) nuclear += s;
  stats->nuclear_norm = nuclear * inv_std;
  stats->spectral_gap = sigma_[r - 1] * inv_std;  // sigma_{r+1} is 0 in exact arithmetic

  double mean = 0, lo = matrix[0], hi = matrix[0];
  for (double x : matrix) {
    mean += x;
    lo = std::min(lo, x);
    hi = std::max(hi, x);
  }
  mean /= count;
  double var = 0;
  for (double x : matrix) var += (x - mean) * (x - mean);
  double trace = 0;
  for (int i = 0; i < std::min(m, n); ++i) trace += matrix[static_cast<size_t>(i) * n + i];
  stats->mean = mean;
  stats->variance = var / count;
  stats->trace = trace;
  stats->range = hi - lo;
}

void StatsAccumulator::Add(const MatrixStats& stats) {
  ++count_;
  for (int i = 0; i < MatrixStats::kCount; ++i) {
    const double x = stats.Get(i);
    const double delta = x - mean_[i];
    mean_[i] += delta / static_cast<double>(count_);
    m2_[i] += delta * (x - mean_[i]);
    if (count_ == 1) {
      min_[i] = max_[i] = x;
    } else {
      min_[i] = std::min(min_[i], x);
      max_[i] = std::max(max_[i], x);
    }
  }
}

StatsAccumulator::Summary StatsAccumulator::Get(int stat) const {
  Summary s;
  if (count_ == 0) return s;
  s.mean = mean_[stat];
  s.std = std::sqrt(m2_[stat] / static_cast<double>(count_));
  s.min = min_[stat];
  s.max = max_[stat];
  return s;
}

}  // namespace matbert
