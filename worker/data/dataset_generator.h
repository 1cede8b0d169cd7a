// Generates an offline matrix dataset (`matbert-worker generate`): matrices are produced by
// `threads` threads in record batches, written in index order to Arrow IPC shards inside a
// staging directory, summarised in dataset_stats.json, and renamed into place at the end.
// Output bytes depend only on the options below, never on `threads`.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "common/progress_bar.h"
#include "worker/data/matrix_generator.h"
#include "worker/data/matrix_tokenizer.h"

namespace matbert {

struct GenerateOptions {
  MatrixShape shape;           // m, n, r
  TokenizerOptions tokenizer;  // prec, n_sigma, row_sep
  int64_t n_samples = 1000;    // matrices, >= 1
  uint64_t seed = 42;
  FactorLaw factors;       // how U and V's entries are drawn
  int shards = 1;          // Arrow files, 1..n_samples
  int threads = 1;         // generator threads, >= 1; does not change the output
  std::string output_dir;  // empty: data/generated/matrix_m{m}_n{n}_r{r}_seed{seed}
  bool overwrite = false;  // replace an existing output_dir
  ProgressBar::Mode progress = ProgressBar::Mode::kAuto;

  // INVALID_ARGUMENT naming the option ("r", "prec", ...) and its allowed range.
  absl::Status Validate() const;
  std::string ResolvedOutputDir() const;
};

struct GenerateResult {
  std::string output_dir;
  int64_t rows = 0;
  int64_t bytes = 0;  // Arrow bytes written
  double seconds = 0;
  std::string summary;  // human-readable statistics table
};

// Runs the whole generation. Errors: INVALID_ARGUMENT (bad options), ALREADY_EXISTS
// (output_dir exists without overwrite), PERMISSION_DENIED / NOT_FOUND (cannot create the
// output), others for I/O failures. On error nothing appears at output_dir.
absl::StatusOr<GenerateResult> GenerateDataset(const GenerateOptions& options);

}  // namespace matbert
