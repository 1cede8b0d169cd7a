// libFuzzer target: any bytes as an Arrow IPC stream file. Open() scans every message header,
// ReadBatch() every record batch; each must return a status, never crash or read out of bounds.
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "worker/arrow/ipc_stream_reader.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const int fd = memfd_create("arrow_ipc_fuzzer", MFD_CLOEXEC);
  if (ftruncate(fd, 0) != 0 || pwrite(fd, data, size, 0) != static_cast<ssize_t>(size)) return 0;
  const std::string path = "/proc/self/fd/" + std::to_string(fd);
  auto reader = matbert::arrow::IpcStreamReader::Open(path);
  if (!reader.ok()) return 0;
  for (int k = 0; k < reader->num_batches(); ++k) (void)reader->ReadBatch(k);
  return 0;
}
