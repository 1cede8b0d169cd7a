// libFuzzer target: any bytes as a .safetensors file (model.safetensors of a checkpoint, or one
// a user hands to `matbert-worker complete`). The header is JSON, so the corpus starts from
// real files; every input must be read or refused with a status.
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "worker/train/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const int fd = memfd_create("safetensors_fuzzer", MFD_CLOEXEC);
  if (ftruncate(fd, 0) != 0 || pwrite(fd, data, size, 0) != static_cast<ssize_t>(size)) return 0;
  (void)matbert::ReadSafetensors("/proc/self/fd/" + std::to_string(fd));
  return 0;
}
