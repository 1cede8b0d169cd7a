#include "worker/train/als_baseline.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "worker/data/random.h"

namespace matbert {
namespace {

// Solves (A + lambda I) x = b for symmetric positive definite A (r×r) by Cholesky, in place.
void SolveSpd(std::vector<double>& a, std::vector<double>& b, int r, double lambda) {
  for (int i = 0; i < r; ++i) a[i * r + i] += lambda;
  for (int j = 0; j < r; ++j) {
    double d = a[j * r + j];
    for (int k = 0; k < j; ++k) d -= a[j * r + k] * a[j * r + k];
    d = std::sqrt(std::max(d, 1e-300));
    a[j * r + j] = d;
    for (int i = j + 1; i < r; ++i) {
      double s = a[i * r + j];
      for (int k = 0; k < j; ++k) s -= a[i * r + k] * a[j * r + k];
      a[i * r + j] = s / d;
    }
  }
  for (int i = 0; i < r; ++i) {  // L y = b
    double s = b[i];
    for (int k = 0; k < i; ++k) s -= a[i * r + k] * b[k];
    b[i] = s / a[i * r + i];
  }
  for (int i = r - 1; i >= 0; --i) {  // Lᵀ x = y
    double s = b[i];
    for (int k = i + 1; k < r; ++k) s -= a[k * r + i] * b[k];
    b[i] = s / a[i * r + i];
  }
}

// Updates each row of `x` (count×r) to the least-squares fit of the observed entries of
// its line, given the other factor `y`. transpose: lines are columns of the matrix.
void UpdateFactor(std::span<const double> matrix, std::span<const uint8_t> observed, int m, int n,
                  int r, bool transpose, std::vector<double>& x, const std::vector<double>& y,
                  double lambda) {
  const int count = transpose ? n : m, other = transpose ? m : n;
  std::vector<double> a(r * r), b(r);
  for (int i = 0; i < count; ++i) {
    std::fill(a.begin(), a.end(), 0.0);
    std::fill(b.begin(), b.end(), 0.0);
    for (int j = 0; j < other; ++j) {
      const int index = transpose ? j * n + i : i * n + j;
      if (!observed[index]) continue;
      const double* yj = y.data() + j * r;
      for (int p = 0; p < r; ++p) {
        b[p] += yj[p] * matrix[index];
        for (int q = 0; q < r; ++q) a[p * r + q] += yj[p] * yj[q];
      }
    }
    SolveSpd(a, b, r, lambda);
    std::copy(b.begin(), b.end(), x.begin() + i * r);
  }
}

}  // namespace

void AlsComplete(std::span<const double> matrix, std::span<const uint8_t> observed, int m, int n,
                 int r, std::span<double> prediction, int iterations, double lambda,
                 uint64_t seed) {
  // ALS from a random start can stall at a poor fixed point (seen on 8x8 rank-1 matrices
  // with 80% observed), so it runs from several starts and keeps the best fit of the
  // observed entries.
  constexpr int kRestarts = 6;
  std::vector<double> u(m * r), v(n * r), fit(m * n);
  double best = std::numeric_limits<double>::infinity();
  for (int start = 0; start < kRestarts; ++start) {
    RandomStream rng(seed, static_cast<uint64_t>(start));
    for (double& x : u) x = rng.NextNormal();
    for (double& x : v) x = rng.NextNormal();
    for (int it = 0; it < iterations; ++it) {
      UpdateFactor(matrix, observed, m, n, r, /*transpose=*/true, v, u, lambda);
      UpdateFactor(matrix, observed, m, n, r, /*transpose=*/false, u, v, lambda);
    }
    double error = 0;
    for (int i = 0; i < m; ++i) {
      for (int j = 0; j < n; ++j) {
        double s = 0;
        for (int k = 0; k < r; ++k) s += u[i * r + k] * v[j * r + k];
        fit[i * n + j] = s;
        if (observed[i * n + j]) error += (s - matrix[i * n + j]) * (s - matrix[i * n + j]);
      }
    }
    if (error < best) {
      best = error;
      std::copy(fit.begin(), fit.end(), prediction.begin());
    }
  }
}

}  // namespace matbert
