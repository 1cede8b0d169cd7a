// libFuzzer target: the checkpoint state loader, short of the model weights: a checkpoint's
// SHA256SUMS and trainer_state.json, the CPU generator's state restored from it as a resume
// does. The input is SHA256SUMS, a line "---", then trainer_state.json.
#include <sys/stat.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>

#include "common/checkpoint_sums.h"
#include "worker/train/trainer_state.h"

namespace {

std::string ScratchDir() {
  // In memory where there is a tmpfs: the file is rewritten for every input.
  char dir[] = "/dev/shm/trainer_state_fuzzer.XXXXXX";
  if (mkdtemp(dir) != nullptr) return dir;
  std::strcpy(dir, "/tmp/trainer_state_fuzzer.XXXXXX");
  if (mkdtemp(dir) == nullptr) std::abort();
  return dir;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string dir = ScratchDir();
  const std::string input(reinterpret_cast<const char*>(data), size);
  const size_t split = input.find("\n---\n");
  { std::ofstream(dir + "/SHA256SUMS", std::ios::trunc) << input.substr(0, split); }
  (void)matbert::VerifyChecksums(dir);
  if (split == std::string::npos) return 0;
  auto state = matbert::ParseTrainerState(input.substr(split + 5), "trainer_state.json");
  if (state.ok() && state->contains("torch_cpu_rng")) {
    (void)matbert::SetCpuRngState((*state)["torch_cpu_rng"].get<std::string>(),
                                  "trainer_state.json");
  }
  return 0;
}
