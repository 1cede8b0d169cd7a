// A thin NCCL communicator for gradient all-reduce between CUDA ranks, written against
// NCCL's C API and the CUDA runtime (not LibTorch's c10d NCCL backend, which Debian's CPU
// LibTorch lacks), so that it compiles wherever CUDA and NCCL are installed — CI included —
// and runs on GPU hosts. Operations are enqueued on the CUDA legacy default stream, the one
// LibTorch's own kernels use unless a stream is set, so they are ordered after the backward
// kernels that produced the gradients and before the optimizer's. No CUDA types appear here.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace matbert {

// True when this build has NCCL support compiled in.
bool NcclCompiledIn();

class NcclComm {
 public:
  // A new NCCL unique id (rank 0 makes it; the others receive it through the store).
  static absl::StatusOr<std::string> NewUniqueId();
  // Joins the communicator of `world` ranks on CUDA device `device`.
  static absl::StatusOr<std::unique_ptr<NcclComm>> Create(int rank, int world, int device,
                                                          const std::string& unique_id);
  ~NcclComm();

  // In-place sum of `count` floats at `device_ptr` over all ranks; enqueued, not awaited.
  absl::Status AllReduceSumFloat(void* device_ptr, int64_t count);
  // Waits for everything enqueued on the stream.
  absl::Status Synchronize();

 private:
  explicit NcclComm(void* comm) : comm_(comm) {}
  void* comm_;  // ncclComm_t
};

}  // namespace matbert
