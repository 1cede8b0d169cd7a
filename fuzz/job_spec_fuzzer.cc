// libFuzzer target: a job spec with overrides, as matbertd admits one. The input is the spec's
// TOML, then optionally a line "---" and one "section.key=value" override per line.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "common/job_spec.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string input(reinterpret_cast<const char*>(data), size);
  const size_t split = input.find("\n---\n");
  const std::string spec = input.substr(0, split);
  std::vector<matbert::Override> overrides;
  if (split != std::string::npos) {
    for (absl::string_view line : absl::StrSplit(input.substr(split + 5), '\n')) {
      auto parsed = matbert::ParseSetOverride(std::string(line));
      if (parsed.ok()) overrides.push_back(*std::move(parsed));
    }
  }
  // confine_arch: model.arch must stay inside the (empty) spec root, as in matbertd.
  (void)matbert::ParseJobSpec(spec, "fuzz.toml", MATBERT_SOURCE_DIR "/configs", overrides,
                              /*confine_arch=*/true);
  return 0;
}
