// Unit tests of the trainer's parts that need no training run: collator, loss, learning
// rate schedule, safetensors, ALS and soft-impute baselines, checkpoint lookup.
#include <torch/torch.h>

#include <cmath>
#include <filesystem>
#include <map>
#include <set>

#include "common/file_util.h"
#include "gtest/gtest.h"
#include "worker/data/dataset_generator.h"
#include "worker/data/matrix_dataset.h"
#include "worker/data/matrix_generator.h"
#include "worker/data/random.h"
#include "worker/train/als_baseline.h"
#include "worker/train/batch_source.h"
#include "worker/train/bert_model.h"
#include "worker/train/checkpoint.h"
#include "worker/train/collator.h"
#include "worker/train/lamb.h"
#include "worker/train/lr_schedule.h"
#include "worker/train/muon.h"
#include "worker/train/nccl_comm.h"
#include "worker/train/safetensors.h"
#include "worker/train/soft_impute.h"

namespace matbert {
namespace {

JobSpec SmallSpec() {
  auto spec = ParseJobSpec(
      "[model]\nhidden_size = 16\nnum_hidden_layers = 1\nnum_attention_heads = 2\n"
      "intermediate_size = 32\nmax_position_embeddings = 128\n"
      "[matrix]\nm = 10\nn = 10\nr = 2\nrow_sep = true\nmask_prob = 0.3\n"
      "[training]\nbatch_size = 64\nsteps = 10\nwarmup_steps = 0\n",
      "small.toml", ".");
  EXPECT_TRUE(spec.ok()) << spec.status();
  return *spec;
}

TEST(CollatorTest, MasksOnlyEntriesAndNaNsExactlyWhereSpecified) {
  for (bool masked_only : {true, false}) {
    JobSpec spec = SmallSpec();
    spec.matrix.loss_masked_only = masked_only;
    auto source = MakeBatchSource(spec, 0, 1);
    ASSERT_TRUE(source.ok());
    auto batch = (*source)->Get({1, 0});
    ASSERT_TRUE(batch.ok());
    const int64_t b = batch->input_ids.size(0), l = batch->input_ids.size(1);
    ASSERT_EQ(l, 10 * 10 + 2 + 9);
    const auto ids = batch->input_ids.accessor<int64_t, 2>();
    const auto labels = batch->labels.accessor<float, 2>();
    const auto masked = batch->masked.accessor<bool, 2>();
    const auto values = batch->values.accessor<double, 2>();
    int64_t entries = 0, masks = 0;
    for (int64_t i = 0; i < b; ++i) {
      for (int64_t j = 0; j < l; ++j) {
        const bool special = std::isnan(values[i][j]);
        const bool expect_special = j == 0 || j == l - 1 || (j - 1) % 11 == 10;
        ASSERT_EQ(special, expect_special) << j;
        if (special) {
          EXPECT_TRUE(std::isnan(labels[i][j]));
          EXPECT_FALSE(masked[i][j]);
          EXPECT_NE(ids[i][j], MatrixTokenizer::kMaskId);
          continue;
        }
        ++entries;
        EXPECT_EQ(ids[i][j] == MatrixTokenizer::kMaskId, masked[i][j]);
        if (masked[i][j]) {
          ++masks;
          EXPECT_EQ(labels[i][j], static_cast<float>(values[i][j]));
        } else if (masked_only) {
          EXPECT_TRUE(std::isnan(labels[i][j]));
        } else {
          EXPECT_EQ(labels[i][j], static_cast<float>(values[i][j]));
        }
      }
    }
    // 6400 entries at p = 0.3: the standard deviation of the fraction is 0.0057.
    EXPECT_NEAR(static_cast<double>(masks) / entries, 0.3, 0.03);
    EXPECT_EQ(batch->attention_mask.sum().item<int64_t>(), b * l);
  }
}

TEST(CollatorTest, BertStrategyReplacesSomeMasksWithRandomOrKeptTokens) {
  JobSpec spec = SmallSpec();
  spec.matrix.mask_strategy = "bert";
  auto batch = (*MakeBatchSource(spec, 0, 1))->Get({1, 0});
  ASSERT_TRUE(batch.ok());
  const torch::Tensor masked = batch->masked;
  const double as_mask = (batch->input_ids.masked_select(masked) == MatrixTokenizer::kMaskId)
                             .to(torch::kFloat64)
                             .mean()
                             .item<double>();
  EXPECT_NEAR(as_mask, 0.8, 0.05);
  EXPECT_GT(masked.sum().item<int64_t>(), 1500);
}

TEST(CollatorTest, TheMaskScheduleRealisesItsFractionAtEachStep) {
  // 0.1 at step 1 to 0.5 at step 10 (training.steps): 0.1 + 0.4 (s - 1) / 9 at step s. Each
  // batch has 6400 entries, so the realised fraction is within 0.03 (≥ 4 standard deviations).
  JobSpec spec = SmallSpec();
  spec.matrix.mask_prob_start = 0.1;
  spec.matrix.mask_prob_end = 0.5;
  auto source = MakeBatchSource(spec, 0, 1);
  ASSERT_TRUE(source.ok());
  for (int64_t step : {1, 4, 10}) {
    auto batch = (*source)->Get({step, 0});
    ASSERT_TRUE(batch.ok());
    const double entries =
        static_cast<double>((~torch::isnan(batch->values)).sum().item<int64_t>());
    const double fraction = static_cast<double>(batch->masked.sum().item<int64_t>()) / entries;
    EXPECT_NEAR(fraction, 0.1 + 0.4 * static_cast<double>(step - 1) / 9, 0.03) << step;
  }
  // Evaluation masks at the end of the schedule.
  const std::vector<TrainBatch> eval = MakeEvalBatches(spec);
  double masked = 0, entries = 0;
  for (const TrainBatch& b : eval) {
    masked += static_cast<double>(b.masked.sum().item<int64_t>());
    entries += static_cast<double>((~torch::isnan(b.values)).sum().item<int64_t>());
  }
  EXPECT_NEAR(masked / entries, 0.5, 0.05);
}

TEST(CollatorTest, BertReplacementAndKeepProbabilitiesAreConfigurable) {
  JobSpec spec = SmallSpec();
  spec.matrix.mask_strategy = "bert";
  spec.matrix.mask_random_prob = 0.0;
  spec.matrix.mask_keep_prob = 0.5;  // half [MASK], half unchanged, no random bins
  auto batch = (*MakeBatchSource(spec, 0, 1))->Get({1, 0});
  ASSERT_TRUE(batch.ok());
  const torch::Tensor masked = batch->masked;
  const torch::Tensor shown = batch->input_ids.masked_select(masked);
  const double as_mask =
      (shown == MatrixTokenizer::kMaskId).to(torch::kFloat64).mean().item<double>();
  EXPECT_NEAR(as_mask, 0.5, 0.05);
  // Every masked position that is not [MASK] kept its own token (none was randomised): the
  // unmasked-source ids of the same batch, collated without masking, agree there.
  spec.matrix.mask_prob = 1e-9;
  auto plain = (*MakeBatchSource(spec, 0, 1))->Get({1, 0});
  const torch::Tensor kept = masked & (batch->input_ids != MatrixTokenizer::kMaskId);
  EXPECT_TRUE(
      torch::equal(batch->input_ids.masked_select(kept), plain->input_ids.masked_select(kept)));
}

TEST(CollatorTest, BatchesAreAPureFunctionOfTheirKey) {
  JobSpec spec = SmallSpec();
  auto a = MakeBatchSource(spec, 0, 2);
  auto b = MakeBatchSource(spec, 0, 2);
  auto rank1 = MakeBatchSource(spec, 1, 2);
  auto x = (*a)->Get({3, 0});
  (void)(*b)->Get({1, 0});
  auto y = (*b)->Get({3, 0});
  auto z = (*rank1)->Get({3, 0});
  EXPECT_TRUE(torch::equal(x->input_ids, y->input_ids));
  EXPECT_FALSE(torch::equal(x->input_ids, z->input_ids));
}

TEST(LossTest, EqualsHandComputedMse) {
  const float nan = std::nanf("");
  torch::Tensor logits = torch::tensor({1.0f, 2.0f, 3.0f, 4.0f, 0.5f, -1.0f}).view({2, 3, 1});
  torch::Tensor labels = torch::tensor({nan, 1.0f, 5.0f, 4.0f, nan, 1.0f}).view({2, 3});
  // Valid pairs: (2,1) (3,5) (4,4) (-1,1): squared errors 1, 4, 0, 4.
  EXPECT_FLOAT_EQ(MaskedMseLoss(logits, labels).item<float>(), 9.0f / 4);
  // Weighted: 2·1 + 0.5·4 + 3·0 + 0.25·4 (the NaN positions' weights do not count).
  torch::Tensor weights = torch::tensor({7.0f, 2.0f, 0.5f, 3.0f, 9.0f, 0.25f}).view({2, 3});
  EXPECT_FLOAT_EQ(MaskedSquaredErrorSum(logits, labels, weights).item<float>(), 5.0f);
}

TEST(CollatorTest, DiffusionDrawsARatioPerMatrixAndWeighsItsMasksByItsInverse) {
  JobSpec spec = SmallSpec();
  spec.matrix.objective = "diffusion";
  spec.matrix.loss_masked_only = false;  // diffusion's loss is on masked entries regardless
  auto batch = (*MakeBatchSource(spec, 0, 1))->Get({1, 0});
  ASSERT_TRUE(batch.ok());
  const int64_t b = batch->input_ids.size(0);
  const auto masked = batch->masked.accessor<bool, 2>();
  const auto weights = batch->loss_weights.accessor<float, 2>();
  const auto labels = batch->labels.accessor<float, 2>();
  double expected_masks = 0, masks = 0;
  std::set<float> ratios;
  for (int64_t i = 0; i < b; ++i) {
    float row_weight = 0;
    for (int64_t j = 0; j < batch->input_ids.size(1); ++j) {
      if (!masked[i][j]) {
        EXPECT_EQ(weights[i][j], 0.0f);
        EXPECT_TRUE(std::isnan(labels[i][j]));
        continue;
      }
      if (row_weight == 0) row_weight = weights[i][j];
      EXPECT_EQ(weights[i][j], row_weight);  // one ratio per matrix
      ++masks;
    }
    if (row_weight > 0) {
      EXPECT_GE(row_weight, 1.0f);
      ratios.insert(row_weight);
      expected_masks += 100.0 / row_weight;  // 100 entries masked with probability t = 1/w
    }
  }
  EXPECT_GT(ratios.size(), 50u);  // the ratios differ from matrix to matrix
  // Σ masks ≈ Σ 100 t over the rows: 64 rows of 100 Bernoulli draws (σ ≤ 40).
  EXPECT_NEAR(masks, expected_masks, 200);
  EXPECT_EQ(batch->loss_denominator, 64 * 100);  // every entry
  // Evaluation (step 0) masks at mask_prob with unit weights, as for "mlm".
  const std::vector<TrainBatch> eval = MakeEvalBatches(spec);
  EXPECT_TRUE(torch::equal(eval[0].loss_weights.masked_select(eval[0].masked),
                           torch::ones({eval[0].masked.sum().item<int64_t>()})));
}

TEST(CollatorTest, HybridReadsAFractionCausallyLabelledWithTheNextEntry) {
  JobSpec spec = SmallSpec();  // 10x10 with row separators: [ROW_SEP] predicts the next row
  spec.matrix.objective = "hybrid";
  spec.matrix.causal_fraction = 0.5;
  spec.matrix.loss_masked_only = true;
  auto batch = (*MakeBatchSource(spec, 0, 1))->Get({1, 0});
  ASSERT_TRUE(batch.ok());
  const int64_t b = batch->input_ids.size(0), l = batch->input_ids.size(1);
  const auto ids = batch->input_ids.accessor<int64_t, 2>();
  const auto labels = batch->labels.accessor<float, 2>();
  const auto values = batch->values.accessor<double, 2>();
  const auto masked = batch->masked.accessor<bool, 2>();
  const auto weights = batch->loss_weights.accessor<float, 2>();
  const auto causal = batch->causal.accessor<bool, 1>();
  int64_t causal_rows = 0, labelled = 0;
  double masks = 0;
  for (int64_t i = 0; i < b; ++i) {
    int64_t row_labels = 0;
    for (int64_t j = 0; j < l; ++j) {
      if (!std::isnan(labels[i][j])) {
        ++row_labels;
        EXPECT_EQ(weights[i][j], 1.0f);
      }
      if (!causal[i]) continue;
      EXPECT_FALSE(masked[i][j]);
      EXPECT_NE(ids[i][j], MatrixTokenizer::kMaskId);
      const bool next_is_entry = j + 1 < l && !std::isnan(values[i][j + 1]);
      if (next_is_entry) {
        EXPECT_EQ(labels[i][j], static_cast<float>(values[i][j + 1])) << i << "," << j;
      } else {
        EXPECT_TRUE(std::isnan(labels[i][j])) << i << "," << j;
      }
    }
    if (causal[i]) {
      ++causal_rows;
      EXPECT_EQ(row_labels, 100);              // every entry, predicted from the position before it
      EXPECT_FALSE(std::isnan(labels[i][0]));  // [CLS] predicts the first entry
    } else {
      masks += row_labels;  // masked entries only, as "mlm" with loss_masked_only
    }
    labelled += row_labels;
  }
  // 64 fair draws: 32 ± 4 causal rows; the others mask 30% of their 100 entries.
  EXPECT_GT(causal_rows, 16);
  EXPECT_LT(causal_rows, 48);
  EXPECT_NEAR(masks / (100.0 * (b - causal_rows)), 0.3, 0.05);
  EXPECT_EQ(batch->loss_denominator, labelled);

  // The loss by hand: squared errors against the next entries' values and the masked ones'.
  const torch::Tensor logits = torch::randn({b, l, 1});
  const auto out = logits.accessor<float, 3>();
  double expected = 0;
  for (int64_t i = 0; i < b; ++i) {
    for (int64_t j = 0; j < l; ++j) {
      if (causal[i] && j + 1 < l && !std::isnan(values[i][j + 1])) {
        expected += std::pow(out[i][j][0] - static_cast<float>(values[i][j + 1]), 2);
      } else if (!causal[i] && masked[i][j]) {
        expected += std::pow(out[i][j][0] - static_cast<float>(values[i][j]), 2);
      }
    }
  }
  EXPECT_NEAR(MaskedSquaredErrorSum(logits, batch->labels, batch->loss_weights).item<float>(),
              expected, 1e-3 * expected);
  // Evaluation reads every matrix both ways.
  for (const TrainBatch& eval : MakeEvalBatches(spec)) EXPECT_FALSE(eval.causal.any().item<bool>());
}

TEST(BertModelTest, CausalSequencesSeeOnlyThemselvesAndEarlierPositions) {
  JobSpec spec = SmallSpec();
  spec.model.num_hidden_layers = 2;
  torch::manual_seed(5);
  BertForMatrixRegression model(BertOptions::FromSpec(spec));
  model->eval();
  torch::NoGradGuard no_grad;
  const int64_t l = 40, cut = 17;
  const torch::Tensor ids = torch::randint(4, 20, {2, l}, torch::kLong);
  torch::Tensor changed = ids.clone();
  changed.slice(1, cut + 1) = torch::randint(4, 20, {2, l - cut - 1}, torch::kLong);
  const torch::Tensor causal = torch::tensor({true, false});
  const torch::Tensor before = model->forward(ids, causal), after = model->forward(changed, causal);
  // Row 0 (causal): positions up to `cut` do not see the changed tokens after it.
  EXPECT_TRUE(torch::equal(before[0].slice(0, 0, cut + 1), after[0].slice(0, 0, cut + 1)));
  EXPECT_FALSE(torch::allclose(before[0].slice(0, cut + 1), after[0].slice(0, cut + 1)));
  // Row 1 (both ways): every position sees them, and it equals the model without a mask.
  EXPECT_FALSE(torch::allclose(before[1].slice(0, 0, cut + 1), after[1].slice(0, 0, cut + 1)));
  EXPECT_TRUE(torch::allclose(before[1], model->forward(ids)[1], 1e-5, 1e-6));
  // And the mask matters for row 0: read both ways, its outputs differ.
  EXPECT_FALSE(torch::allclose(model->forward(ids)[0], before[0]));
}

// LAMB written out on plain doubles, one tensor at a time, as the paper states it.
struct ReferenceLamb {
  double lr, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay;
  std::vector<double> m, v;
  int step = 0;
  void Step(std::vector<double>& w, const std::vector<double>& g) {
    if (m.empty()) m.assign(w.size(), 0), v.assign(w.size(), 0);
    ++step;
    std::vector<double> u(w.size());
    double wn = 0, un = 0;
    for (size_t i = 0; i < w.size(); ++i) {
      m[i] = beta1 * m[i] + (1 - beta1) * g[i];
      v[i] = beta2 * v[i] + (1 - beta2) * g[i] * g[i];
      const double mh = m[i] / (1 - std::pow(beta1, step)), vh = v[i] / (1 - std::pow(beta2, step));
      u[i] = mh / (std::sqrt(vh) + eps) + weight_decay * w[i];
      wn += w[i] * w[i];
      un += u[i] * u[i];
    }
    const double trust = wn > 0 && un > 0 ? std::sqrt(wn) / std::sqrt(un) : 1.0;
    for (size_t i = 0; i < w.size(); ++i) w[i] -= lr * trust * u[i];
  }
};

TEST(LambTest, ThreeStepsMatchTheReferenceForEachGroup) {
  // Two tensors in two groups (with and without weight decay), gradients that change each
  // step; float64 so that the comparison is to rounding.
  const std::vector<double> w0 = {0.5, -1.0, 2.0, 0.25}, z0 = {0.0, 0.0, 0.0};
  torch::Tensor w = torch::tensor(w0, torch::kFloat64).requires_grad_(true);
  torch::Tensor z = torch::tensor(z0, torch::kFloat64).requires_grad_(true);  // norm 0: trust 1
  auto options = [](double wd) {
    auto o = std::make_unique<torch::optim::AdamWOptions>(0.1);
    o->weight_decay(wd);
    return o;
  };
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(std::vector<torch::Tensor>{w}, options(0.01));
  groups.emplace_back(std::vector<torch::Tensor>{z}, options(0.0));
  Lamb lamb(std::move(groups));
  ReferenceLamb ref_w{.lr = 0.1, .weight_decay = 0.01}, ref_z{.lr = 0.1, .weight_decay = 0.0};
  std::vector<double> want_w = w0, want_z = z0;
  for (int step = 1; step <= 3; ++step) {
    std::vector<double> gw = {0.1 * step, -0.2, 0.3 / step, 1.0};
    std::vector<double> gz = {1.0, -0.5 * step, 0.25};
    w.mutable_grad() = torch::tensor(gw, torch::kFloat64);
    z.mutable_grad() = torch::tensor(gz, torch::kFloat64);
    lamb.step();
    ref_w.Step(want_w, gw);
    ref_z.Step(want_z, gz);
    for (size_t i = 0; i < want_w.size(); ++i) {
      EXPECT_NEAR(w[i].item<double>(), want_w[i], 1e-12) << "step " << step;
    }
    for (size_t i = 0; i < want_z.size(); ++i) {
      EXPECT_NEAR(z[i].item<double>(), want_z[i], 1e-12) << "step " << step;
    }
  }
  EXPECT_GT(std::abs(w[0].item<double>() - w0[0]), 1e-3);  // it moved
}

// Muon for one matrix written out on plain doubles: Nesterov momentum, five Newton–Schulz
// iterations on the wide orientation, decoupled weight decay, the max(1, rows/cols)^½ scale.
using Matrix = std::vector<std::vector<double>>;
Matrix Product(const Matrix& x, const Matrix& y) {
  Matrix out(x.size(), std::vector<double>(y[0].size(), 0.0));
  for (size_t i = 0; i < x.size(); ++i)
    for (size_t k = 0; k < y.size(); ++k)
      for (size_t j = 0; j < y[0].size(); ++j) out[i][j] += x[i][k] * y[k][j];
  return out;
}
Matrix Transposed(const Matrix& x) {
  Matrix out(x[0].size(), std::vector<double>(x.size()));
  for (size_t i = 0; i < x.size(); ++i)
    for (size_t j = 0; j < x[0].size(); ++j) out[j][i] = x[i][j];
  return out;
}
Matrix ReferenceNewtonSchulz(Matrix d) {
  const bool tall = d.size() > d[0].size();
  if (tall) d = Transposed(d);
  double norm = 0;
  for (const auto& row : d)
    for (double v : row) norm += v * v;
  for (auto& row : d)
    for (double& v : row) v /= std::sqrt(norm) + 1e-7;
  for (int it = 0; it < 5; ++it) {
    const Matrix gram = Product(d, Transposed(d));
    const Matrix gram2 = Product(gram, gram);
    Matrix poly = gram;
    for (size_t i = 0; i < gram.size(); ++i)
      for (size_t j = 0; j < gram.size(); ++j)
        poly[i][j] = -4.7750 * gram[i][j] + 2.0315 * gram2[i][j];
    const Matrix px = Product(poly, d);
    for (size_t i = 0; i < d.size(); ++i)
      for (size_t j = 0; j < d[0].size(); ++j) d[i][j] = 3.4445 * d[i][j] + px[i][j];
  }
  return tall ? Transposed(d) : d;
}

TEST(MuonTest, MatricesFollowTheReferenceAndTheRestStepsAsAdamW) {
  const Matrix w0 = {{0.5, -1.0, 0.25}, {2.0, 0.1, -0.3}, {0.0, 1.5, 0.7}, {-0.2, 0.4, 1.0}};
  torch::Tensor w = torch::empty({4, 3}, torch::kFloat64);
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 3; ++j) w[i][j] = w0[i][j];
  w.requires_grad_(true);
  torch::Tensor bias = torch::tensor({0.1, -0.1}, torch::kFloat64).requires_grad_(true);
  torch::Tensor bias_adamw = bias.detach().clone().requires_grad_(true);
  auto options = [](double lr, double wd) {
    auto o = std::make_unique<torch::optim::AdamWOptions>(lr);
    o->weight_decay(wd);
    return o;
  };
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(std::vector<torch::Tensor>{w}, options(0.02, 0.1));
  groups.emplace_back(std::vector<torch::Tensor>{bias}, options(1e-3, 0.0));
  Muon muon(std::move(groups), 1);
  std::vector<torch::optim::OptimizerParamGroup> plain;
  plain.emplace_back(std::vector<torch::Tensor>{bias_adamw}, options(1e-3, 0.0));
  torch::optim::AdamW adamw(std::move(plain));

  Matrix want = w0, buffer(4, std::vector<double>(3, 0.0));
  for (int step = 1; step <= 3; ++step) {
    Matrix g(4, std::vector<double>(3));
    for (int i = 0; i < 4; ++i)
      for (int j = 0; j < 3; ++j) g[i][j] = std::sin(1.0 + i * 3 + j + step);
    torch::Tensor grad = torch::empty({4, 3}, torch::kFloat64);
    for (int i = 0; i < 4; ++i)
      for (int j = 0; j < 3; ++j) grad[i][j] = g[i][j];
    w.mutable_grad() = grad;
    bias.mutable_grad() = torch::tensor({0.3 * step, -0.2}, torch::kFloat64);
    bias_adamw.mutable_grad() = bias.grad().clone();
    muon.step();
    adamw.step();
    Matrix direction = g;
    for (int i = 0; i < 4; ++i)
      for (int j = 0; j < 3; ++j) {
        buffer[i][j] = 0.95 * buffer[i][j] + g[i][j];
        direction[i][j] = g[i][j] + 0.95 * buffer[i][j];
      }
    const Matrix x = ReferenceNewtonSchulz(direction);
    for (int i = 0; i < 4; ++i)
      for (int j = 0; j < 3; ++j) {
        want[i][j] = want[i][j] * (1 - 0.02 * 0.1) - 0.02 * std::sqrt(4.0 / 3.0) * x[i][j];
        EXPECT_NEAR(w[i][j].item<double>(), want[i][j], 1e-12) << "step " << step;
      }
    EXPECT_TRUE(torch::allclose(bias, bias_adamw, 0, 1e-15)) << "step " << step;
    EXPECT_TRUE(w.grad().defined());  // handed back after the step
  }
  // Newton–Schulz brings the singular values near 1 (within its quintic's band).
  const torch::Tensor s = std::get<1>(
      torch::linalg_svd(NewtonSchulzOrthogonalise(torch::randn({16, 8}, torch::kFloat64)), false));
  EXPECT_GT(s.min().item<double>(), 0.6);
  EXPECT_LT(s.max().item<double>(), 1.3);
}

TEST(LrScheduleTest, WarmupDecayCooldown) {
  TrainingSection t;
  t.lr = 1.0;
  t.steps = 100;
  t.warmup_steps = 10;
  t.min_lr_ratio = 0.1;
  t.schedule = "linear";
  EXPECT_DOUBLE_EQ(LearningRate(t, 1), 0.1);
  EXPECT_DOUBLE_EQ(LearningRate(t, 10), 1.0);
  EXPECT_DOUBLE_EQ(LearningRate(t, 55), 0.55);
  EXPECT_DOUBLE_EQ(LearningRate(t, 100), 0.1);
  t.schedule = "cosine";
  EXPECT_NEAR(LearningRate(t, 55), 0.55, 1e-12);  // the midpoint of the cosine
  EXPECT_NEAR(LearningRate(t, 100), 0.1, 1e-12);
  t.schedule = "constant";
  t.cooldown_steps = 20;
  EXPECT_DOUBLE_EQ(LearningRate(t, 80), 1.0);
  EXPECT_DOUBLE_EQ(LearningRate(t, 90), 0.5);
  EXPECT_DOUBLE_EQ(LearningRate(t, 100), 0.0);
}

TEST(SafetensorsTest, RoundTripAndCorruption) {
  const std::string path = ::testing::TempDir() + "/t.safetensors";
  torch::Tensor a = torch::randn({3, 5});
  torch::Tensor b = torch::arange(7, torch::kInt64);
  ASSERT_TRUE(WriteSafetensors(path, {{"a", a}, {"b", b}}, {{"k", "v"}}).ok());
  auto file = ReadSafetensors(path);
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_TRUE(torch::equal(file->tensors["a"], a));
  EXPECT_TRUE(torch::equal(file->tensors["b"], b));
  EXPECT_EQ(file->metadata.at("k"), "v");
  std::string bytes = *ReadFileToString(path);
  ASSERT_TRUE(WriteFileAtomically(path, bytes.substr(0, bytes.size() - 4)).ok());
  auto truncated = ReadSafetensors(path);
  ASSERT_FALSE(truncated.ok());
  EXPECT_NE(std::string(truncated.status().message()).find(path + ": tensor b: data_offsets"),
            std::string::npos)
      << truncated.status();
  ASSERT_TRUE(WriteFileAtomically(path, "\x05\0\0\0\0\0\0\0{oops").ok());
  EXPECT_FALSE(ReadSafetensors(path).ok());
}

// A 12×10 rank-2 matrix and which of its entries are seen (about 80%), for the baselines.
struct SeenMatrix {
  std::vector<double> m = std::vector<double>(120);
  std::vector<uint8_t> observed = std::vector<uint8_t>(120);
};
SeenMatrix MostlySeenRankTwo() {
  SeenMatrix out;
  MatrixGenerator({12, 10, 2}, 3).Generate(0, out.m);
  RandomStream rng(9, 0);
  for (int k = 0; k < 120; ++k) out.observed[k] = rng.NextUniform() < 0.8;
  return out;
}

TEST(AlsTest, RecoversALowRankMatrixFromMostEntries) {
  const auto [m, observed] = MostlySeenRankTwo();
  std::vector<double> prediction(120);
  AlsComplete(m, observed, 12, 10, 2, prediction, 100, 1e-6);
  double err = 0;
  for (int k = 0; k < 120; ++k) err = std::max(err, std::abs(prediction[k] - m[k]));
  EXPECT_LT(err, 1e-3);
}

TEST(SoftImputeTest, FullyObservedItShrinksTheSingularValuesByTheLastLambda) {
  // diag(5, 2, 0), every entry seen: each iteration is S_λ(M), so the result is diag(5 - λ,
  // 2 - λ, 0) for the last λ = σ₁ · final_lambda = 0.05; a second matrix, 2 M, in the same
  // call scales its own λ (0.1).
  std::vector<double> values = {5, 0, 0, 0, 2, 0, 0, 0, 0};
  for (int k = 0; k < 9; ++k) values.push_back(2 * values[k]);
  const std::vector<uint8_t> observed(18, 1);
  std::vector<double> completed(18);
  SoftImpute(values, observed, 2, 3, 3, completed,
             {.stages = 2, .iterations = 3, .final_lambda = 0.01});
  const std::vector<double> want = {4.95, 0, 0, 0, 1.95, 0, 0, 0, 0, 9.9, 0, 0, 0, 3.9, 0, 0, 0, 0};
  for (int k = 0; k < 18; ++k) EXPECT_NEAR(completed[k], want[k], 1e-12) << k;
}

TEST(SoftImputeTest, FillsMissingEntriesOfALowRankMatrixFarBetterThanTheirMean) {
  const auto [m, observed] = MostlySeenRankTwo();
  std::vector<double> completed(120);
  double sum = 0;
  int seen = 0;
  for (int k = 0; k < 120; ++k) {
    if (observed[k]) sum += m[k], ++seen;
  }
  std::vector<double> shown = m;
  for (int k = 0; k < 120; ++k) shown[k] = observed[k] ? m[k] : 1e6;  // must not be read
  SoftImpute(shown, observed, 1, 12, 10, completed);
  double soft_sq = 0, mean_sq = 0;
  int missing = 0;
  for (int k = 0; k < 120; ++k) {
    if (observed[k]) continue;
    soft_sq += (completed[k] - m[k]) * (completed[k] - m[k]);
    mean_sq += (sum / seen - m[k]) * (sum / seen - m[k]);
    ++missing;
  }
  ASSERT_GT(missing, 10);
  EXPECT_LT(std::sqrt(soft_sq / missing), 0.5 * std::sqrt(mean_sq / missing));
}

// Gradient checkpointing recomputes each layer in backward with the same dropout draws: the
// loss and every gradient equal those of the plain model with the same weights.
TEST(GradientCheckpointingTest, SameLossAndGradientsWithDropoutOn) {
  JobSpec spec = SmallSpec();
  spec.model.hidden_dropout_prob = 0.2;
  spec.model.attention_probs_dropout_prob = 0.2;
  spec.model.num_hidden_layers = 3;
  BertOptions plain_options = BertOptions::FromSpec(spec);
  BertOptions recomputed_options = plain_options;
  recomputed_options.gradient_checkpointing = true;
  torch::manual_seed(3);
  BertForMatrixRegression plain(plain_options);
  BertForMatrixRegression recomputed(recomputed_options);
  {
    torch::NoGradGuard no_grad;
    auto from = plain->named_parameters();
    for (auto& p : recomputed->named_parameters()) p.value().copy_(from[p.key()]);
  }
  const int64_t l = 60;  // any length within max_position_embeddings
  const torch::Tensor ids = torch::randint(4, 20, {4, l}, torch::kLong);
  const torch::Tensor target = torch::randn({4, l, 1});
  const torch::Tensor causal = torch::tensor({false, true, false, true});  // hybrid's masks too
  std::vector<torch::Tensor> losses;
  for (BertForMatrixRegression* model : {&plain, &recomputed}) {
    (*model)->train();
    torch::manual_seed(11);  // the same dropout draws for both
    torch::Tensor loss = ((*model)->forward(ids, causal) - target).pow(2).mean();
    loss.backward();
    losses.push_back(loss.detach());
  }
  EXPECT_EQ(losses[0].item<float>(), losses[1].item<float>());
  auto expected = plain->named_parameters();
  int compared = 0;
  for (const auto& p : recomputed->named_parameters()) {
    ASSERT_TRUE(p.value().grad().defined()) << p.key();
    EXPECT_TRUE(torch::allclose(p.value().grad(), expected[p.key()].grad(), 1e-5, 1e-7))
        << p.key() << ": max difference "
        << (p.value().grad() - expected[p.key()].grad()).abs().max().item<float>();
    ++compared;
  }
  EXPECT_GT(compared, 10);
  // The recomputing model's graph goes through the recomputed layers, not the plain ones.
  const torch::Tensor hidden = recomputed->Encode(ids);  // (B, L, H), a view of the last layer's
  const std::string last = hidden.grad_fn()->next_edges()[0].function->name();
  EXPECT_NE(last.find("RecomputedLayer"), std::string::npos) << last;
  // Without dropout draws to repeat the test would pass trivially: check they mattered.
  torch::manual_seed(12);
  torch::Tensor other = (plain->forward(ids, causal) - target).pow(2).mean();
  EXPECT_NE(other.item<float>(), losses[0].item<float>());
}

TEST(CheckpointTest, MissingCheckpointsAreErrorsNamingTheDirectory) {
  const std::string dir = ::testing::TempDir() + "/ckpt_test";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir + "/.step-0000009.tmp-1");  // a staging dir
  auto latest = ResolveCheckpoint(dir, -1);
  EXPECT_EQ(latest.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(std::string(latest.status().message()).find(dir + " holds no checkpoint"),
            std::string::npos);
  std::filesystem::create_directories(dir + "/" + CheckpointDirName(4));
  std::filesystem::create_directories(dir + "/" + CheckpointDirName(12));
  EXPECT_EQ(*ResolveCheckpoint(dir, -1), dir + "/step-0000012");
  auto missing = ResolveCheckpoint(dir, 7);
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(std::string(missing.status().message()).find("(have: 4, 12)"), std::string::npos);

  JobSpec spec = SmallSpec();
  BertForMatrixRegression model(BertOptions::FromSpec(spec));
  auto loaded = LoadCheckpoint(dir + "/step-0000012", model, nullptr);
  ASSERT_FALSE(loaded.ok());
  EXPECT_NE(std::string(loaded.status().message()).find("step-0000012/trainer_state.json"),
            std::string::npos)
      << loaded.status();
}

}  // namespace
}  // namespace matbert

namespace matbert {
namespace {

// The NCCL path is compiled wherever CUDA and NCCL are installed; on a host without a GPU
// it must fail cleanly, naming CUDA or NCCL, rather than crash.
TEST(NcclCommTest, FailsCleanlyWithoutAGpu) {
  if (!NcclCompiledIn()) {
    EXPECT_EQ(NcclComm::NewUniqueId().status().code(), absl::StatusCode::kUnimplemented);
    return;
  }
  auto id = NcclComm::NewUniqueId();
  if (!id.ok()) {
    EXPECT_NE(std::string(id.status().message()).find("NCCL"), std::string::npos) << id.status();
    return;
  }
  EXPECT_EQ(id->size(), 128u);
  auto comm = NcclComm::Create(0, 1, 0, *id);
  if (!comm.ok()) {
    const std::string message(comm.status().message());
    EXPECT_TRUE(message.find("CUDA") != std::string::npos ||
                message.find("NCCL") != std::string::npos)
        << message;
  }
}

}  // namespace
}  // namespace matbert

namespace matbert {
namespace {

// One epoch of an offline dataset visits every row exactly once, in a shuffled order.
TEST(OfflineSourceTest, AnEpochIsAPermutationOfTheRows) {
  GenerateOptions gen;
  gen.shape = {4, 3, 2};
  gen.n_samples = 1250;  // 2 shards: batches of 625 rows
  gen.shards = 2;
  gen.output_dir = ::testing::TempDir() + "offline_source_test";
  gen.overwrite = true;
  gen.progress = ProgressBar::Mode::kQuiet;
  ASSERT_TRUE(GenerateDataset(gen).ok());
  JobSpec spec = SmallSpec();
  spec.matrix.m = 4;
  spec.matrix.n = 3;
  spec.matrix.row_sep = false;
  spec.matrix.dataset = gen.output_dir;
  spec.training.batch_size = 50;
  auto source = MakeBatchSource(spec, 0, 1);
  ASSERT_TRUE(source.ok()) << source.status();
  std::map<double, int> seen;  // first entry of each row -> times seen
  std::vector<double> order;
  for (int64_t step = 1; step <= 25; ++step) {
    auto batch = (*source)->Get({step, 0});
    ASSERT_TRUE(batch.ok()) << batch.status();
    for (int64_t i = 0; i < 50; ++i) {
      const double first = batch->values[i][1].item<double>();
      ++seen[first];
      order.push_back(first);
    }
  }
  auto dataset = MatrixDataset::Open(gen.output_dir);
  ASSERT_TRUE(dataset.ok());
  std::vector<double> in_file;
  ASSERT_TRUE(dataset
                  ->ForEachRow([&](int64_t, std::span<const int32_t>, std::span<const double> v) {
                    in_file.push_back(v[1]);
                  })
                  .ok());
  ASSERT_EQ(seen.size(), 1250u);
  for (double v : in_file) EXPECT_EQ(seen[v], 1);
  EXPECT_NE(order, in_file);  // shuffled
}

}  // namespace
}  // namespace matbert
