#include "worker/train/completion.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "common/job_spec.h"
#include "common/status_macros.h"
#include "common/token_layout.h"
#include "worker/data/matrix_tokenizer.h"
#include "worker/train/als_baseline.h"
#include "worker/train/batch_source.h"
#include "worker/train/bert_model.h"
#include "worker/train/checkpoint.h"
#include "worker/train/soft_impute.h"

namespace matbert {
namespace {

constexpr int64_t kBatch = 256;  // matrices per forward pass

// Each matrix's scale: the population std of its observed entries (1 when it cannot be told:
// fewer than two observed, or all equal).
std::vector<double> Scales(const CompletionRequest& r) {
  std::vector<double> scales(r.count, 1.0);
  if (!r.normalize) return scales;
  const int64_t entries = int64_t{r.m} * r.n;
  for (int64_t k = 0; k < r.count; ++k) {
    double sum = 0, squares = 0;
    int64_t seen = 0;
    for (int64_t e = 0; e < entries; ++e) {
      const double v = r.values[k * entries + e];
      if (!std::isnan(v)) sum += v, squares += v * v, ++seen;
    }
    if (seen < 2) continue;
    const double mean = sum / seen;
    const double variance = std::max(0.0, squares / seen - mean * mean);
    if (variance > 0) scales[k] = std::sqrt(variance);
  }
  return scales;
}

}  // namespace

absl::StatusOr<std::string> CheckpointSpecPath(const std::string& checkpoint) {
  const std::filesystem::path dir(checkpoint);
  const std::filesystem::path own = dir / "spec.toml";
  if (std::filesystem::is_regular_file(own)) return own.string();
  const std::filesystem::path run = dir.lexically_normal().parent_path().parent_path();
  const std::filesystem::path of_run = run / "config.toml";
  if (!run.empty() && std::filesystem::is_regular_file(of_run)) return of_run.string();
  return absl::NotFoundError(absl::StrCat("cannot find the job spec of checkpoint ", checkpoint,
                                          ": neither ", own.string(), " nor ", of_run.string(),
                                          " exists"));
}

absl::StatusOr<EvalSet> CheckpointEvalSet(const std::string& checkpoint) {
  EvalSet set;
  ASSIGN_OR_RETURN(std::string spec_path, CheckpointSpecPath(checkpoint));
  ASSIGN_OR_RETURN(JobSpec spec, LoadJobSpec(spec_path));
  const MatrixTokenizer tokenizer =
      *MatrixTokenizer::Create({spec.matrix.prec, spec.matrix.n_sigma, spec.matrix.row_sep});
  set.m = spec.matrix.m;
  set.n = spec.matrix.n;
  for (const TrainBatch& batch : MakeEvalBatches(spec)) {
    const int64_t* ids = batch.input_ids.data_ptr<int64_t>();
    const bool* masked = batch.masked.data_ptr<bool>();
    const double* values = batch.values.data_ptr<double>();
    set.count += batch.input_ids.size(0);
    for (int64_t at = 0; at < batch.input_ids.numel(); ++at) {
      if (std::isnan(values[at])) continue;  // [CLS], [SEP], [ROW_SEP]
      set.truth.push_back(values[at]);
      set.observed.push_back(masked[at] ? std::nan("")
                                        : tokenizer.Decode(static_cast<int32_t>(ids[at])));
    }
  }
  return set;
}

absl::StatusOr<Completion> CompleteMatrices(const CompletionRequest& r) {
  ASSIGN_OR_RETURN(std::string spec_path, CheckpointSpecPath(r.checkpoint));
  ASSIGN_OR_RETURN(JobSpec spec, LoadJobSpec(spec_path));
  if (r.m != spec.matrix.m || r.n != spec.matrix.n) {
    return absl::InvalidArgumentError(
        absl::StrCat(r.source, " holds ", r.m, "x", r.n, " matrices; checkpoint ", r.checkpoint,
                     " was trained on ", spec.matrix.m, "x", spec.matrix.n,
                     " (matrix.m, matrix.n in ", spec_path, ")"));
  }
  const int64_t entries = int64_t{r.m} * r.n;
  for (int64_t k = 0; k < r.count; ++k) {
    const auto first = r.values.begin() + k * entries;
    if (std::all_of(first, first + entries, [](double v) { return std::isnan(v); })) {
      return absl::InvalidArgumentError(
          absl::StrCat(r.source, ": matrix ", k + 1, " has no observed entry"));
    }
  }
  if (r.threads > 0) at::set_num_threads(r.threads);
  torch::NoGradGuard no_grad;
  BertForMatrixRegression model(BertOptions::FromSpec(spec));
  RETURN_IF_ERROR(LoadCheckpoint(r.checkpoint, model, nullptr).status());
  if (r.average) {
    NamedTensors parameters;
    for (auto& p : model->named_parameters()) parameters.emplace_back(p.key(), p.value());
    ASSIGN_OR_RETURN(const bool had, LoadAverages(r.checkpoint, parameters));
    if (!had) {
      return absl::NotFoundError(absl::StrCat("checkpoint ", r.checkpoint,
                                              " has no model_ema.safetensors (its run did not "
                                              "set training.ema_decay)"));
    }
  }
  model->eval();

  const MatrixTokenizer tokenizer =
      *MatrixTokenizer::Create({spec.matrix.prec, spec.matrix.n_sigma, spec.matrix.row_sep});
  const int64_t length = tokenizer.SequenceLength(r.m, r.n);
  const std::vector<double> scales = Scales(r);
  // The model sees each matrix as training did: entries / scale, as tokens; missing ones
  // are [MASK].
  std::vector<double> scaled(r.values.size());
  std::vector<uint8_t> observed(r.values.size());
  std::vector<int64_t> position(entries);  // token position of entry e
  for (int64_t e = 0; e < entries; ++e) {
    position[e] = EntryTokenPosition(e, r.n, spec.matrix.row_sep);
  }
  std::vector<int32_t> ids(length);
  std::vector<int64_t> all_ids(static_cast<size_t>(r.count * length));
  Completion out;
  for (int64_t k = 0; k < r.count; ++k) {
    for (int64_t e = 0; e < entries; ++e) {
      const double v = r.values[k * entries + e];
      observed[k * entries + e] = !std::isnan(v);
      scaled[k * entries + e] = std::isnan(v) ? 0.0 : v / scales[k];
    }
    tokenizer.EncodeMatrix(std::span<const double>(scaled).subspan(k * entries, entries), r.m, r.n,
                           ids);
    for (int64_t e = 0; e < entries; ++e) {
      if (!observed[k * entries + e]) ids[position[e]] = MatrixTokenizer::kMaskId;
    }
    std::copy(ids.begin(), ids.end(), all_ids.begin() + k * length);
  }
  for (uint8_t seen : observed) out.missing += !seen;
  out.model.assign(r.values.begin(), r.values.end());
  for (int64_t start = 0; start < r.count; start += kBatch) {
    const int64_t b = std::min(kBatch, r.count - start);
    const torch::Tensor input =
        torch::from_blob(all_ids.data() + start * length, {b, length}, torch::kInt64);
    const torch::Tensor logits = model->forward(input).squeeze(-1).to(torch::kFloat64).contiguous();
    const double* l = logits.data_ptr<double>();
    for (int64_t i = 0; i < b; ++i) {
      const int64_t k = start + i;
      for (int64_t e = 0; e < entries; ++e) {
        if (!observed[k * entries + e]) {
          out.model[k * entries + e] = l[i * length + position[e]] * scales[k];
        }
      }
    }
  }
  if (!r.baselines) return out;

  // The baselines see the given values (not tokens), scaled the same way.
  out.mean.assign(r.values.begin(), r.values.end());
  out.als = out.mean;
  out.soft_impute = out.mean;
  std::vector<double> completed(scaled.size()), prediction(entries);
  SoftImpute(scaled, observed, r.count, r.m, r.n, completed);
  for (int64_t k = 0; k < r.count; ++k) {
    const size_t at = k * entries;
    // Given values are exact (not bin centres, as in the trainer's eval): a ridge far below
    // the data's scale, and iterations enough to converge on a clean low-rank matrix.
    AlsComplete(std::span<const double>(scaled).subspan(at, entries),
                std::span<const uint8_t>(observed).subspan(at, entries), r.m, r.n, spec.matrix.r,
                prediction, /*iterations=*/200, /*lambda=*/1e-9);
    double sum = 0;
    int64_t seen = 0;
    for (int64_t e = 0; e < entries; ++e) {
      if (observed[at + e]) sum += r.values[at + e], ++seen;
    }
    for (int64_t e = 0; e < entries; ++e) {
      if (observed[at + e]) continue;
      out.mean[at + e] = sum / seen;
      out.als[at + e] = prediction[e] * scales[k];
      out.soft_impute[at + e] = completed[at + e] * scales[k];
    }
  }
  return out;
}

}  // namespace matbert
