// Matrices with missing entries in the files users have them in, for `matbert-worker
// complete`: CSV (one matrix per block of lines, blocks separated by a blank line; an empty
// cell, "nan", "NaN" or "NA" is missing) and NumPy's .npy (float64 or float32, C order, shape
// (m, n) or (k, m, n); NaN is missing). Written back in the format they came in.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace matbert {

struct MatrixFile {
  enum Format { kCsv, kNpy };
  Format format = kCsv;
  int64_t count = 0;           // matrices
  int m = 0, n = 0;            // each matrix's shape
  bool stacked = false;        // .npy of shape (k, m, n) rather than (m, n)
  std::vector<double> values;  // count × m × n, row-major; NaN = missing
};

// By extension (.csv or .npy). INVALID_ARGUMENT naming the file, and the line and column or
// the header field, for anything it cannot read: ragged rows, a cell that is not a number,
// matrices of different shapes, an unsupported dtype or Fortran order.
absl::StatusOr<MatrixFile> ReadMatrixFile(const std::string& path);

// Writes `file` to `path` in file.format (replacing it whole: temp file, fsync, rename). CSV
// values are written in their shortest exact form; missing entries as "nan".
absl::Status WriteMatrixFile(const std::string& path, const MatrixFile& file);

}  // namespace matbert
