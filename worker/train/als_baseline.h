// Rank-r alternating least squares on the observed entries of one matrix: the classical
// matrix-completion baseline the trainer reports beside the model's masked RMSE.
#pragma once

#include <cstdint>
#include <span>

namespace matbert {

// Fits M ≈ U Vᵀ (U m×r, V n×r) to the entries where observed[i*n+j] is true, with ridge
// `lambda`, for `iterations` alternations from each of several seeded starts, and writes the
// best fit's prediction of every entry to `prediction` (m*n, row-major).
void AlsComplete(std::span<const double> matrix, std::span<const uint8_t> observed, int m, int n,
                 int r, std::span<double> prediction, int iterations = 50, double lambda = 1e-3,
                 uint64_t seed = 0);

}  // namespace matbert
