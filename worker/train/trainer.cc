#include "worker/train/trainer.h"

// clip_grad.h relies on torch/types.h being included before it.
// clang-format off
#include <torch/types.h>
#include <torch/nn/utils/clip_grad.h>
// clang-format on
#include <ATen/Parallel.h>
#include <torch/cuda.h>
#include <torch/optim/adamw.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/file_util.h"
#include "common/progress_bar.h"
#include "common/run_layout.h"
#include "common/status_macros.h"
#include "worker/train/batch_source.h"
#include "worker/train/bert_model.h"
#include "worker/train/checkpoint.h"
#include "worker/train/distributed.h"
#include "worker/train/evaluator.h"
#include "worker/train/lamb.h"
#include "worker/train/lr_schedule.h"
#include "worker/train/metrics_log.h"
#include "worker/train/muon.h"
#include "worker/train/torch_compat.h"
#include "worker/train/weight_average.h"

namespace matbert {
namespace {

using Clock = std::chrono::steady_clock;
using Json = nlohmann::json;

double Seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

// Parameters with weight decay (matrices of Linear layers and embeddings) and without
// (biases and LayerNorm), as BERT's recipe does. For Muon a first group holds the encoder's
// 2-D weight matrices (at training.muon_lr); embeddings and the head stay with AdamW.
std::vector<torch::optim::OptimizerParamGroup> ParamGroups(BertForMatrixRegression& model,
                                                           const TrainingSection& t) {
  const bool muon = t.optimizer == "muon";
  std::vector<torch::Tensor> matrices, decay, no_decay;
  for (const auto& p : model->named_parameters()) {
    const std::string& name = p.key();
    const bool is_norm_or_bias =
        name.find("LayerNorm") != std::string::npos ||
        (name.size() >= 5 && name.compare(name.size() - 5, 5, ".bias") == 0);
    if (muon && !is_norm_or_bias && p.value().dim() == 2 &&
        name.find("encoder.layer.") != std::string::npos) {
      matrices.push_back(p.value());
    } else {
      (is_norm_or_bias ? no_decay : decay).push_back(p.value());
    }
  }
  auto options = [&](double lr, double wd) {
    auto o = std::make_unique<torch::optim::AdamWOptions>(lr);
    o->betas({t.beta1, t.beta2}).eps(t.eps).weight_decay(wd);
    return o;
  };
  std::vector<torch::optim::OptimizerParamGroup> groups;
  if (muon) groups.emplace_back(matrices, options(t.muon_lr, t.weight_decay));
  groups.emplace_back(decay, options(t.lr, t.weight_decay));
  groups.emplace_back(no_decay, options(t.lr, 0.0));
  return groups;
}

// The schedule scales each group's own base rate (training.lr; muon_lr for Muon's matrices).
void SetLearningRate(torch::optim::AdamW& optimizer, const TrainingSection& t, double lr) {
  const bool muon = t.optimizer == "muon";
  for (size_t g = 0; g < optimizer.param_groups().size(); ++g) {
    const double base = muon && g == 0 ? t.muon_lr : t.lr;
    static_cast<torch::optim::AdamWOptions&>(optimizer.param_groups()[g].options())
        .lr(base * lr / t.lr);
  }
}

std::unique_ptr<torch::optim::AdamW> MakeOptimizer(BertForMatrixRegression& model,
                                                   const TrainingSection& t) {
  // LAMB and Muon keep AdamW's state and options and step differently (lamb.h, muon.h).
  if (t.optimizer == "lamb") return std::make_unique<Lamb>(ParamGroups(model, t));
  if (t.optimizer == "muon") return std::make_unique<Muon>(ParamGroups(model, t), 1);
  return std::make_unique<torch::optim::AdamW>(ParamGroups(model, t));
}

}  // namespace

absl::StatusOr<TrainResult> Train(const TrainOptions& options) {
  const JobSpec& spec = options.spec;
  const TrainingSection& t = spec.training;
  const DistEnv& dist = options.dist;
  const bool leader = dist.rank == 0;
  const std::string checkpoints_dir = RunCheckpointsDir(options.run_dir);
  std::error_code ec;
  std::filesystem::create_directories(checkpoints_dir, ec);
  if (ec) return ErrnoStatus(ec.value(), "cannot create run directory", checkpoints_dir);
  const std::string spec_toml = spec.ToToml();  // in the run directory and every checkpoint
  if (leader) RETURN_IF_ERROR(WriteFileAtomically(RunConfigPath(options.run_dir), spec_toml));

  const int threads = t.threads > 0
                          ? t.threads
                          : std::max(1, static_cast<int>(std::thread::hardware_concurrency()) /
                                            dist.local_world_size);
  at::set_num_threads(threads);
  const bool cuda = torch::cuda::is_available();
  const torch::Device device =
      cuda ? torch::Device(torch::kCUDA, dist.local_rank) : torch::Device(torch::kCPU);
  const bool bf16 = cuda ? t.mixed_precision != "no" : t.mixed_precision == "bf16";
  if (bf16 && !cuda) {
    return absl::InvalidArgumentError(
        "training.mixed_precision = \"bf16\" needs a CUDA device; "
        "use \"auto\" or \"no\" on CPU");
  }

  torch::manual_seed(static_cast<uint64_t>(t.seed));
  BertForMatrixRegression model(BertOptions::FromSpec(spec));
  model->to(device);
  std::unique_ptr<torch::optim::AdamW> optimizer_owner = MakeOptimizer(model, t);
  torch::optim::AdamW& optimizer = *optimizer_owner;

  int64_t start_step = 0;
  std::string resumed_from;  // the checkpoint directory, when resuming
  if (spec.checkpoint.load_step.has_value()) {
    ASSIGN_OR_RETURN(resumed_from, ResolveCheckpoint(checkpoints_dir, *spec.checkpoint.load_step));
    const std::string& dir = resumed_from;
    ASSIGN_OR_RETURN(Json state, LoadCheckpoint(dir, model, &optimizer));
    start_step = state["step"].get<int64_t>();
    if (start_step >= t.steps) {
      return absl::InvalidArgumentError(absl::StrCat("checkpoint ", dir, " is at step ", start_step,
                                                     ", at or past training.steps = ", t.steps));
    }
    if (leader) absl::FPrintF(stderr, "resuming from %s (step %d)\n", dir, start_step);
  }
  // The weights' moving average, kept by rank 0 (every rank's weights are the same).
  std::optional<WeightAverage> average;
  if (leader && t.ema_decay > 0) {
    average.emplace(model, t.ema_decay);
    if (!resumed_from.empty()) {
      ASSIGN_OR_RETURN(const bool had, LoadAverages(resumed_from, average->averages()));
      if (!had) {
        absl::FPrintF(stderr,
                      "note: %s has no model_ema.safetensors; the average starts "
                      "from its weights\n",
                      resumed_from);
      }
    }
  }

  // Data parallelism: every rank starts from rank 0's parameters and averages gradients.
  std::unique_ptr<Communicator> comm;
  std::unique_ptr<GradientBuckets> buckets;
  if (dist.world_size > 1) {
    if (cuda && !NcclCompiledIn()) {
      return absl::FailedPreconditionError(
          "multi-rank CUDA training needs NCCL, which this build did not find; rebuild with "
          "the CUDA toolkit and NCCL installed");
    }
    ASSIGN_OR_RETURN(comm, Communicator::Connect(dist, std::chrono::seconds(t.collective_timeout),
                                                 cuda ? dist.local_rank : -1));
    std::vector<torch::Tensor> params = model->parameters();
    RETURN_IF_ERROR(comm->Broadcast(params, "broadcast of rank 0's parameters", start_step));
    buckets = std::make_unique<GradientBuckets>(
        params, static_cast<int64_t>(t.bucket_mb * (1 << 20)), comm.get());
    if (leader) {
      absl::FPrintF(stderr, "%d ranks joined at %s:%d (%s)\n", dist.world_size, dist.master_addr,
                    dist.master_port, cuda ? "NCCL for gradients" : "Gloo");
    }
  }

  // Only rank 0 evaluates; the baselines are fitted once, since the eval set is fixed.
  std::vector<TrainBatch> eval_batches;
  EvalResult baselines;
  if (leader) {
    eval_batches = MakeEvalBatches(spec);
    baselines = BaselineRmse(spec, eval_batches);
  }
  ASSIGN_OR_RETURN(std::unique_ptr<BatchSource> source,
                   MakeBatchSource(spec, dist.rank, dist.world_size));
  Prefetcher prefetcher(std::move(source), {start_step + 1, 0}, t.grad_accum);
  MetricsLog metrics_file(leader ? RunMetricsPath(options.run_dir) : "/dev/null",
                          leader ? options.on_record : nullptr);
  if (!metrics_file.ok())
    return absl::InternalError(absl::StrCat("cannot append to ", RunMetricsPath(options.run_dir)));
  ProgressLog progress(&metrics_file,
                       {.start_step = start_step,
                        .total_steps = t.steps,
                        .tokens_per_step = int64_t{t.batch_size} * spec.SequenceLength() *
                                           t.grad_accum * dist.world_size,
                        .rank = dist.rank,
                        .world_size = dist.world_size,
                        .quiet = options.quiet});
  if (cuda && bf16) compat::SetCudaAutocastBf16(true);

  TrainResult result;
  result.eval_rmse = std::numeric_limits<double>::quiet_NaN();
  Json last_eval;
  double time_forward = 0, time_backward = 0, time_optimizer = 0, time_exposed_comm = 0;
  model->train();

  for (int64_t step = start_step + 1; step <= t.steps; ++step) {
    const auto step_start = Clock::now();
    const double lr = LearningRate(t, step);
    SetLearningRate(optimizer, t, lr);
    optimizer.zero_grad();
    if (comm) comm->Heartbeat(step);
    double step_loss = 0;  // this rank's share of the global mean loss
    for (int micro = 0; micro < t.grad_accum; ++micro) {
      ASSIGN_OR_RETURN(TrainBatch batch, prefetcher.Next({step, micro}));
      // Normalise by the loss's denominator over all ranks (the labelled entries; every entry
      // for masked diffusion), so that averaging gradients over ranks gives exactly the
      // gradient of the global mean.
      torch::Tensor count = torch::tensor({batch.loss_denominator}, torch::kFloat64);
      if (comm) {
        std::vector<torch::Tensor> counts{count};
        RETURN_IF_ERROR(comm->AllReduceSum(counts, "all-reduce of loss counts", step));
      }
      const double global_count = std::max(count.item<double>(), 1.0);
      if (buckets && micro == t.grad_accum - 1) buckets->Arm();
      const auto forward_start = Clock::now();
      // `causal` stays on the CPU: the model asks whether any row is causal there, without a
      // device sync each step, and moves it only when it builds a mask.
      torch::Tensor logits =  // (B, L, 1)
          model->forward(batch.input_ids.to(device), batch.causal);
      torch::Tensor loss =
          MaskedSquaredErrorSum(logits, batch.labels.to(device), batch.loss_weights.to(device)) /
          global_count / t.grad_accum;
      const auto backward_start = Clock::now();
      (loss * dist.world_size).backward();
      step_loss += loss.item<double>();
      time_forward += Seconds(forward_start, backward_start);
      time_backward += Seconds(backward_start, Clock::now());
    }
    if (buckets) {
      ASSIGN_OR_RETURN(const double waited, buckets->Finish(step));
      time_exposed_comm += waited;
    }
    const auto optimizer_start = Clock::now();
    const double max_norm =
        t.clip_grad_norm > 0 ? t.clip_grad_norm : std::numeric_limits<double>::infinity();
    const double grad_norm = torch::nn::utils::clip_grad_norm_(model->parameters(), max_norm);
    optimizer.step();
    if (average) average->Update();
    if (cuda && bf16) at::autocast::clear_cache();
    time_optimizer += Seconds(optimizer_start, Clock::now());
    bool stopping = options.stop != nullptr && options.stop->load();
    if (comm) {
      // One small all-reduce per step: the global loss, and whether any rank was asked to
      // stop, so that all ranks stop after the same step.
      torch::Tensor agree = torch::tensor({step_loss, stopping ? 1.0 : 0.0}, torch::kFloat64);
      std::vector<torch::Tensor> tensors{agree};
      RETURN_IF_ERROR(comm->AllReduceSum(tensors, "all-reduce of loss and stop flag", step));
      step_loss = agree[0].item<double>();
      stopping = agree[1].item<double>() > 0;
    }
    if (!std::isfinite(step_loss)) {
      return absl::InternalError(absl::StrCat("training diverged at step ", step, ": loss is ",
                                              step_loss,
                                              " (try a lower training.lr or clip_grad_norm)"));
    }
    progress.Step(step_loss, Seconds(step_start, Clock::now()));
    result.last_step = step;
    result.final_loss = step_loss;

    // Log, evaluate, checkpoint: rank 0 alone, each when due (and all at the last step).
    const bool last = step == t.steps || stopping;
    if (leader && (step % t.log_every == 0 || last)) progress.Train(step, grad_norm, lr);
    if (leader && ((t.eval_every > 0 && step % t.eval_every == 0) || step == t.steps)) {
      result.eval_rmse = ModelRmse(model, eval_batches, device);
      double ema_rmse = std::numeric_limits<double>::quiet_NaN();
      if (average) {
        average->Swap();
        ema_rmse = ModelRmse(model, eval_batches, device);
        average->Swap();
      }
      last_eval = progress.Eval(step, result.eval_rmse, ema_rmse, baselines, spec.matrix.r);
    }
    if (leader && ((spec.checkpoint.every > 0 && step % spec.checkpoint.every == 0) || last)) {
      const Json state = {{"total_steps", t.steps},
                          {"world_size", dist.world_size},
                          {"loss", step_loss},
                          {"last_eval", last_eval}};
      ASSIGN_OR_RETURN(
          result.last_checkpoint,
          WriteCheckpoint(checkpoints_dir, step, model, optimizer, state, spec_toml,
                          spec.checkpoint.keep, average ? &average->averages() : nullptr));
      progress.Checkpoint(step, result.last_checkpoint);
    }
    if (stopping) {
      result.stopped = true;
      break;
    }
  }
  if (leader) {
    const double steps_run = std::max<int64_t>(result.last_step - start_step, 1);
    const double data_wait = prefetcher.wait_seconds();
    progress.Write({{"kind", "summary"},
                    {"step", result.last_step},
                    {"stopped", result.stopped},
                    {"seconds_per_step",
                     {{"data_wait", data_wait / steps_run},
                      {"data_produce", prefetcher.produce_seconds() / steps_run},
                      {"forward", time_forward / steps_run},
                      {"backward", time_backward / steps_run},
                      {"optimizer", time_optimizer / steps_run},
                      {"allreduce_exposed", time_exposed_comm / steps_run}}},
                    {"world_size", dist.world_size},
                    {"threads", threads},
                    {"libtorch", compat::LibTorchVersion()}});
  }
  return result;
}

}  // namespace matbert
