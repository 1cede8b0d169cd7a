#include "worker/train/bert_model.h"

#include <ATen/Context.h>
#include <torch/autograd.h>
#include <torch/nn/functional/activation.h>
#include <torch/nn/init.h>

#include <cmath>
#include <mutex>

#include "worker/train/torch_compat.h"

namespace matbert {

BertOptions BertOptions::FromSpec(const JobSpec& spec) {
  BertOptions o;
  o.model = spec.model;
  o.model.arch.clear();  // resolved: every key is in `model`
  o.vocab_size = spec.VocabSize();
  o.m = spec.matrix.m;
  o.n = spec.matrix.n;
  o.row_sep = spec.matrix.row_sep;
  o.gradient_checkpointing = spec.training.gradient_checkpointing;
  return o;
}

nlohmann::json BertOptions::ToConfigJson() const {
  nlohmann::json config = {{"architectures", {"BertForMatrixRegression"}},
                           {"model_type", "bert"},
                           {"vocab_size", vocab_size},
                           {"hidden_size", model.hidden_size},
                           {"num_hidden_layers", model.num_hidden_layers},
                           {"num_attention_heads", model.num_attention_heads},
                           {"intermediate_size", model.intermediate_size},
                           {"hidden_act", "gelu"},
                           {"hidden_dropout_prob", model.hidden_dropout_prob},
                           {"attention_probs_dropout_prob", model.attention_probs_dropout_prob},
                           {"max_position_embeddings", model.max_position_embeddings},
                           {"type_vocab_size", model.type_vocab_size},
                           {"initializer_range", model.initializer_range},
                           {"layer_norm_eps", model.layer_norm_eps},
                           {"pad_token_id", 0},
                           {"position_embedding_type", model.position_embedding_type},
                           {"layer_norm_position", model.layer_norm_position},
                           {"num_labels", 1},
                           {"matrix_m", m},
                           {"matrix_n", n},
                           {"row_sep", row_sep}};
  if (pre_layer_norm() || row_col_embeddings()) {
    std::string kind = "matbert";
    if (pre_layer_norm()) kind += "_pre_ln";
    if (row_col_embeddings()) kind += "_absolute_2d";
    config["layer_types"] = std::vector<std::string>(model.num_hidden_layers, kind);
  }
  return config;
}

BertSelfAttentionImpl::BertSelfAttentionImpl(const BertOptions& o)
    : heads_(o.model.num_attention_heads), dropout_(o.model.attention_probs_dropout_prob) {
  query_ = register_module("query", torch::nn::Linear(o.model.hidden_size, o.model.hidden_size));
  key_ = register_module("key", torch::nn::Linear(o.model.hidden_size, o.model.hidden_size));
  value_ = register_module("value", torch::nn::Linear(o.model.hidden_size, o.model.hidden_size));
}

torch::Tensor BertSelfAttentionImpl::forward(const torch::Tensor& x, int64_t batch,
                                             const torch::Tensor& allowed) {
  const int64_t n = x.size(0), h = x.size(1), l = n / batch, d = h / heads_;
  // One GEMM for Q, K and V (the parameters stay separate, under their HF names).
  torch::Tensor weight = torch::cat({query_->weight, key_->weight, value_->weight});  // (3H, H)
  torch::Tensor bias = torch::cat({query_->bias, key_->bias, value_->bias});
  torch::Tensor qkv = torch::addmm(bias, x, weight.t());  // (B*L, 3H)
  auto head = [&](int64_t i) {                            // (B*L, 3H) -> (B, heads, L, d)
    return qkv.slice(1, i * h, (i + 1) * h).view({batch, l, heads_, d}).transpose(1, 2);
  };
  torch::Tensor ctx = compat::ScaledDotProductAttention(head(0), head(1), head(2),
                                                        is_training() ? dropout_ : 0.0, allowed);
  return ctx.transpose(1, 2).reshape({n, h});  // (B*L, H)
}

BertResidualImpl::BertResidualImpl(int64_t in, int64_t out, const BertOptions& o) {
  dense = register_module("dense", torch::nn::Linear(in, out));
  layer_norm = register_module(
      "LayerNorm",
      torch::nn::LayerNorm(torch::nn::LayerNormOptions({out}).eps(o.model.layer_norm_eps)));
  dropout = register_module("dropout", torch::nn::Dropout(o.model.hidden_dropout_prob));
}

BertAttentionImpl::BertAttentionImpl(const BertOptions& o) {
  self = register_module("self", BertSelfAttention(o));
  output = register_module("output", BertResidual(o.model.hidden_size, o.model.hidden_size, o));
}

BertLayerImpl::BertLayerImpl(const BertOptions& o) : pre_ln_(o.pre_layer_norm()) {
  attention_ = register_module("attention", BertAttention(o));
  auto intermediate = register_module("intermediate", std::make_shared<torch::nn::Module>());
  intermediate_ = intermediate->register_module(
      "dense", torch::nn::Linear(o.model.hidden_size, o.model.intermediate_size));
  output_ =
      register_module("output", BertResidual(o.model.intermediate_size, o.model.hidden_size, o));
}

torch::Tensor BertLayerImpl::forward(torch::Tensor x, int64_t batch, const torch::Tensor& allowed) {
  BertResidualImpl& attn_out = *attention_->output;
  BertResidualImpl& mlp_out = *output_;
  auto mlp = [&](const torch::Tensor& t) {
    return mlp_out.dropout(mlp_out.dense(torch::gelu(intermediate_(t))));
  };
  if (pre_ln_) {
    // x + Attn(LN(x)), then x + MLP(LN(x)); the LayerNorms keep their HF names.
    x = x +
        attn_out.dropout(attn_out.dense(attention_->self(attn_out.layer_norm(x), batch, allowed)));
    return x + mlp(mlp_out.layer_norm(x));
  }
  // Post-LN (BERT): LN(x + Attn(x)), then LN(x + MLP(x)).
  x = attn_out.layer_norm(x +
                          attn_out.dropout(attn_out.dense(attention_->self(x, batch, allowed))));
  return mlp_out.layer_norm(x + mlp(x));
}

BertForMatrixRegressionImpl::BertForMatrixRegressionImpl(const BertOptions& o) : options_(o) {
  const int64_t h = o.model.hidden_size;
  auto bert = register_module("bert", std::make_shared<torch::nn::Module>());
  auto embeddings = bert->register_module("embeddings", std::make_shared<torch::nn::Module>());
  word_ = embeddings->register_module(
      "word_embeddings",
      torch::nn::Embedding(torch::nn::EmbeddingOptions(o.vocab_size, h).padding_idx(0)));
  position_ = embeddings->register_module("position_embeddings",
                                          torch::nn::Embedding(o.model.max_position_embeddings, h));
  token_type_ = embeddings->register_module("token_type_embeddings",
                                            torch::nn::Embedding(o.model.type_vocab_size, h));
  if (o.row_col_embeddings()) {
    row_ = embeddings->register_module("row_embeddings", torch::nn::Embedding(o.m + 1, h));
    col_ = embeddings->register_module("col_embeddings", torch::nn::Embedding(o.n + 1, h));
  }
  embeddings_ln_ = embeddings->register_module(
      "LayerNorm",
      torch::nn::LayerNorm(torch::nn::LayerNormOptions({h}).eps(o.model.layer_norm_eps)));
  embeddings_dropout_ =
      embeddings->register_module("dropout", torch::nn::Dropout(o.model.hidden_dropout_prob));
  auto encoder = bert->register_module("encoder", std::make_shared<torch::nn::Module>());
  layers_ = encoder->register_module("layer", torch::nn::ModuleList());
  for (int64_t i = 0; i < o.model.num_hidden_layers; ++i) layers_->push_back(BertLayer(o));
  if (o.pre_layer_norm()) {
    final_ln_ = encoder->register_module(
        "LayerNorm",
        torch::nn::LayerNorm(torch::nn::LayerNormOptions({h}).eps(o.model.layer_norm_eps)));
  }
  regressor_ = register_module("regressor", torch::nn::Linear(h, 1));

  // Row/column ids of each sequence position: 1-based for entries, 0 for [CLS], [SEP] and
  // [ROW_SEP].
  std::vector<int64_t> rows, cols;
  rows.push_back(0), cols.push_back(0);
  for (int i = 0; i < o.m; ++i) {
    if (i > 0 && o.row_sep) rows.push_back(0), cols.push_back(0);
    for (int j = 0; j < o.n; ++j) rows.push_back(i + 1), cols.push_back(j + 1);
  }
  rows.push_back(0), cols.push_back(0);
  row_ids_ = register_buffer("row_ids", torch::tensor(rows, torch::kInt64));
  col_ids_ = register_buffer("col_ids", torch::tensor(cols, torch::kInt64));
  InitWeights();
}

void BertForMatrixRegressionImpl::InitWeights() {
  // As HuggingFace's BertPreTrainedModel: N(0, initializer_range) weights, zero biases,
  // unit LayerNorms, a zero padding embedding.
  torch::NoGradGuard no_grad;
  const double std = options_.model.initializer_range;
  for (auto& module : modules(/*include_self=*/false)) {
    if (auto* linear = module->as<torch::nn::Linear>()) {
      torch::nn::init::normal_(linear->weight, 0.0, std);
      torch::nn::init::zeros_(linear->bias);
    } else if (auto* embedding = module->as<torch::nn::Embedding>()) {
      torch::nn::init::normal_(embedding->weight, 0.0, std);
    } else if (auto* ln = module->as<torch::nn::LayerNorm>()) {
      torch::nn::init::ones_(ln->weight);
      torch::nn::init::zeros_(ln->bias);
    }
  }
  word_->weight[0].zero_();
}

namespace {

// Gradient checkpointing of one encoder layer: forward runs without recording a graph and
// keeps only the layer's input and the random generator's state; backward restores that
// state, runs the layer's forward again with a graph (so dropout draws the same masks) and
// back-propagates through it, which also accumulates the layer's parameter gradients.
class RecomputedLayer : public torch::autograd::Function<RecomputedLayer> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, torch::Tensor x,
                               const torch::Tensor* allowed, int64_t batch, int64_t layer) {
    at::Generator generator = at::globalContext().defaultGenerator(x.device());
    {
      std::lock_guard<std::mutex> lock(generator.mutex());
      ctx->saved_data["rng"] = generator.get_state();
    }
    ctx->saved_data["batch"] = batch;
    ctx->saved_data["layer"] = layer;
    // The attention mask goes by pointer: autograd's apply() takes no undefined tensors.
    if (allowed->defined()) ctx->saved_data["allowed"] = *allowed;
    ctx->save_for_backward({x});
    torch::NoGradGuard no_grad;
    return reinterpret_cast<BertLayerImpl*>(layer)->forward(x, batch, *allowed);
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_outputs) {
    torch::Tensor x = ctx->get_saved_variables()[0].detach().requires_grad_(true);
    auto* layer = reinterpret_cast<BertLayerImpl*>(ctx->saved_data["layer"].toInt());
    at::Generator generator = at::globalContext().defaultGenerator(x.device());
    torch::Tensor resume;  // the generator's state now, put back after the recomputation
    {
      std::lock_guard<std::mutex> lock(generator.mutex());
      resume = generator.get_state();
      generator.set_state(ctx->saved_data["rng"].toTensor());
    }
    torch::Tensor out;
    {
      torch::AutoGradMode grad(true);
      const auto allowed = ctx->saved_data.find("allowed");
      out = layer->forward(
          x, ctx->saved_data["batch"].toInt(),
          allowed == ctx->saved_data.end() ? torch::Tensor() : allowed->second.toTensor());
    }
    {
      std::lock_guard<std::mutex> lock(generator.mutex());
      generator.set_state(resume);
    }
    torch::autograd::backward({out}, {grad_outputs[0]});
    return {x.grad(), torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

torch::Tensor BertForMatrixRegressionImpl::Encode(const torch::Tensor& input_ids,
                                                  const torch::Tensor& causal) {
  const int64_t l = input_ids.size(1);
  // Which keys each query may attend to: all of them, except those after it in a causal
  // sequence. Undefined (no mask at all, the fast path) when no sequence is causal.
  torch::Tensor allowed;
  if (causal.defined() && causal.any().item<bool>()) {
    torch::Tensor later =  // (L, L): the key comes after the query
        torch::ones({l, l}, input_ids.options().dtype(torch::kBool)).triu(1);
    allowed = (causal.to(input_ids.device()).view({-1, 1, 1, 1}) & later).logical_not();
  }
  auto positions = torch::arange(l, input_ids.options());
  torch::Tensor x = word_(input_ids) + position_(positions) +
                    token_type_->weight[0];  // token type 0 everywhere; (B, L, H)
  if (options_.row_col_embeddings()) {
    x = x + row_(row_ids_.slice(0, 0, l)) + col_(col_ids_.slice(0, 0, l));
  }
  // Activations stay 2-D, (B*L, H), so every Linear is one GEMM with its bias fused in.
  const int64_t b = input_ids.size(0);
  x = embeddings_dropout_(embeddings_ln_(x)).view({b * l, options_.model.hidden_size});
  const bool recompute =
      options_.gradient_checkpointing && is_training() && torch::GradMode::is_enabled();
  for (const auto& layer : *layers_) {
    BertLayerImpl* impl = layer->as<BertLayer>();
    x = recompute ? RecomputedLayer::apply(x, &allowed, b, reinterpret_cast<int64_t>(impl))
                  : impl->forward(x, b, allowed);
  }
  if (options_.pre_layer_norm()) x = final_ln_(x);
  return x.view({b, l, options_.model.hidden_size});  // (B, L, H)
}

torch::Tensor BertForMatrixRegressionImpl::forward(const torch::Tensor& input_ids,
                                                   const torch::Tensor& causal) {
  return regressor_(Encode(input_ids, causal));  // (B, L, H) -> (B, L, 1)
}

torch::Tensor MaskedSquaredErrorSum(const torch::Tensor& logits, const torch::Tensor& labels,
                                    const torch::Tensor& weights) {
  torch::Tensor valid = ~torch::isnan(labels);  // (B, L)
  torch::Tensor diff = logits.squeeze(-1).to(torch::kFloat32) - torch::nan_to_num(labels, 0.0);
  torch::Tensor errors = diff.square() * valid;
  return (weights.defined() ? errors * weights : errors).sum();
}

torch::Tensor MaskedMseLoss(const torch::Tensor& logits, const torch::Tensor& labels) {
  return MaskedSquaredErrorSum(logits, labels) / (~torch::isnan(labels)).sum().clamp_min(1);
}

}  // namespace matbert
