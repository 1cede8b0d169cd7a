#include "worker/data/matrix_generator.h"

#include <lapacke.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "gtest/gtest.h"
#include "worker/data/low_rank_spectrum.h"
#include "worker/data/random.h"

namespace matbert {
namespace {

// All min(m, n) singular values of a row-major matrix by LAPACK's dgesvd (independent of
// our QR + Jacobi path).
std::vector<double> LapackSingularValues(std::vector<double> a, int m, int n) {
  std::vector<double> s(std::min(m, n)), superb(std::min(m, n));
  int info = LAPACKE_dgesvd(LAPACK_ROW_MAJOR, 'N', 'N', m, n, a.data(), n, s.data(), nullptr, 1,
                            nullptr, 1, superb.data());
  EXPECT_EQ(info, 0);
  return s;
}

TEST(MatrixGeneratorTest, RankAndVarianceInFloat64) {
  const MatrixShape shapes[] = {{20, 20, 5}, {7, 13, 3}, {16, 9, 9}, {1, 5, 1}, {30, 30, 1}};
  for (const MatrixShape& shape : shapes) {
    MatrixGenerator gen(shape, 42);
    std::vector<double> matrix(shape.entries());
    for (uint64_t i = 0; i < 50; ++i) {
      gen.Generate(i, matrix);
      double mean = 0;
      for (double x : matrix) mean += x;
      mean /= matrix.size();
      double var = 0;
      for (double x : matrix) var += (x - mean) * (x - mean);
      var /= matrix.size();
      EXPECT_NEAR(var, 1.0, 1e-9);
      std::vector<double> s = LapackSingularValues(matrix, shape.m, shape.n);
      if (shape.r < std::min(shape.m, shape.n)) {
        EXPECT_LT(s[shape.r] / s[0], 1e-9) << shape.m << "x" << shape.n << " r=" << shape.r;
      }
      EXPECT_GT(s[shape.r - 1] / s[0], 1e-9);
    }
  }
}

TEST(MatrixGeneratorTest, StatisticsMatchDenseComputation) {
  const MatrixShape shape{12, 17, 4};
  MatrixGenerator gen(shape, 7);
  std::vector<double> matrix(shape.entries());
  for (uint64_t i = 0; i < 100; ++i) {
    MatrixStats stats;
    gen.Generate(i, matrix, &stats);
    std::vector<double> s = LapackSingularValues(matrix, shape.m, shape.n);
    double nuclear = 0;
    for (double x : s) nuclear += x;
    EXPECT_NEAR(stats.nuclear_norm, nuclear, 1e-10 * nuclear);
    EXPECT_NEAR(stats.spectral_gap, s[shape.r - 1] - s[shape.r], 1e-10 * s[0]);
    double trace = 0;
    for (int k = 0; k < std::min(shape.m, shape.n); ++k) trace += matrix[k * shape.n + k];
    EXPECT_NEAR(stats.trace, trace, 1e-12);
    auto [lo, hi] = std::minmax_element(matrix.begin(), matrix.end());
    EXPECT_DOUBLE_EQ(stats.range, *hi - *lo);
    EXPECT_NEAR(stats.variance, 1.0, 1e-12);
  }
}

TEST(MatrixGeneratorTest, SampleDependsOnlyOnSeedAndIndex) {
  const MatrixShape shape{5, 6, 2};
  MatrixGenerator a(shape, 1), b(shape, 1), c(shape, 2);
  std::vector<double> x(30), y(30), z(30);
  b.Generate(3, y);  // a different history must not matter
  a.Generate(9, x);
  a.Generate(3, x);
  b.Generate(3, y);
  c.Generate(3, z);
  EXPECT_EQ(x, y);
  EXPECT_NE(x, z);
}

TEST(MatrixGeneratorTest, UniformFactorsAreTheProductOfUniformDraws) {
  // Rank 1, m = 3, n = 4: M = u vᵀ / std(u vᵀ) with u, v drawn in that order from the
  // sample's stream as mean + U[-1, 1).
  const MatrixShape shape{3, 4, 1};
  for (double mean : {0.0, 2.5}) {
    MatrixGenerator gen(shape, 11, {"uniform", mean});
    std::vector<double> got(12);
    gen.Generate(5, got);
    RandomStream rng(11, 5);
    double u[3], v[4];
    for (double& x : u) x = mean + 2 * rng.NextUniform() - 1;
    for (double& x : v) x = mean + 2 * rng.NextUniform() - 1;
    std::vector<double> want;
    double sum = 0, squares = 0;
    for (double ui : u) {
      for (double vj : v) want.push_back(ui * vj), sum += ui * vj;
    }
    for (double x : want) squares += (x - sum / 12) * (x - sum / 12);
    const double sd = std::sqrt(squares / 12);
    for (int i = 0; i < 12; ++i) EXPECT_NEAR(got[i], want[i] / sd, 1e-12) << "mean " << mean;
  }
  // The default law is still the standard normal (datasets made before factor_dist match).
  std::vector<double> normal(12), explicit_normal(12);
  MatrixGenerator(shape, 11).Generate(5, normal);
  MatrixGenerator(shape, 11, {"normal", 0}).Generate(5, explicit_normal);
  EXPECT_EQ(normal, explicit_normal);
}

TEST(MatrixGeneratorTest, FactorLawErrorsNameTheOption) {
  EXPECT_EQ(FactorLaw({"cauchy", 0}).Validate().message(),
            "factor-dist must be one of normal, uniform, got \"cauchy\"");
  EXPECT_EQ(FactorLaw({"uniform", 1000}).Validate().message(),
            "factor-mean must be in [-100, 100], got 1000");
  EXPECT_TRUE(FactorLaw({"uniform", -3}).Validate().ok());
}

TEST(LowRankSpectrumTest, MatchesLapackOnTheDenseProduct) {
  RandomStream rng(5, 0);
  for (int trial = 0; trial < 30; ++trial) {
    const int m = 3 + trial % 11, n = 2 + (trial * 7) % 13, r = 1 + trial % std::min(m, n);
    std::vector<double> u(m * r), v(n * r), product(m * n, 0.0), sigma(r);
    for (double& x : u) x = rng.NextNormal();
    for (double& x : v) x = rng.NextNormal();
    for (int i = 0; i < m; ++i)
      for (int j = 0; j < n; ++j)
        for (int k = 0; k < r; ++k) product[i * n + j] += u[i * r + k] * v[j * r + k];
    LowRankSpectrum spectrum(m, n, r);
    spectrum.Compute(u, v, sigma);
    std::vector<double> expected = LapackSingularValues(product, m, n);
    for (int k = 0; k < r; ++k) EXPECT_NEAR(sigma[k], expected[k], 1e-11 * expected[0]) << trial;
  }
}

TEST(RandomStreamTest, NormalsFollowTheStandardNormalCdf) {
  RandomStream rng(123, 0);
  constexpr int kSamples = 400000;
  std::vector<double> x(kSamples);
  double sum = 0, sum2 = 0;
  for (double& v : x) {
    v = rng.NextNormal();
    sum += v;
    sum2 += v * v;
  }
  EXPECT_NEAR(sum / kSamples, 0.0, 0.01);
  EXPECT_NEAR(sum2 / kSamples, 1.0, 0.01);
  // Kolmogorov-Smirnov distance to Phi; the 1% critical value is 1.63/sqrt(n) = 0.0026.
  std::sort(x.begin(), x.end());
  double d = 0;
  for (int i = 0; i < kSamples; ++i) {
    const double cdf = 0.5 * std::erfc(-x[i] / std::sqrt(2.0));
    d = std::max(
        {d, std::abs(cdf - double(i) / kSamples), std::abs(cdf - double(i + 1) / kSamples)});
  }
  EXPECT_LT(d, 0.0026);
  // The tail beyond the ziggurat's base strip (|x| > 3.654) is sampled too.
  EXPECT_GT(x.back(), 3.7);
  EXPECT_LT(x.front(), -3.7);
}

TEST(StatsAccumulatorTest, MeanStdMinMax) {
  StatsAccumulator acc;
  for (double v : {1.0, 2.0, 4.0}) {
    MatrixStats s;
    s.trace = v;
    acc.Add(s);
  }
  StatsAccumulator::Summary t = acc.Get(4);
  EXPECT_DOUBLE_EQ(t.mean, 7.0 / 3);
  EXPECT_NEAR(t.std, std::sqrt((16.0 / 9 + 1.0 / 9 + 25.0 / 9) / 3), 1e-15);
  EXPECT_EQ(t.min, 1.0);
  EXPECT_EQ(t.max, 4.0);
  EXPECT_STREQ(MatrixStats::kNames[4], "trace");
}

}  // namespace
}  // namespace matbert
