// The ranges of the matrix data's parameters, in one place for the job spec's key table
// (common/job_spec.cc), `matbert-worker generate`'s flags and the data library that checks
// them again, so that a value one of them accepts is never refused by another.
#pragma once

namespace matbert {

inline constexpr int kMaxMatrixDim = 4096;        // m, n (and so r) of a matrix
inline constexpr int kMaxPrec = 6;                // digits after the decimal point
inline constexpr int kMaxNSigma = 100;            // values are clamped to ±n_sigma
inline constexpr double kMaxAbsFactorMean = 100;  // mean of the entries of U and V
inline constexpr int kMaxShards = 100000;         // Arrow files of one dataset
// How the entries of U and V are drawn: N(mean, 1), or uniform on [mean - 1, mean + 1].
inline constexpr const char* kFactorDists[] = {"normal", "uniform"};

}  // namespace matbert
