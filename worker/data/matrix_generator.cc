#include "worker/data/matrix_generator.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/matrix_limits.h"
#include "worker/data/random.h"

namespace matbert {

absl::Status MatrixShape::Validate() const {
  if (m < 1 || m > kMaxMatrixDim) {
    return absl::InvalidArgumentError(absl::StrCat("m must be in 1..", kMaxMatrixDim, ", got ", m));
  }
  if (n < 1 || n > kMaxMatrixDim) {
    return absl::InvalidArgumentError(absl::StrCat("n must be in 1..", kMaxMatrixDim, ", got ", n));
  }
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

absl::Status FactorLaw::Validate() const {
  if (std::find(std::begin(kFactorDists), std::end(kFactorDists), dist) == std::end(kFactorDists)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "factor-dist must be one of ", absl::StrJoin(kFactorDists, ", "), ", got \"", dist, "\""));
  }
  if (!(std::abs(mean) <= kMaxAbsFactorMean)) {
    return absl::InvalidArgumentError(absl::StrCat("factor-mean must be in [-", kMaxAbsFactorMean,
                                                   ", ", kMaxAbsFactorMean, "], got ", mean));
  }
  return absl::OkStatus();
}

std::string FactorLaw::Describe() const { return absl::StrCat(dist, ", mean ", mean); }

MatrixGenerator::MatrixGenerator(const MatrixShape& shape, uint64_t seed, const FactorLaw& law)
    : shape_(shape),
      seed_(seed),
      law_(law),
      u_(static_cast<size_t>(shape.m) * shape.r),
      v_(static_cast<size_t>(shape.n) * shape.r),
      vt_(v_.size()),
      sigma_(static_cast<size_t>(shape.r)),
      spectrum_(shape.m, shape.n, shape.r) {}

void MatrixGenerator::Generate(uint64_t index, std::span<double> matrix, MatrixStats* stats) {
  const int m = shape_.m, n = shape_.n, r = shape_.r;
  RandomStream rng(seed_, index);
  const bool uniform = law_.dist == "uniform";
  const auto draw = [&] {
    return law_.mean + (uniform ? 2.0 * rng.NextUniform() - 1.0 : rng.NextNormal());
  };
  for (double& x : u_) x = draw();  // U (m, r), row-major
  for (double& x : v_) x = draw();  // V (n, r), row-major
  for (int j = 0; j < n; ++j) {
    for (int k = 0; k < r; ++k) vt_[k * n + j] = v_[j * r + k];  // Vᵀ (r, n)
  }

  // M = U Vᵀ  (m, n), with the sum of its entries
  double sum = 0;
  for (int i = 0; i < m; ++i) {
    double* row = matrix.data() + static_cast<size_t>(i) * n;
    const double ui0 = u_[i * r];
    for (int j = 0; j < n; ++j) row[j] = ui0 * vt_[j];
    for (int k = 1; k < r; ++k) {
      const double uik = u_[i * r + k];
      const double* vk = vt_.data() + k * n;
      for (int j = 0; j < n; ++j) row[j] += uik * vk[j];
    }
    for (int j = 0; j < n; ++j) sum += row[j];
  }

  // Second pass for an accurate population variance; min and max ride along.
  const double count = static_cast<double>(shape_.entries());
  const double raw_mean = sum / count;
  double squares = 0, lo = matrix[0], hi = matrix[0];
  for (double x : matrix) {
    squares += (x - raw_mean) * (x - raw_mean);
    lo = std::min(lo, x);
    hi = std::max(hi, x);
  }
  const double raw_std = std::sqrt(squares / count);
  const double inv_std = raw_std > 0 ? 1.0 / raw_std : 1.0;
  double trace = 0;
  for (int i = 0; i < std::min(m, n); ++i) trace += matrix[static_cast<size_t>(i) * n + i];
  for (double& x : matrix) x *= inv_std;
  if (stats == nullptr) return;

  // Statistics of M / std follow from those of M: every one scales by inv_std (> 0).
  spectrum_.Compute(u_, v_, sigma_);
  double nuclear = 0;
  for (double s : sigma_) nuclear += s;
  stats->nuclear_norm = nuclear * inv_std;
  stats->spectral_gap = sigma_[r - 1] * inv_std;  // sigma_{r+1} is 0 in exact arithmetic
  stats->mean = raw_mean * inv_std;
  stats->variance = squares / count * inv_std * inv_std;
  stats->trace = trace * inv_std;
  stats->range = (hi - lo) * inv_std;
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
