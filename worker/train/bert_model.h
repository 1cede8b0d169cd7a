// BertForMatrixRegression (DESIGN.md §3): a BERT encoder over matrix tokens and a linear
// head regressing every position's value. Module and parameter names follow HuggingFace
// BERT ("bert.encoder.layer.0.attention.self.query.weight", ...), so named_parameters()
// are the names written to model.safetensors; the head is "regressor".
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/dropout.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>

#include <nlohmann/json.hpp>
#include <string>

#include "common/job_spec.h"

namespace matbert {

// The architecture (HuggingFace BertConfig names, as in the job spec's [model]) plus what
// follows from the matrix: the vocabulary and the shape behind row/column ids.
struct BertOptions {
  ModelSection model;
  int64_t vocab_size = 805;
  int m = 20, n = 20;  // matrix shape, for the row/column ids
  bool row_sep = false;
  // training.gradient_checkpointing: in training, each layer keeps only its input and runs its
  // forward again during backward (with the same dropout draws), trading compute for memory.
  bool gradient_checkpointing = false;

  // "pre": LayerNorm before each sublayer, plus a final one.
  bool pre_layer_norm() const { return model.layer_norm_position == "pre"; }
  // 2-D positions: row and column embeddings added for entry tokens (0 for special tokens).
  bool row_col_embeddings() const { return model.position_embedding_type == "absolute_2d"; }

  static BertOptions FromSpec(const JobSpec& spec);
  // HuggingFace-style config.json written beside model.safetensors. A model with matbert's
  // extensions (pre-LN, absolute_2d) also gets "layer_types" naming them, which transformers'
  // config validation refuses: loading it as a plain BertModel fails instead of silently
  // computing something else (docs/training.md).
  nlohmann::json ToConfigJson() const;
};

class BertSelfAttentionImpl : public torch::nn::Module {
 public:
  explicit BertSelfAttentionImpl(const BertOptions& o);
  // x (B*L, H) for `batch` sequences -> (B*L, H). `allowed` (B, 1, L, L) bool, when defined:
  // which keys each query may attend to (false above the diagonal for causal sequences).
  torch::Tensor forward(const torch::Tensor& x, int64_t batch, const torch::Tensor& allowed = {});

 private:
  int64_t heads_;
  double dropout_;
  torch::nn::Linear query_{nullptr}, key_{nullptr}, value_{nullptr};
};
TORCH_MODULE(BertSelfAttention);

// Linear + dropout + residual LayerNorm (HF "BertSelfOutput" / "BertOutput").
class BertResidualImpl : public torch::nn::Module {
 public:
  BertResidualImpl(int64_t in, int64_t out, const BertOptions& o);
  torch::nn::Linear dense{nullptr};
  torch::nn::LayerNorm layer_norm{nullptr};
  torch::nn::Dropout dropout{nullptr};
};
TORCH_MODULE(BertResidual);

class BertAttentionImpl : public torch::nn::Module {
 public:
  explicit BertAttentionImpl(const BertOptions& o);
  BertSelfAttention self{nullptr};
  BertResidual output{nullptr};
};
TORCH_MODULE(BertAttention);

class BertLayerImpl : public torch::nn::Module {
 public:
  explicit BertLayerImpl(const BertOptions& o);
  // (B*L, H) -> (B*L, H); `allowed` as for BertSelfAttention.
  torch::Tensor forward(torch::Tensor x, int64_t batch, const torch::Tensor& allowed = {});

 private:
  bool pre_ln_;
  BertAttention attention_{nullptr};
  torch::nn::Linear intermediate_{nullptr};  // "intermediate.dense"
  BertResidual output_{nullptr};
};
TORCH_MODULE(BertLayer);

class BertForMatrixRegressionImpl : public torch::nn::Module {
 public:
  explicit BertForMatrixRegressionImpl(const BertOptions& o);

  // input_ids (B, L) int64 -> the encoder's last hidden states (B, L, H), what HuggingFace's
  // BertModel returns as last_hidden_state for the same weights. `causal` (B,) bool, when
  // defined, marks the sequences whose positions attend only to themselves and earlier ones
  // (matrix.objective = "hybrid"); the others attend both ways.
  torch::Tensor Encode(const torch::Tensor& input_ids, const torch::Tensor& causal = {});
  // input_ids (B, L) int64 -> logits (B, L, 1): the regressor over Encode's output.
  torch::Tensor forward(const torch::Tensor& input_ids, const torch::Tensor& causal = {});

  const BertOptions& options() const { return options_; }

 private:
  void InitWeights();

  BertOptions options_;
  torch::nn::Embedding word_{nullptr}, position_{nullptr}, token_type_{nullptr};
  torch::nn::Embedding row_{nullptr}, col_{nullptr};
  torch::nn::LayerNorm embeddings_ln_{nullptr};
  torch::nn::Dropout embeddings_dropout_{nullptr};
  torch::nn::ModuleList layers_;
  torch::nn::LayerNorm final_ln_{nullptr};  // pre-LN only
  torch::nn::Linear regressor_{nullptr};
  torch::Tensor row_ids_, col_ids_;  // (L,) buffers for 2-D positions
};
TORCH_MODULE(BertForMatrixRegression);

// Mean squared error over positions whose label is not NaN. logits (B, L, 1), labels (B, L).
torch::Tensor MaskedMseLoss(const torch::Tensor& logits, const torch::Tensor& labels);
// The sum of those squared errors (the numerator of MaskedMseLoss), each times its
// `weights` entry (B, L) when given.
torch::Tensor MaskedSquaredErrorSum(const torch::Tensor& logits, const torch::Tensor& labels,
                                    const torch::Tensor& weights = {});

}  // namespace matbert
