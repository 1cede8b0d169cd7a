#include "worker/data/matrix_dataset.h"

#include <cmath>
#include <nlohmann/json.hpp>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "common/file_util.h"
#include "common/status_macros.h"
#include "worker/data/dataset_format.h"

namespace matbert {
namespace {

using Json = nlohmann::json;

absl::Status Refuse(const std::string& file, absl::string_view what) {
  return absl::DataLossError(absl::StrCat(file, ": ", what));
}

absl::StatusOr<Json> ReadJson(const std::string& path) {
  ASSIGN_OR_RETURN(std::string text, ReadFileToString(path));
  Json json = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded()) return Refuse(path, "not valid JSON");
  if (!json.is_object()) return Refuse(path, "expected a JSON object");
  return json;
}

// Reads json[key] as T, or refuses naming the file and key.
template <typename T>
absl::StatusOr<T> Field(const Json& json, const std::string& key, const std::string& file) {
  auto it = json.find(key);
  if (it == json.end()) return Refuse(file, absl::StrCat("missing key \"", key, "\""));
  if constexpr (std::is_same_v<T, bool>) {
    if (!it->is_boolean()) return Refuse(file, absl::StrCat("\"", key, "\" must be a boolean"));
  } else {
    if (!it->is_number_integer()) {
      return Refuse(file, absl::StrCat("\"", key, "\" must be an integer"));
    }
  }
  return it->get<T>();
}

}  // namespace

absl::StatusOr<MatrixDataset> MatrixDataset::Open(const std::string& dir) {
  const std::string config_path = dir + "/config.json";
  const std::string tokenizer_path = dir + "/tokenizer_config.json";
  const std::string state_path = dir + "/" + kSplitName + "/state.json";
  const std::string info_path = dir + "/" + kSplitName + "/dataset_info.json";
  ASSIGN_OR_RETURN(Json config, ReadJson(config_path));
  ASSIGN_OR_RETURN(Json tok, ReadJson(tokenizer_path));
  ASSIGN_OR_RETURN(Json state, ReadJson(state_path));
  ASSIGN_OR_RETURN(Json info, ReadJson(info_path));
  RETURN_IF_ERROR(ReadJson(dir + "/dataset_dict.json").status());

  ASSIGN_OR_RETURN(int version, Field<int>(config, "format_version", config_path));
  if (version != kDatasetFormatVersion) {
    return Refuse(config_path, absl::StrCat("format_version ", version,
                                            " is not supported (this "
                                            "build reads ",
                                            kDatasetFormatVersion, ")"));
  }
  MatrixShape shape;
  ASSIGN_OR_RETURN(shape.m, Field<int>(config, "m", config_path));
  ASSIGN_OR_RETURN(shape.n, Field<int>(config, "n", config_path));
  ASSIGN_OR_RETURN(shape.r, Field<int>(config, "r", config_path));
  if (absl::Status s = shape.Validate(); !s.ok()) return Refuse(config_path, s.message());
  ASSIGN_OR_RETURN(int64_t n_samples, Field<int64_t>(config, "n_samples", config_path));
  ASSIGN_OR_RETURN(uint64_t seed, Field<uint64_t>(config, "seed", config_path));

  TokenizerOptions tok_options;
  ASSIGN_OR_RETURN(tok_options.prec, Field<int>(tok, "prec", tokenizer_path));
  ASSIGN_OR_RETURN(tok_options.n_sigma, Field<int>(tok, "n_sigma", tokenizer_path));
  ASSIGN_OR_RETURN(tok_options.row_sep, Field<bool>(tok, "row_sep", tokenizer_path));
  auto tokenizer = MatrixTokenizer::Create(tok_options);
  if (!tokenizer.ok()) return Refuse(tokenizer_path, tokenizer.status().message());
  ASSIGN_OR_RETURN(int64_t vocab_size, Field<int64_t>(tok, "vocab_size", tokenizer_path));
  if (vocab_size != tokenizer->vocab_size()) {
    return Refuse(tokenizer_path, absl::StrCat("vocab_size ", vocab_size,
                                               " does not follow from "
                                               "prec, n_sigma and row_sep (expected ",
                                               tokenizer->vocab_size(), ")"));
  }
  if (info.value("features", Json()) != Json::parse(FeaturesJson().dump())) {
    return Refuse(info_path, "features are not {input_ids: List(int32), values: List(float64)}");
  }

  MatrixDataset dataset(dir, *std::move(tokenizer));
  dataset.shape_ = shape;
  dataset.seed_ = seed;
  // Both absent from datasets older than them: standard normal factors.
  const Json dist = config.value("distribution", Json("normal"));
  const Json mean = config.value("factor_mean", Json(0.0));
  if (!dist.is_string() || !mean.is_number()) {
    return Refuse(config_path, "\"distribution\" must be a string and \"factor_mean\" a number");
  }
  dataset.factors_ = {dist.get<std::string>(), mean.get<double>()};
  if (absl::Status s = dataset.factors_.Validate(); !s.ok())
    return Refuse(config_path, s.message());
  dataset.row_length_ = dataset.tokenizer_.SequenceLength(shape.m, shape.n);

  auto files = state.find("_data_files");
  if (files == state.end() || !files->is_array() || files->empty()) {
    return Refuse(state_path, "\"_data_files\" must be a non-empty list");
  }
  const arrow::ListSchema expected = MatrixDatasetSchema();
  for (const Json& entry : *files) {
    if (!entry.is_object() || !entry.contains("filename") || !entry["filename"].is_string()) {
      return Refuse(state_path, "each \"_data_files\" entry needs a \"filename\" string");
    }
    const std::string name = entry["filename"];
    // A dataset may only name files inside its split folder.
    if (name.empty() || absl::StrContains(name, "/") || name == "." || name == "..") {
      return Refuse(state_path,
                    absl::StrCat("data file name \"", name, "\" is not a plain file name"));
    }
    const std::string path = dir + "/" + kSplitName + "/" + name;
    ASSIGN_OR_RETURN(arrow::IpcStreamReader reader, arrow::IpcStreamReader::Open(path));
    if (reader.schema().fields != expected.fields) {
      return Refuse(path, "columns are not input_ids: list<int32>, values: list<float64>");
    }
    bool has_hf_metadata = false;
    for (const auto& [key, value] : reader.schema().metadata)
      has_hf_metadata |= key == "huggingface";
    if (!has_hf_metadata) return Refuse(path, "schema lacks the \"huggingface\" metadata");
    const int shard = static_cast<int>(dataset.shards_.size());
    for (int b = 0; b < reader.num_batches(); ++b) {
      dataset.batches_.push_back({shard, b, dataset.num_rows_ + reader.batch_first_row(b)});
    }
    dataset.num_rows_ += reader.num_rows();
    dataset.shard_paths_.push_back(path);
    dataset.shards_.push_back(std::move(reader));
  }
  if (dataset.num_rows_ != n_samples) {
    return Refuse(config_path, absl::StrCat("n_samples is ", n_samples, " but the data files hold ",
                                            dataset.num_rows_, " rows"));
  }
  return dataset;
}

absl::StatusOr<arrow::ListBatch> MatrixDataset::ReadBatch(int k) const {
  const BatchRef& ref = batches_[k];
  const std::string& path = shard_paths_[ref.shard];
  ASSIGN_OR_RETURN(arrow::ListBatch batch, shards_[ref.shard].ReadBatch(ref.batch));
  const int64_t first_in_shard = shards_[ref.shard].batch_first_row(ref.batch);
  for (int64_t i = 0; i < batch.rows(); ++i) {
    auto ids = batch.row<int32_t>(0, i);
    auto values = batch.row<double>(1, i);
    const std::string where = absl::StrCat("row ", first_in_shard + i, " of the shard");
    if (static_cast<int64_t>(ids.size()) != row_length_ ||
        static_cast<int64_t>(values.size()) != row_length_) {
      return Refuse(path, absl::StrCat(where, " has ", ids.size(), " ids and ", values.size(),
                                       " values; expected ", row_length_));
    }
    for (size_t j = 0; j < ids.size(); ++j) {
      const bool is_bin = tokenizer_.IsBinId(ids[j]);
      const bool is_special = ids[j] == MatrixTokenizer::kClsId ||
                              ids[j] == MatrixTokenizer::kSepId ||
                              (tokenizer_.options().row_sep && ids[j] == tokenizer_.row_sep_id());
      if (!is_bin && !is_special) {
        return Refuse(path,
                      absl::StrCat(where, ", position ", j, ": token id ", ids[j],
                                   " is outside the vocabulary of ", tokenizer_.vocab_size()));
      }
      if (is_bin == std::isnan(values[j])) {
        return Refuse(path, absl::StrCat(where, ", position ", j,
                                         ": value must be NaN exactly at special tokens"));
      }
    }
  }
  return batch;
}

absl::Status MatrixDataset::ForEachRow(
    const std::function<void(int64_t, std::span<const int32_t>, std::span<const double>)>& fn)
    const {
  for (int k = 0; k < num_batches(); ++k) {
    ASSIGN_OR_RETURN(arrow::ListBatch batch, ReadBatch(k));
    for (int64_t i = 0; i < batch.rows(); ++i) {
      fn(batches_[k].first_row + i, batch.row<int32_t>(0, i), batch.row<double>(1, i));
    }
  }
  return absl::OkStatus();
}

}  // namespace matbert
