#include "worker/data/dataset_format.h"

#include <algorithm>

#include "absl/strings/str_format.h"

namespace matbert {

std::string ShardFileName(int shard, int num_shards) {
  return absl::StrFormat("data-%05d-of-%05d.arrow", shard, num_shards);
}

nlohmann::ordered_json FeaturesJson() {
  auto list_of = [](const char* dtype) {
    return nlohmann::ordered_json{{"feature", {{"dtype", dtype}, {"_type", "Value"}}},
                                  {"_type", "List"}};
  };
  return {{"input_ids", list_of("int32")}, {"values", list_of("float64")}};
}

arrow::ListSchema MatrixDatasetSchema() {
  arrow::ListSchema schema;
  schema.fields = {{"input_ids", arrow::ElementType::kInt32},
                   {"values", arrow::ElementType::kFloat64}};
  nlohmann::ordered_json hf = {{"info", {{"features", FeaturesJson()}}}};
  schema.metadata = {{"huggingface", hf.dump()}};
  return schema;
}

int64_t RowsPerBatch(int64_t row_tokens) {
  constexpr int64_t kTargetBytes = 16 << 20;
  const int64_t row_bytes = row_tokens * 12 + 8;  // int32 id + float64 value, two offsets
  return std::clamp<int64_t>(kTargetBytes / row_bytes, 1, kMaxRowsPerBatch);
}

}  // namespace matbert
