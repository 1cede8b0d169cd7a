// Reads a generated matrix dataset directory (DESIGN.md §2) and validates it: the JSON side
// files, the shard list in train/state.json, each shard's Arrow schema and record batches,
// every row's length and token ids. Each refusal names the file (and byte offset for Arrow
// data). Memory use is bounded by one record batch; training reads batches on demand.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "worker/arrow/ipc_stream_reader.h"
#include "worker/data/matrix_generator.h"
#include "worker/data/matrix_tokenizer.h"

namespace matbert {

class MatrixDataset {
 public:
  // Opens and validates the side files and every shard's stream structure (not yet the
  // row contents: ReadBatch checks those).
  static absl::StatusOr<MatrixDataset> Open(const std::string& dir);

  const std::string& dir() const { return dir_; }
  const MatrixShape& shape() const { return shape_; }
  const MatrixTokenizer& tokenizer() const { return tokenizer_; }
  uint64_t seed() const { return seed_; }
  const FactorLaw& factors() const { return factors_; }
  int64_t num_rows() const { return num_rows_; }
  int num_batches() const { return static_cast<int>(batches_.size()); }
  // Tokens per row: SequenceLength(m, n).
  int64_t row_length() const { return row_length_; }

  // Record batch k over all shards in order, with every row checked: length row_length(),
  // ids within the vocabulary, values NaN exactly at special tokens.
  absl::StatusOr<arrow::ListBatch> ReadBatch(int k) const;
  // Global index of the first row of batch k.
  int64_t batch_first_row(int k) const { return batches_[k].first_row; }

  // Calls fn(row, input_ids, values) for every row in order; stops at the first error.
  absl::Status ForEachRow(const std::function<void(int64_t, std::span<const int32_t>,
                                                   std::span<const double>)>& fn) const;

 private:
  struct BatchRef {
    int shard = 0;
    int batch = 0;
    int64_t first_row = 0;
  };

  MatrixDataset(std::string dir, MatrixTokenizer tokenizer)
      : dir_(std::move(dir)), tokenizer_(std::move(tokenizer)) {}

  std::string dir_;
  MatrixShape shape_;
  MatrixTokenizer tokenizer_;
  uint64_t seed_ = 0;
  FactorLaw factors_;
  int64_t num_rows_ = 0;
  int64_t row_length_ = 0;
  std::vector<std::string> shard_paths_;
  std::vector<arrow::IpcStreamReader> shards_;
  std::vector<BatchRef> batches_;
};

}  // namespace matbert
