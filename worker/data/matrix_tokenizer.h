// MatrixTokenizer: maps continuous matrix entries to token ids and back (DESIGN.md §2).
// Shared by the generator (offline datasets) and the trainer (online batches).
//
//   n_bins = 2 * n_sigma * 10^prec + 1
//   bin(v) = round((clamp(v, -n_sigma, n_sigma) + n_sigma) * 10^prec)   (half to even)
//   id     = 4 + bin;   [PAD]=0 [MASK]=1 [CLS]=2 [SEP]=3, [ROW_SEP]=n_bins+4 when enabled
//
// A sequence is [CLS], the m*n entries row-major ([ROW_SEP] between rows when enabled),
// [SEP]. Thread-safe: all methods are const.
#pragma once

#include <cstdint>
#include <span>

#include "absl/status/statusor.h"
#include "common/matrix_limits.h"
#include "common/token_layout.h"

namespace matbert {

struct TokenizerOptions {
  int prec = 2;          // digits after the decimal point, 0..6
  int n_sigma = 4;       // values are clamped to [-n_sigma, n_sigma], 1..100
  bool row_sep = false;  // insert [ROW_SEP] between matrix rows
};

class MatrixTokenizer {
 public:
  static constexpr int32_t kPadId = 0;
  static constexpr int32_t kMaskId = 1;
  static constexpr int32_t kClsId = 2;
  static constexpr int32_t kSepId = 3;
  static constexpr int32_t kFirstBinId = 4;

  // Fails with INVALID_ARGUMENT naming the field when prec or n_sigma is out of range.
  static absl::StatusOr<MatrixTokenizer> Create(const TokenizerOptions& options);

  const TokenizerOptions& options() const { return options_; }
  int64_t n_bins() const { return n_bins_; }
  int64_t vocab_size() const {
    return TokenVocabSize(options_.prec, options_.n_sigma, options_.row_sep);
  }
  // The [ROW_SEP] id, or -1 when row separators are off.
  int32_t row_sep_id() const { return options_.row_sep ? static_cast<int32_t>(n_bins_ + 4) : -1; }

  int64_t Bin(double value) const;
  int32_t Encode(double value) const { return static_cast<int32_t>(kFirstBinId + Bin(value)); }
  // The centre of the token's bin. REQUIRES: id is a bin id.
  double Decode(int32_t id) const;
  bool IsBinId(int32_t id) const { return id >= kFirstBinId && id < kFirstBinId + n_bins_; }

  // Sequence length for an m x n matrix: m*n + 2, plus m-1 row separators when on.
  int64_t SequenceLength(int m, int n) const;

  // Writes the token ids of the row-major m x n `matrix` to `ids` and, when `values` is not
  // empty, the aligned continuous values (NaN at special tokens).
  // REQUIRES: matrix.size() == m*n; ids.size() (and values.size() if given) ==
  // SequenceLength(m, n).
  void EncodeMatrix(std::span<const double> matrix, int m, int n, std::span<int32_t> ids,
                    std::span<double> values = {}) const;

 private:
  explicit MatrixTokenizer(const TokenizerOptions& options);

  TokenizerOptions options_;
  int64_t n_bins_ = 0;
  double scale_ = 1;  // 10^prec
};

}  // namespace matbert
