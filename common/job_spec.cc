#include "common/job_spec.h"

#include <toml++/toml.h>

#include <cmath>
#include <filesystem>
#include <functional>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>
#include <variant>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/file_util.h"
#include "common/matrix_limits.h"
#include "common/status_macros.h"
#include "common/token_layout.h"

namespace matbert {
namespace {

using Value = std::variant<int64_t, double, bool, std::string>;

enum class Kind { kInt, kFloat, kBool, kString, kEnum };

// One key of the spec: its type, allowed values, and how to read and write it.
struct KeyDef {
  KeyDef(std::string section_, std::string name_, Kind kind_,
         double min_ = -std::numeric_limits<double>::infinity(),
         double max_ = std::numeric_limits<double>::infinity(), bool min_exclusive_ = false)
      : section(std::move(section_)),
        name(std::move(name_)),
        kind(kind_),
        min(min_),
        max(max_),
        min_exclusive(min_exclusive_) {}

  std::string section;
  std::string name;
  Kind kind;
  double min;
  double max;
  bool min_exclusive;
  std::vector<std::string> choices;  // kEnum
  std::function<void(JobSpec&, const Value&)> set;
  std::function<Value(const JobSpec&)> get;
  bool optional = false;  // may be unset (checkpoint.load_step)

  std::string full() const { return section + "." + name; }
  std::string Allowed() const;
};

std::string FormatNumber(double x) {
  if (std::isinf(x)) return x > 0 ? "inf" : "-inf";
  return absl::StrFormat("%g", x);
}

std::string KeyDef::Allowed() const {
  switch (kind) {
    case Kind::kBool:
      return "true or false";
    case Kind::kString:
      return "a string";
    case Kind::kEnum:
      return absl::StrCat("one of \"", absl::StrJoin(choices, "\", \""), "\"");
    case Kind::kInt:
    case Kind::kFloat: {
      std::string type = kind == Kind::kInt ? "an integer" : "a number";
      if (std::isinf(min) && std::isinf(max)) return type;
      if (std::isinf(max))
        return absl::StrCat(type, min_exclusive ? " > " : " >= ", FormatNumber(min));
      return absl::StrCat(type, " in ", min_exclusive ? "(" : "[", FormatNumber(min), ", ",
                          FormatNumber(max), "]");
    }
  }
  return "";
}

template <typename S, typename T>
KeyDef Int(const char* section, const char* name, S JobSpec::*sec, T S::*field, double min,
           double max) {
  KeyDef d{section, name, Kind::kInt, min, max};
  d.set = [=](JobSpec& spec, const Value& v) {
    (spec.*sec).*field = static_cast<T>(std::get<int64_t>(v));
  };
  d.get = [=](const JobSpec& spec) -> Value { return static_cast<int64_t>((spec.*sec).*field); };
  return d;
}

template <typename S>
KeyDef Float(const char* section, const char* name, S JobSpec::*sec, double S::*field, double min,
             double max, bool min_exclusive = false) {
  KeyDef d{section, name, Kind::kFloat, min, max, min_exclusive};
  d.set = [=](JobSpec& spec, const Value& v) { (spec.*sec).*field = std::get<double>(v); };
  d.get = [=](const JobSpec& spec) -> Value { return (spec.*sec).*field; };
  return d;
}

template <typename S>
KeyDef Bool(const char* section, const char* name, S JobSpec::*sec, bool S::*field) {
  KeyDef d{section, name, Kind::kBool};
  d.set = [=](JobSpec& spec, const Value& v) { (spec.*sec).*field = std::get<bool>(v); };
  d.get = [=](const JobSpec& spec) -> Value { return (spec.*sec).*field; };
  return d;
}

template <typename S>
KeyDef String(const char* section, const char* name, S JobSpec::*sec, std::string S::*field,
              std::vector<std::string> choices = {}) {
  KeyDef d{section, name, choices.empty() ? Kind::kString : Kind::kEnum};
  d.choices = std::move(choices);
  d.set = [=](JobSpec& spec, const Value& v) { (spec.*sec).*field = std::get<std::string>(v); };
  d.get = [=](const JobSpec& spec) -> Value { return (spec.*sec).*field; };
  return d;
}

// checkpoint.load_step: -1 latest, N that step, or unset.
KeyDef LoadStep() {
  KeyDef d{"checkpoint", "load_step", Kind::kInt, -1, 1e12};
  d.optional = true;
  d.set = [](JobSpec& s, const Value& v) { s.checkpoint.load_step = std::get<int64_t>(v); };
  d.get = [](const JobSpec& s) -> Value { return s.checkpoint.load_step.value_or(-1); };
  return d;
}

const std::vector<KeyDef>& Keys() {
  static const std::vector<KeyDef> keys = [] {
    constexpr double kBig = 1e12;
    using J = JobSpec;
    std::vector<KeyDef> k = {
        String("job", "name", &J::job, &JobSection::name),
        String("job", "kind", &J::job, &JobSection::kind, {"train", "generate"}),
        Int("job", "nodes", &J::job, &JobSection::nodes, 1, 1024),
        Int("job", "gpus", &J::job, &JobSection::gpus, 1, 1024),
        Int("job", "priority", &J::job, &JobSection::priority, -1000, 1000),
        Int("job", "max_restarts", &J::job, &JobSection::max_restarts, 0, 100),

        String("model", "arch", &J::model, &ModelSection::arch),
        Int("model", "hidden_size", &J::model, &ModelSection::hidden_size, 1, 65536),
        Int("model", "num_hidden_layers", &J::model, &ModelSection::num_hidden_layers, 1, 1024),
        Int("model", "num_attention_heads", &J::model, &ModelSection::num_attention_heads, 1, 1024),
        Int("model", "intermediate_size", &J::model, &ModelSection::intermediate_size, 1, 1 << 20),
        Int("model", "max_position_embeddings", &J::model, &ModelSection::max_position_embeddings,
            1, 1 << 20),
        Int("model", "type_vocab_size", &J::model, &ModelSection::type_vocab_size, 1, 16),
        Float("model", "hidden_dropout_prob", &J::model, &ModelSection::hidden_dropout_prob, 0,
              0.99),
        Float("model", "attention_probs_dropout_prob", &J::model,
              &ModelSection::attention_probs_dropout_prob, 0, 0.99),
        Float("model", "layer_norm_eps", &J::model, &ModelSection::layer_norm_eps, 0, 1, true),
        Float("model", "initializer_range", &J::model, &ModelSection::initializer_range, 0, 10,
              true),
        String("model", "hidden_act", &J::model, &ModelSection::hidden_act, {"gelu"}),
        String("model", "position_embedding_type", &J::model,
               &ModelSection::position_embedding_type, {"absolute", "absolute_2d"}),
        String("model", "layer_norm_position", &J::model, &ModelSection::layer_norm_position,
               {"post", "pre"}),

        Int("matrix", "m", &J::matrix, &MatrixSection::m, 1, kMaxMatrixDim),
        Int("matrix", "n", &J::matrix, &MatrixSection::n, 1, kMaxMatrixDim),
        Int("matrix", "r", &J::matrix, &MatrixSection::r, 1, kMaxMatrixDim),
        String("matrix", "factor_dist", &J::matrix, &MatrixSection::factor_dist,
               {std::begin(kFactorDists), std::end(kFactorDists)}),
        Float("matrix", "factor_mean", &J::matrix, &MatrixSection::factor_mean, -kMaxAbsFactorMean,
              kMaxAbsFactorMean),
        Int("matrix", "prec", &J::matrix, &MatrixSection::prec, 0, kMaxPrec),
        Int("matrix", "n_sigma", &J::matrix, &MatrixSection::n_sigma, 1, kMaxNSigma),
        Bool("matrix", "row_sep", &J::matrix, &MatrixSection::row_sep),
        Float("matrix", "mask_prob", &J::matrix, &MatrixSection::mask_prob, 0, 1, true),
        Float("matrix", "mask_prob_start", &J::matrix, &MatrixSection::mask_prob_start, 0, 1),
        Float("matrix", "mask_prob_end", &J::matrix, &MatrixSection::mask_prob_end, 0, 1),
        String("matrix", "mask_strategy", &J::matrix, &MatrixSection::mask_strategy,
               {"mask", "bert"}),
        Float("matrix", "mask_random_prob", &J::matrix, &MatrixSection::mask_random_prob, 0, 1),
        Float("matrix", "mask_keep_prob", &J::matrix, &MatrixSection::mask_keep_prob, 0, 1),
        Bool("matrix", "loss_masked_only", &J::matrix, &MatrixSection::loss_masked_only),
        String("matrix", "objective", &J::matrix, &MatrixSection::objective,
               {"mlm", "diffusion", "hybrid"}),
        Float("matrix", "causal_fraction", &J::matrix, &MatrixSection::causal_fraction, 0, 1),
        String("matrix", "dataset", &J::matrix, &MatrixSection::dataset),

        Int("training", "steps", &J::training, &TrainingSection::steps, 1, kBig),
        Int("training", "batch_size", &J::training, &TrainingSection::batch_size, 1, 1 << 20),
        Int("training", "grad_accum", &J::training, &TrainingSection::grad_accum, 1, 1 << 16),
        String("training", "optimizer", &J::training, &TrainingSection::optimizer,
               {"adamw", "lamb", "muon"}),
        Float("training", "muon_lr", &J::training, &TrainingSection::muon_lr, 0, 10, true),
        Float("training", "lr", &J::training, &TrainingSection::lr, 0, 10, true),
        Float("training", "weight_decay", &J::training, &TrainingSection::weight_decay, 0, 10),
        Float("training", "beta1", &J::training, &TrainingSection::beta1, 0, 0.999999),
        Float("training", "beta2", &J::training, &TrainingSection::beta2, 0, 0.999999999),
        Float("training", "eps", &J::training, &TrainingSection::eps, 0, 1, true),
        Int("training", "warmup_steps", &J::training, &TrainingSection::warmup_steps, 0, kBig),
        Float("training", "warmup_ratio", &J::training, &TrainingSection::warmup_ratio, 0, 1),
        String("training", "schedule", &J::training, &TrainingSection::schedule,
               {"constant", "linear", "cosine"}),
        Int("training", "cooldown_steps", &J::training, &TrainingSection::cooldown_steps, 0, kBig),
        Float("training", "cooldown_ratio", &J::training, &TrainingSection::cooldown_ratio, 0, 1),
        Float("training", "min_lr_ratio", &J::training, &TrainingSection::min_lr_ratio, 0, 1),
        Float("training", "clip_grad_norm", &J::training, &TrainingSection::clip_grad_norm, 0, 1e6),
        Float("training", "ema_decay", &J::training, &TrainingSection::ema_decay, 0, 0.999999),
        Bool("training", "gradient_checkpointing", &J::training,
             &TrainingSection::gradient_checkpointing),
        String("training", "mixed_precision", &J::training, &TrainingSection::mixed_precision,
               {"auto", "no", "bf16"}),
        Int("training", "seed", &J::training, &TrainingSection::seed, 0, 9.2e18),
        Int("training", "log_every", &J::training, &TrainingSection::log_every, 1, kBig),
        Int("training", "eval_every", &J::training, &TrainingSection::eval_every, 0, kBig),
        Int("training", "eval_samples", &J::training, &TrainingSection::eval_samples, 1, 1 << 20),
        Int("training", "threads", &J::training, &TrainingSection::threads, 0, 1024),
        Float("training", "bucket_mb", &J::training, &TrainingSection::bucket_mb, 0, 4096, true),
        Int("training", "collective_timeout", &J::training, &TrainingSection::collective_timeout, 1,
            86400),

        Int("checkpoint", "every", &J::checkpoint, &CheckpointSection::every, 0, kBig),
        Int("checkpoint", "keep", &J::checkpoint, &CheckpointSection::keep, 1, 1000000),
        LoadStep(),

        Int("generate", "n_samples", &J::generate, &GenerateSection::n_samples, 1, kBig),
        String("generate", "output_dir", &J::generate, &GenerateSection::output_dir),
        Int("generate", "shards", &J::generate, &GenerateSection::shards, 1, kMaxShards),
    };
    return k;
  }();
  return keys;
}

const KeyDef* FindKey(absl::string_view section, absl::string_view name) {
  for (const KeyDef& k : Keys()) {
    if (k.section == section && k.name == name) return &k;
  }
  return nullptr;
}

std::vector<std::string> SectionNames() {
  std::vector<std::string> out;
  for (const KeyDef& k : Keys()) {
    if (out.empty() || out.back() != k.section) out.push_back(k.section);
  }
  return out;
}

std::vector<std::string> KeysOf(absl::string_view section) {
  std::vector<std::string> out;
  for (const KeyDef& k : Keys()) {
    if (k.section == section) out.push_back(k.name);
  }
  return out;
}

std::string Describe(const toml::node& node) {
  std::ostringstream out;
  if (node.is_string()) {
    out << '"' << *node.value<std::string>() << '"';
  } else if (node.is_table()) {
    out << "a table";
  } else if (node.is_array()) {
    out << "an array";
  } else {
    node.visit([&](auto&& v) {
      if constexpr (toml::is_value<decltype(v)>) out << v;
    });
  }
  return out.str();
}

// Converts a TOML node to the key's type, or explains why not.
absl::StatusOr<Value> Convert(const KeyDef& key, const toml::node& node, const std::string& where) {
  auto refuse = [&] {
    return absl::InvalidArgumentError(absl::StrCat(where, ": ", key.full(), " must be ",
                                                   key.Allowed(), ", got ", Describe(node)));
  };
  switch (key.kind) {
    case Kind::kBool:
      if (!node.is_boolean()) return refuse();
      return Value(*node.value<bool>());
    case Kind::kString:
    case Kind::kEnum: {
      if (!node.is_string()) return refuse();
      std::string s = *node.value<std::string>();
      if (key.kind == Kind::kEnum &&
          std::find(key.choices.begin(), key.choices.end(), s) == key.choices.end()) {
        return refuse();
      }
      return Value(s);
    }
    case Kind::kInt: {
      if (!node.is_integer()) return refuse();
      int64_t v = *node.value<int64_t>();
      if (v < key.min || v > key.max) return refuse();
      return Value(v);
    }
    case Kind::kFloat: {
      if (!node.is_number()) return refuse();
      double v = *node.value<double>();
      if (!std::isfinite(v) || v < key.min || v > key.max || (key.min_exclusive && v == key.min)) {
        return refuse();
      }
      return Value(v);
    }
  }
  return refuse();
}

std::string Where(const std::string& source, const toml::node& node) {
  return absl::StrCat(source, ":", node.source().begin.line);
}

// An assignment to apply: a key, its value node, and where it came from.
struct Assignment {
  const KeyDef* key;
  std::shared_ptr<toml::node> value;
  std::string where;
};

absl::Status Apply(JobSpec& spec, const Assignment& a) {
  ASSIGN_OR_RETURN(Value v, Convert(*a.key, *a.value, a.where));
  a.key->set(spec, v);
  // A phase given in steps after one given as a ratio (an override on a config with a ratio)
  // replaces it; a ratio above 0 replaces the steps.
  if (a.key->full() == "training.warmup_steps") spec.training.warmup_ratio = 0;
  if (a.key->full() == "training.cooldown_steps") spec.training.cooldown_ratio = 0;
  return absl::OkStatus();
}

// One source that gives a phase both in steps and as a ratio above 0 is ambiguous.
absl::Status CheckPhasesGivenOnce(const std::vector<Assignment>& assignments,
                                  const std::string& source) {
  for (const char* phase : {"warmup", "cooldown"}) {
    const std::string steps = absl::StrCat("training.", phase, "_steps");
    const std::string ratio = absl::StrCat("training.", phase, "_ratio");
    bool has_steps = false, has_ratio = false;
    for (const Assignment& a : assignments) {
      has_steps |= a.key->full() == steps;
      has_ratio |= a.key->full() == ratio && a.value->value_or(0.0) > 0;
    }
    if (has_steps && has_ratio) {
      return absl::InvalidArgumentError(absl::StrCat(source, ": ", steps, " and ", ratio,
                                                     " are both set; set one (a ratio is a "
                                                     "fraction of training.steps)"));
    }
  }
  return absl::OkStatus();
}

// Applies an HF BertConfig JSON. Keys HF writes that matbert derives or ignores are accepted.
absl::Status ApplyArchJson(JobSpec& spec, const std::string& path) {
  ASSIGN_OR_RETURN(std::string text, ReadFileToString(path));
  nlohmann::json json = nlohmann::json::parse(text, nullptr, false);
  if (json.is_discarded() || !json.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": not a JSON object"));
  }
  static const char* kIgnored[] = {"architectures", "model_type",
                                   "vocab_size",    "pad_token_id",
                                   "torch_dtype",   "transformers_version",
                                   "use_cache",     "classifier_dropout",
                                   "_comment",      "gradient_checkpointing"};
  for (auto& [name, value] : json.items()) {
    if (std::find(std::begin(kIgnored), std::end(kIgnored), name) != std::end(kIgnored)) continue;
    const KeyDef* key = FindKey("model", name);
    if (key == nullptr || name == "arch") {
      std::vector<std::string> allowed = KeysOf("model");
      allowed.erase(allowed.begin());  // "arch" itself
      return absl::InvalidArgumentError(absl::StrCat(
          path, ": unknown key \"", name, "\"; allowed: ", absl::StrJoin(allowed, ", ")));
    }
    // Round-trip through TOML so JSON and TOML values are checked by the same code.
    std::shared_ptr<toml::node> node;
    if (value.is_boolean())
      node = std::make_shared<toml::value<bool>>(value.get<bool>());
    else if (value.is_number_integer())
      node = std::make_shared<toml::value<int64_t>>(value.get<int64_t>());
    else if (value.is_number())
      node = std::make_shared<toml::value<double>>(value.get<double>());
    else if (value.is_string())
      node = std::make_shared<toml::value<std::string>>(value.get<std::string>());
    else
      node = std::make_shared<toml::table>();
    RETURN_IF_ERROR(Apply(spec, {key, node, absl::StrCat(path, ": \"", name, "\"")}));
  }
  return absl::OkStatus();
}

absl::Status Check(bool ok, const std::string& message) {
  return ok ? absl::OkStatus() : absl::InvalidArgumentError(message);
}

absl::Status CrossValidate(const JobSpec& s, const std::string& source) {
  const std::string at = source + ": ";
  RETURN_IF_ERROR(Check(s.matrix.r <= std::min(s.matrix.m, s.matrix.n),
                        absl::StrCat(at, "matrix.r must be in 1..min(matrix.m, matrix.n) = ",
                                     std::min(s.matrix.m, s.matrix.n), ", got ", s.matrix.r)));
  RETURN_IF_ERROR(Check(s.model.hidden_size % s.model.num_attention_heads == 0,
                        absl::StrCat(at, "model.hidden_size (", s.model.hidden_size,
                                     ") must be a multiple of model.num_attention_heads (",
                                     s.model.num_attention_heads, ")")));
  RETURN_IF_ERROR(Check(s.SequenceLength() <= s.model.max_position_embeddings,
                        absl::StrCat(at,
                                     "model.max_position_embeddings must be >= the sequence "
                                     "length m*n+2",
                                     s.matrix.row_sep ? "+(m-1)" : "", " = ", s.SequenceLength(),
                                     ", got ", s.model.max_position_embeddings)));
  RETURN_IF_ERROR(
      Check((s.matrix.mask_prob_start > 0) == (s.matrix.mask_prob_end > 0),
            absl::StrCat(at,
                         "matrix.mask_prob_start and matrix.mask_prob_end make a "
                         "schedule together: set both above 0, or neither (got ",
                         s.matrix.mask_prob_start, " and ", s.matrix.mask_prob_end, ")")));
  RETURN_IF_ERROR(Check(s.matrix.mask_random_prob + s.matrix.mask_keep_prob <= 1,
                        absl::StrCat(at,
                                     "matrix.mask_random_prob + matrix.mask_keep_prob must be "
                                     "<= 1, got ",
                                     s.matrix.mask_random_prob + s.matrix.mask_keep_prob)));
  RETURN_IF_ERROR(Check(s.generate.shards <= s.generate.n_samples,
                        absl::StrCat(at, "generate.shards must be in 1..generate.n_samples = ",
                                     s.generate.n_samples, ", got ", s.generate.shards)));
  return absl::OkStatus();
}

// Warmup and cooldown as the steps this run uses: ratios become steps, and phases longer than
// the run together shrink in proportion (so `--training.steps 10` works with any config),
// with a note that says so.
void ResolvePhases(JobSpec& spec) {
  TrainingSection& t = spec.training;
  const auto of_run = [&](double ratio) {
    return static_cast<int64_t>(std::llround(ratio * static_cast<double>(t.steps)));
  };
  const int64_t warmup = t.warmup_ratio > 0 ? of_run(t.warmup_ratio) : t.warmup_steps;
  const int64_t cooldown = t.cooldown_ratio > 0 ? of_run(t.cooldown_ratio) : t.cooldown_steps;
  t.warmup_steps = warmup;
  t.cooldown_steps = cooldown;
  // From here on the spec holds steps (what ToToml writes and the schedule reads).
  t.warmup_ratio = 0;
  t.cooldown_ratio = 0;
  if (warmup + cooldown <= t.steps) return;
  const double scale = static_cast<double>(t.steps) / static_cast<double>(warmup + cooldown);
  t.warmup_steps = static_cast<int64_t>(std::floor(static_cast<double>(warmup) * scale));
  t.cooldown_steps = static_cast<int64_t>(std::floor(static_cast<double>(cooldown) * scale));
  spec.notes.push_back(absl::StrCat("training.warmup_steps ", warmup, " + training.cooldown_steps ",
                                    cooldown, " are longer than training.steps ", t.steps,
                                    ": shrunk in proportion to ", t.warmup_steps, " + ",
                                    t.cooldown_steps));
}

std::shared_ptr<toml::node> ParseOverrideValue(const std::string& text) {
  try {
    toml::table t = toml::parse("v = " + text);
    if (toml::node* v = t.get("v")) {
      // Copy the parsed node out of its table.
      std::shared_ptr<toml::node> out;
      v->visit([&](auto&& n) { out = std::make_shared<std::remove_cvref_t<decltype(n)>>(n); });
      return out;
    }
  } catch (const toml::parse_error&) {
  }
  return std::make_shared<toml::value<std::string>>(text);  // a bare word is a string
}

}  // namespace

int64_t JobSpec::VocabSize() const {
  return TokenVocabSize(matrix.prec, matrix.n_sigma, matrix.row_sep);
}

int64_t JobSpec::SequenceLength() const {
  return TokenSequenceLength(matrix.m, matrix.n, matrix.row_sep);
}

std::vector<std::string> JobSpecKeys() {
  std::vector<std::string> out;
  for (const KeyDef& k : Keys()) out.push_back(k.full());
  return out;
}

absl::StatusOr<Override> ParseSetOverride(absl::string_view text) {
  size_t eq = text.find('=');
  if (eq == absl::string_view::npos || eq == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--set needs section.key=value, got \"", text, "\""));
  }
  return Override{std::string(text.substr(0, eq)), std::string(text.substr(eq + 1)),
                  absl::StrCat("--set ", text.substr(0, eq))};
}

absl::StatusOr<std::vector<Override>> ExtractOverrideArgs(std::vector<std::string>* args) {
  std::vector<Override> overrides;
  std::vector<std::string> kept;
  for (size_t i = 0; i < args->size(); ++i) {
    const std::string& arg = (*args)[i];
    const size_t eq = arg.find('=');
    const std::string name = arg.substr(0, eq);
    if (!absl::StartsWith(arg, "--") || name.find('.') == std::string::npos) {
      kept.push_back(arg);
      continue;
    }
    Override o{name.substr(2), "", name};
    if (eq != std::string::npos) {
      o.value = arg.substr(eq + 1);
    } else if (i + 1 < args->size()) {
      o.value = (*args)[++i];
    } else {
      return absl::InvalidArgumentError(absl::StrCat(arg, " needs a value"));
    }
    overrides.push_back(std::move(o));
  }
  *args = std::move(kept);
  return overrides;
}

absl::StatusOr<JobSpec> ParseJobSpec(absl::string_view toml_text, const std::string& source_name,
                                     const std::string& base_dir,
                                     const std::vector<Override>& overrides, bool confine_arch) {
  toml::table doc;
  try {
    doc = toml::parse(std::string_view(toml_text.data(), toml_text.size()), source_name);
  } catch (const toml::parse_error& e) {
    return absl::InvalidArgumentError(
        absl::StrCat(source_name, ":", e.source().begin.line, ": ", std::string(e.description())));
  }

  std::vector<Assignment> assignments;
  const std::vector<std::string> sections = SectionNames();
  for (auto&& [section_key, section_node] : doc) {
    const std::string section(section_key.str());
    if (std::find(sections.begin(), sections.end(), section) == sections.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat(Where(source_name, section_node), ": unknown section [", section,
                       "]; allowed: ", absl::StrJoin(sections, ", ")));
    }
    const toml::table* table = section_node.as_table();
    if (table == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat(Where(source_name, section_node), ": ", section, " must be a table"));
    }
    for (auto&& [key, node] : *table) {
      const std::string name(key.str());
      const KeyDef* def = FindKey(section, name);
      if (def == nullptr) {
        return absl::InvalidArgumentError(
            absl::StrCat(Where(source_name, node), ": unknown key ", section, ".", name,
                         "; allowed in [", section, "]: ", absl::StrJoin(KeysOf(section), ", ")));
      }
      std::shared_ptr<toml::node> copy;
      node.visit([&](auto&& n) { copy = std::make_shared<std::remove_cvref_t<decltype(n)>>(n); });
      assignments.push_back({def, copy, Where(source_name, node)});
    }
  }
  RETURN_IF_ERROR(CheckPhasesGivenOnce(assignments, source_name));
  for (const Override& o : overrides) {
    std::string key = o.key;
    std::vector<std::string> parts = absl::StrSplit(key, absl::MaxSplits('.', 1));
    const KeyDef* def = nullptr;
    if (parts.size() == 2) {
      std::replace(parts[1].begin(), parts[1].end(), '-', '_');  // --checkpoint.load-step
      def = FindKey(parts[0], parts[1]);
    }
    if (def == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat(
          o.origin, ": unknown key \"", o.key, "\"; keys are section.key, e.g. training.steps (",
          "sections: ", absl::StrJoin(sections, ", "), ")"));
    }
    assignments.push_back({def, ParseOverrideValue(o.value), o.origin});
  }

  JobSpec spec;
  // model.arch first (the last assignment wins), then everything else over it.
  for (const Assignment& a : assignments) {
    if (a.key->full() == "model.arch") RETURN_IF_ERROR(Apply(spec, a));
  }
  if (!spec.model.arch.empty()) {
    if (confine_arch && !IsConfinedPath(spec.model.arch)) {
      return absl::InvalidArgumentError(
          absl::StrCat(source_name,
                       ": model.arch must be a relative path inside the server's spec root "
                       "(no \"..\"), got \"",
                       spec.model.arch, "\"; or give the model keys inline"));
    }
    std::filesystem::path arch(spec.model.arch);
    if (arch.is_relative()) arch = std::filesystem::path(base_dir) / arch;
    RETURN_IF_ERROR(ApplyArchJson(spec, arch.string()));
  }
  for (const Assignment& a : assignments) RETURN_IF_ERROR(Apply(spec, a));
  if (spec.job.name.empty()) spec.job.name = std::filesystem::path(source_name).stem().string();
  RETURN_IF_ERROR(CrossValidate(spec, source_name));
  ResolvePhases(spec);
  return spec;
}

bool IsConfinedPath(absl::string_view path) {
  if (path.empty() || path.front() == '/') return false;
  for (absl::string_view part : absl::StrSplit(path, '/')) {
    if (part == "..") return false;
  }
  return true;
}

absl::StatusOr<JobSpec> LoadJobSpec(const std::string& path,
                                    const std::vector<Override>& overrides) {
  ASSIGN_OR_RETURN(std::string text, ReadFileToString(path));
  std::string dir = std::filesystem::path(path).parent_path().string();
  return ParseJobSpec(text, path, dir.empty() ? "." : dir, overrides);
}

std::string JobSpec::ToToml() const {
  toml::table root;
  for (const std::string& section : SectionNames()) {
    toml::table table;
    for (const KeyDef& k : Keys()) {
      if (k.section != section || k.full() == "model.arch") continue;
      if (k.optional && !checkpoint.load_step.has_value()) continue;
      std::visit([&](auto&& v) { table.insert(k.name, v); }, k.get(*this));
    }
    root.insert(section, std::move(table));
  }
  std::ostringstream out;
  out << "# Resolved matbert job spec: every key, the model section written out in full.\n"
      << root << "\n";
  return out.str();
}

}  // namespace matbert
