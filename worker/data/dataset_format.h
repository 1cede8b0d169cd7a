// The on-disk layout of a generated matrix dataset (DESIGN.md §2): HuggingFace `datasets`
// save_to_disk layout with one "train" split of Arrow IPC stream shards. Shared by the
// writer and the reader so both agree on names, columns and JSON side files.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "worker/arrow/list_batch.h"

namespace matbert {

// Bumped when the layout or the meaning of a file changes; recorded in config.json.
inline constexpr int kDatasetFormatVersion = 1;
inline constexpr const char* kSplitName = "train";
inline constexpr int kMaxRowsPerBatch = 1000;

// "data-00003-of-00008.arrow"
std::string ShardFileName(int shard, int num_shards);

// {"input_ids": List(Value(int32)), "values": List(Value(float64))} in `datasets` JSON.
nlohmann::ordered_json FeaturesJson();

// The Arrow schema of every shard, with the "huggingface" custom metadata.
arrow::ListSchema MatrixDatasetSchema();

// Rows per record batch for rows of `row_tokens` tokens: at most kMaxRowsPerBatch, fewer
// for very long rows so a batch body stays near 16 MiB.
int64_t RowsPerBatch(int64_t row_tokens);

// Row range [begin, end) of shard s when n rows are split into k contiguous shards.
inline int64_t ShardBegin(int64_t n, int k, int s) { return n * s / k; }

}  // namespace matbert
