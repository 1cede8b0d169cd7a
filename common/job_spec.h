// Job specs (DESIGN.md §4): the TOML a user submits, merged with the model architecture
// JSON and command-line overrides, strictly validated. Shared by matbert-worker (train,
// generate) and matbertd (SubmitJob), so both accept and refuse exactly the same specs.
//
// Errors name the key, where it came from (file:line, or the override flag) and the allowed
// values: "configs/x.toml:12: training.lr must be a number in (0, 10], got 50".
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace matbert {

struct JobSection {
  std::string name;            // defaults to the spec file's stem
  std::string kind = "train";  // "train" | "generate"
  int nodes = 1;               // hosts (more than 1 under matbertd --backend slurm)
  int gpus = 1;                // devices per node: GPUs, or CPU slots/ranks without GPUs
  int priority = 0;            // higher runs first
  int max_restarts = 0;        // retries of a failed attempt
};

// HuggingFace BertConfig names; vocab_size follows from matrix.prec and row_sep.
struct ModelSection {
  std::string arch;  // BertConfig JSON, relative to the spec file; inline keys override it
  int hidden_size = 768;
  int num_hidden_layers = 12;
  int num_attention_heads = 12;
  int intermediate_size = 3072;
  int max_position_embeddings = 512;
  int type_vocab_size = 2;
  double hidden_dropout_prob = 0.1;
  double attention_probs_dropout_prob = 0.1;
  double layer_norm_eps = 1e-12;
  double initializer_range = 0.02;
  std::string hidden_act = "gelu";
  std::string position_embedding_type = "absolute";  // "absolute" | "absolute_2d" (+ row/col)
  std::string layer_norm_position = "post";          // "post" (BERT) | "pre"
};

struct MatrixSection {
  int m = 20, n = 20, r = 5;
  std::string factor_dist = "normal";  // U, V entries: "normal" N(mean, 1) | "uniform" mean±1
  double factor_mean = 0.0;
  int prec = 2;
  int n_sigma = 4;
  bool row_sep = false;
  double mask_prob = 0.15;  // fraction of entries masked per matrix
  // A masking schedule (both above 0): linear from start at step 1 to end at the last step,
  // replacing mask_prob (evaluation masks at end). 0 = none.
  double mask_prob_start = 0, mask_prob_end = 0;
  std::string mask_strategy = "mask";  // "mask": all [MASK]; "bert": mask/random/keep
  double mask_random_prob = 0.1;       // "bert": of the masked, a random bin instead
  double mask_keep_prob = 0.1;         // "bert": of the masked, left unchanged
  bool loss_masked_only = true;        // loss on masked entries only (else all entries)
  // "mlm": mask_prob (or its schedule) for every matrix; "diffusion": masked diffusion, a
  // ratio t per matrix and its masked entries weighted 1/t (loss on masked entries only);
  // "hybrid": a causal_fraction of the training matrices read causally (each position
  // attends to itself and earlier ones, nothing masked) and predict the next entry at every
  // position, the rest as "mlm" (GPT-BERT).
  std::string objective = "mlm";
  double causal_fraction = 0.25;  // "hybrid": the fraction of matrices trained causally
  std::string dataset;            // offline dataset directory; empty = online generation
};

struct TrainingSection {
  int64_t steps = 1000;
  int batch_size = 32;  // matrices per rank per micro-step
  int grad_accum = 1;
  std::string optimizer = "adamw";  // "adamw" | "lamb" | "muon"
  double muon_lr = 0.02;            // Muon's rate for the encoder's matrices (scheduled alike)
  double lr = 3e-4;
  double weight_decay = 0.01;
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  // Warmup and cooldown, in steps or as fractions of `steps` (a ratio above 0 replaces the
  // steps). Once parsed they hold the steps the run uses: shrunk in proportion when the
  // phases together are longer than the run (JobSpec::notes says so).
  int64_t warmup_steps = 100;
  double warmup_ratio = 0;
  std::string schedule = "cosine";  // "constant" | "linear" | "cosine" (after warmup)
  int64_t cooldown_steps = 0;       // final linear decay to 0
  double cooldown_ratio = 0;
  double min_lr_ratio = 0.0;             // floor of linear/cosine decay, as a fraction of lr
  double clip_grad_norm = 1.0;           // 0 = no clipping
  double ema_decay = 0;                  // moving average of the weights; 0 = none
  bool gradient_checkpointing = false;   // keep only each layer's input; recompute in backward
  std::string mixed_precision = "auto";  // "auto" (bf16 on CUDA) | "no" | "bf16"
  int64_t seed = 0;
  int64_t log_every = 10;
  int64_t eval_every = 100;      // 0 = only at the end
  int eval_samples = 256;        // fixed held-out matrices
  int threads = 0;               // intra-op threads per rank; 0 = cores / local ranks
  double bucket_mb = 4;          // gradient all-reduce bucket size across ranks, MiB
  int collective_timeout = 300;  // seconds a rank waits in a collective or rendezvous
};

struct CheckpointSection {
  int64_t every = 500;               // steps; 0 = only at the end
  int keep = 3;                      // newest checkpoints kept
  std::optional<int64_t> load_step;  // -1 latest, N that step, unset: fresh start
};

struct GenerateSection {
  int64_t n_samples = 1000;
  std::string output_dir;  // empty: data/generated/matrix_m{m}_n{n}_r{r}_seed{seed}
  int shards = 1;
};

struct JobSpec {
  JobSection job;
  ModelSection model;
  MatrixSection matrix;
  TrainingSection training;
  CheckpointSection checkpoint;
  GenerateSection generate;
  // What parsing changed and the user should hear once ("training.warmup_steps 100 + …
  // shrunk …"); not part of the spec, not in ToToml.
  std::vector<std::string> notes;

  // vocab_size of the model: 2 n_sigma 10^prec + 5 (+1 with row separators).
  int64_t VocabSize() const;
  // Tokens per sequence: m n + 2 (+ m - 1 row separators).
  int64_t SequenceLength() const;

  // The fully resolved spec as TOML (model keys inline, no arch path): parsing it again
  // gives the same spec.
  std::string ToToml() const;
};

// One "--section.key value" or "--set section.key=value" from a command line.
struct Override {
  std::string key;     // "training.steps"
  std::string value;   // TOML value text; bare words are taken as strings
  std::string origin;  // how to name it in errors: "--training.steps"
};

// Parses "section.key=value" (as given to --set).
absl::StatusOr<Override> ParseSetOverride(absl::string_view text);

// Takes the spec overrides out of command-line arguments, for every program that accepts
// them: "--section.key VALUE" and "--section.key=VALUE" (a long option whose name has a dot)
// become Overrides with origin "--section.key"; the other arguments stay in `args`, in order.
// INVALID_ARGUMENT naming the option when its value is missing.
absl::StatusOr<std::vector<Override>> ExtractOverrideArgs(std::vector<std::string>* args);

// Reads, merges and validates a spec. `source_name` names the text in errors; `base_dir`
// is where a relative model.arch path is looked up. With `confine_arch` (specs from remote
// clients) model.arch must be a relative path that stays inside base_dir.
absl::StatusOr<JobSpec> ParseJobSpec(absl::string_view toml_text, const std::string& source_name,
                                     const std::string& base_dir,
                                     const std::vector<Override>& overrides = {},
                                     bool confine_arch = false);

// True for a non-empty relative path with no ".." component: joined to a root, it stays
// inside that root.
bool IsConfinedPath(absl::string_view path);
absl::StatusOr<JobSpec> LoadJobSpec(const std::string& path,
                                    const std::vector<Override>& overrides = {});

// Every key as "section.key", for help texts.
std::vector<std::string> JobSpecKeys();

}  // namespace matbert
