// Low-rank matrix samples (DESIGN.md §2): M = U Vᵀ with U (m×r) and V (n×r) i.i.d. by a
// FactorLaw (standard normal by default), then M ← M / std(M) (population std; the mean is
// kept). Sample i depends only on
// (seed, i), so generation can be split across threads and ranks in any way.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "worker/data/low_rank_spectrum.h"

namespace matbert {

struct MatrixShape {
  int m = 20;  // rows, >= 1
  int n = 20;  // columns, >= 1
  int r = 5;   // rank, 1..min(m, n)

  int64_t entries() const { return int64_t{m} * n; }
  // INVALID_ARGUMENT naming the field ("m", "n" or "r") and its allowed range.
  absl::Status Validate() const;
};

// How the entries of U and V are drawn (matrix.factor_dist and factor_mean): "normal" is
// N(mean, 1), "uniform" is U[mean - 1, mean + 1] (U[-1, 1] at mean 0).
struct FactorLaw {
  std::string dist = "normal";  // one of kFactorDists
  double mean = 0;

  bool operator==(const FactorLaw&) const = default;
  // INVALID_ARGUMENT naming "factor-dist" or "factor-mean" and the allowed values.
  absl::Status Validate() const;
  std::string Describe() const;  // "normal, mean 0"
};

// Per-matrix statistics of the normalised matrix.
struct MatrixStats {
  double nuclear_norm = 0;  // sum of singular values
  double spectral_gap = 0;  // sigma_r - sigma_{r+1}; sigma_{r+1} = 0 for an exact rank-r matrix
  double mean = 0;
  double variance = 0;  // population variance (1 up to rounding)
  double trace = 0;     // sum of M[i][i], i < min(m, n)
  double range = 0;     // max - min entry

  static constexpr int kCount = 6;
  static constexpr const char* kNames[kCount] = {"nuclear_norm", "spectral_gap", "mean",
                                                 "variance",     "trace",        "range"};
  double Get(int i) const;
};

// Not thread-safe (holds scratch buffers); make one per thread. Cheap to construct.
class MatrixGenerator {
 public:
  // REQUIRES: shape.Validate().ok() and law.Validate().ok().
  MatrixGenerator(const MatrixShape& shape, uint64_t seed, const FactorLaw& law = {});

  const MatrixShape& shape() const { return shape_; }

  // Writes sample `index` row-major to `matrix` (size m*n) and, if `stats` is not null, its
  // statistics.
  void Generate(uint64_t index, std::span<double> matrix, MatrixStats* stats = nullptr);

 private:
  MatrixShape shape_;
  uint64_t seed_;
  FactorLaw law_;
  std::vector<double> u_, v_, vt_, sigma_;
  LowRankSpectrum spectrum_;
};

// Mean, std (population), min and max of each statistic over many matrices, accumulated in
// the order Add is called (so a fixed order gives bit-identical results).
class StatsAccumulator {
 public:
  void Add(const MatrixStats& stats);
  int64_t count() const { return count_; }

  struct Summary {
    double mean = 0, std = 0, min = 0, max = 0;
  };
  Summary Get(int stat) const;

 private:
  int64_t count_ = 0;
  // Welford running mean and sum of squared deviations.
  double mean_[MatrixStats::kCount] = {};
  double m2_[MatrixStats::kCount] = {};
  double min_[MatrixStats::kCount] = {};
  double max_[MatrixStats::kCount] = {};
};

}  // namespace matbert
