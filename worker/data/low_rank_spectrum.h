// Singular values of a low-rank product U Vᵀ (U m×r, V n×r) from an r×r problem: with
// U = Qu Ru and V = Qv Rv (Householder QR), U Vᵀ = Qu (Ru Rvᵀ) Qvᵀ, so its nonzero singular
// values are those of the r×r matrix Ru Rvᵀ, found by one-sided Jacobi. Costs O((m+n) r²)
// instead of the O(m n min(m,n)) of a dense SVD.
#pragma once

#include <span>
#include <vector>

namespace matbert {

class LowRankSpectrum {
 public:
  // REQUIRES: 1 <= r <= min(m, n).
  LowRankSpectrum(int m, int n, int r);

  // Writes the r singular values of U Vᵀ, descending, to `sigma`. `u` is m×r and `v` n×r,
  // both row-major. Not thread-safe (uses internal scratch); one object per thread.
  void Compute(std::span<const double> u, std::span<const double> v, std::span<double> sigma);

 private:
  // Overwrites the r×r upper-left of `a` (rows×r, row-major, copied into scratch) with R.
  void UpperTriangular(std::span<const double> a, int rows, std::vector<double>& r_out);

  int m_, n_, r_;
  std::vector<double> scratch_, ru_, rv_, c_;
};

// Singular values of a general rows×cols row-major matrix by one-sided Jacobi on its
// columns, descending. Accurate to a few ulps of the largest; meant for small matrices.
// `a` is overwritten. Returns min(rows, cols) values in `sigma`.
void JacobiSingularValues(std::span<double> a, int rows, int cols, std::span<double> sigma);

}  // namespace matbert
