// Test helper for tests/test_bert_parity.py: builds a small BertForMatrixRegression from a
// spec, runs it on seeded inputs, and writes what an independent implementation needs.
//   OUT/model.safetensors   the weights, through WriteSafetensors
//   OUT/config.json         the model's config
//   OUT/weights.bin + OUT/weights.json   the same weights copied raw from memory (not
//                           through the safetensors writer), with names, shapes, offsets
//   OUT/io.safetensors      input_ids (B, L) int64, hidden_states (B, L, H) and logits
//                           (B, L, 1) float32, eval mode
// With --checkpoint DIR the weights are a checkpoint's (DIR/model.safetensors, loaded as
// training resumes) instead of a seeded initialisation.
// Usage: bert_parity_tool SPEC.toml OUT_DIR [--checkpoint DIR] [section.key=value ...]
#include <cstdio>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

#include "common/file_util.h"
#include "common/job_spec.h"
#include "worker/train/bert_model.h"
#include "worker/train/checkpoint.h"
#include "worker/train/safetensors.h"

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr,
                 "usage: bert_parity_tool SPEC.toml OUT_DIR [--checkpoint DIR] "
                 "[section.key=value ...]\n");
    return 2;
  }
  std::vector<matbert::Override> overrides;
  std::string checkpoint;
  for (int i = 3; i < argc; ++i) {
    if (std::strcmp(argv[i], "--checkpoint") == 0 && i + 1 < argc) {
      checkpoint = argv[++i];
      continue;
    }
    auto override = matbert::ParseSetOverride(argv[i]);
    if (!override.ok()) {
      std::fprintf(stderr, "%s\n", std::string(override.status().message()).c_str());
      return 2;
    }
    overrides.push_back(*override);
  }
  auto spec = matbert::LoadJobSpec(argv[1], overrides);
  if (!spec.ok()) {
    std::fprintf(stderr, "%s\n", std::string(spec.status().message()).c_str());
    return 2;
  }
  const std::string out = argv[2];
  torch::manual_seed(1234);
  matbert::BertForMatrixRegression model(matbert::BertOptions::FromSpec(*spec));
  model->eval();
  if (!checkpoint.empty()) {
    auto state = matbert::LoadCheckpoint(checkpoint, model, /*optimizer=*/nullptr);
    if (!state.ok()) {
      std::fprintf(stderr, "%s\n", std::string(state.status().message()).c_str());
      return 1;
    }
  }

  matbert::NamedTensors weights;
  nlohmann::json index = nlohmann::json::array();
  std::ofstream raw(out + "/weights.bin", std::ios::binary);
  int64_t offset = 0;
  for (const auto& p : model->named_parameters()) {
    weights.emplace_back(p.key(), p.value());
    torch::Tensor t = p.value().contiguous();
    raw.write(static_cast<const char*>(t.data_ptr()), t.numel() * 4);
    index.push_back({{"name", p.key()}, {"shape", t.sizes().vec()}, {"offset", offset}});
    offset += t.numel() * 4;
  }
  raw.close();
  (void)matbert::WriteFileAtomically(out + "/weights.json", index.dump());
  if (!matbert::WriteSafetensors(out + "/model.safetensors", weights, {{"format", "pt"}}).ok())
    return 1;
  (void)matbert::WriteFileAtomically(out + "/config.json", model->options().ToConfigJson().dump(2));

  const int64_t l = spec->SequenceLength();
  torch::Tensor ids = torch::randint(4, spec->VocabSize(), {3, l}, torch::kInt64);
  ids.select(1, 0).fill_(2);
  ids.select(1, l - 1).fill_(3);
  ids.index_put_({0, 5}, 1);  // a [MASK]
  torch::NoGradGuard no_grad;
  torch::Tensor hidden = model->Encode(ids);   // (B, L, H)
  torch::Tensor logits = model->forward(ids);  // (B, L, 1)
  auto status = matbert::WriteSafetensors(
      out + "/io.safetensors", {{"input_ids", ids}, {"hidden_states", hidden}, {"logits", logits}});
  return status.ok() ? 0 : 1;
}
