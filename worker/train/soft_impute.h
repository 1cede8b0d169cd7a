// Soft-impute (Mazumder, Hastie and Tibshirani, 2010): matrix completion by nuclear-norm
// regularisation, the convex baseline the trainer reports beside mean and ALS. Each
// iteration fills the missing entries with the current estimate and soft-thresholds the
// singular values of the result by λ; λ falls geometrically from the largest singular value
// of the observed matrix, with warm starts, so the last stages approach nuclear-norm
// minimisation (the baseline Gopalani et al. compare BERT against).
#pragma once

#include <cstdint>
#include <span>

namespace matbert {

struct SoftImputeOptions {
  int stages = 10;             // values of λ, each warm-started from the last
  int iterations = 20;         // per stage
  double final_lambda = 1e-2;  // the last λ as a fraction of the first (σ₁ of the observed)
};

// Completes `count` m×n matrices at once (row-major, one after another): `values` holds each
// matrix's entries where `observed` is 1 (the rest are ignored) and `completed` receives the
// estimate of every entry. Entries are those the matrix shows at observed positions.
void SoftImpute(std::span<const double> values, std::span<const uint8_t> observed, int64_t count,
                int m, int n, std::span<double> completed, const SoftImputeOptions& options = {});

}  // namespace matbert
