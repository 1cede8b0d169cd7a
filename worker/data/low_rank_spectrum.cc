#include "worker/data/low_rank_spectrum.h"

#include <algorithm>
#include <cmath>
#include <functional>

namespace matbert {

LowRankSpectrum::LowRankSpectrum(int m, int n, int r)
    : m_(m), n_(n), r_(r), ru_(static_cast<size_t>(r) * r), rv_(ru_.size()), c_(ru_.size()) {}

void LowRankSpectrum::UpperTriangular(std::span<const double> a, int rows,
                                      std::vector<double>& r_out) {
  const int r = r_;
  scratch_.assign(a.begin(), a.begin() + static_cast<size_t>(rows) * r);
  double* q = scratch_.data();  // (rows, r), reduced column by column
  for (int k = 0; k < r; ++k) {
    // Householder reflector that zeroes column k below the diagonal.
    double norm2 = 0;
    for (int i = k; i < rows; ++i) norm2 += q[i * r + k] * q[i * r + k];
    double norm = std::sqrt(norm2);
    if (norm == 0) continue;
    double alpha = q[k * r + k] > 0 ? -norm : norm;
    double v0 = q[k * r + k] - alpha;  // v = x - alpha e1, stored in place below the diagonal
    double vnorm2 = norm2 - q[k * r + k] * q[k * r + k] + v0 * v0;
    q[k * r + k] = v0;
    for (int j = k + 1; j < r; ++j) {
      double dot = 0;
      for (int i = k; i < rows; ++i) dot += q[i * r + k] * q[i * r + j];
      double scale = 2 * dot / vnorm2;
      for (int i = k; i < rows; ++i) q[i * r + j] -= scale * q[i * r + k];
    }
    q[k * r + k] = alpha;
  }
  for (int i = 0; i < r; ++i) {
    for (int j = 0; j < r; ++j) r_out[i * r + j] = j >= i ? q[i * r + j] : 0.0;
  }
}

void LowRankSpectrum::Compute(std::span<const double> u, std::span<const double> v,
                              std::span<double> sigma) {
  const int r = r_;
  UpperTriangular(u, m_, ru_);
  UpperTriangular(v, n_, rv_);
  // c = Ru Rvᵀ  (r, r)
  for (int i = 0; i < r; ++i) {
    for (int j = 0; j < r; ++j) {
      double sum = 0;
      for (int k = std::max(i, j); k < r; ++k) sum += ru_[i * r + k] * rv_[j * r + k];
      c_[i * r + j] = sum;
    }
  }
  JacobiSingularValues(c_, r, r, sigma);
}

void JacobiSingularValues(std::span<double> a, int rows, int cols, std::span<double> sigma) {
  // Hestenes' method: rotate column pairs until all columns are orthogonal; the column
  // norms are then the singular values.
  constexpr int kMaxSweeps = 60;
  // Singular values err by about the square of the remaining relative off-diagonal, so
  // stopping at 1e-12 leaves them exact to rounding; a tolerance near machine epsilon would
  // instead sweep on, chasing rounding noise.
  constexpr double kTolerance = 1e-12;
  for (int sweep = 0; sweep < kMaxSweeps; ++sweep) {
    bool rotated = false;
    for (int p = 0; p < cols - 1; ++p) {
      for (int q = p + 1; q < cols; ++q) {
        double alpha = 0, beta = 0, gamma = 0;
        for (int i = 0; i < rows; ++i) {
          double ap = a[i * cols + p], aq = a[i * cols + q];
          alpha += ap * ap;
          beta += aq * aq;
          gamma += ap * aq;
        }
        if (gamma == 0 || std::abs(gamma) <= kTolerance * std::sqrt(alpha * beta)) continue;
        rotated = true;
        double zeta = (beta - alpha) / (2 * gamma);
        double t = std::copysign(1.0, zeta) / (std::abs(zeta) + std::sqrt(1 + zeta * zeta));
        double c = 1 / std::sqrt(1 + t * t), s = c * t;
        for (int i = 0; i < rows; ++i) {
          double ap = a[i * cols + p], aq = a[i * cols + q];
          a[i * cols + p] = c * ap - s * aq;
          a[i * cols + q] = s * ap + c * aq;
        }
      }
    }
    if (!rotated) break;
  }
  std::vector<double> norms(static_cast<size_t>(cols));
  for (int j = 0; j < cols; ++j) {
    double sum = 0;
    for (int i = 0; i < rows; ++i) sum += a[i * cols + j] * a[i * cols + j];
    norms[j] = std::sqrt(sum);
  }
  std::sort(norms.begin(), norms.end(), std::greater<>());
  const int count = std::min(rows, cols);
  std::copy(norms.begin(), norms.begin() + count, sigma.begin());
}

}  // namespace matbert
