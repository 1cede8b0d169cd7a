#include "worker/train/nccl_comm.h"

#include "absl/strings/str_cat.h"

#ifdef MATBERT_WITH_NCCL
#include <cuda_runtime.h>
#include <nccl.h>
#endif

namespace matbert {

#ifdef MATBERT_WITH_NCCL

namespace {

absl::Status CudaError(cudaError_t err, const char* what) {
  return absl::UnavailableError(absl::StrCat(what, ": CUDA error ", cudaGetErrorString(err)));
}

absl::Status NcclError(ncclResult_t err, const char* what) {
  return absl::UnavailableError(absl::StrCat(what, ": NCCL error ", ncclGetErrorString(err)));
}

}  // namespace

bool NcclCompiledIn() { return true; }

absl::StatusOr<std::string> NcclComm::NewUniqueId() {
  ncclUniqueId id;
  if (ncclResult_t err = ncclGetUniqueId(&id); err != ncclSuccess) {
    return NcclError(err, "ncclGetUniqueId");
  }
  return std::string(id.internal, sizeof(id.internal));
}

absl::StatusOr<std::unique_ptr<NcclComm>> NcclComm::Create(int rank, int world, int device,
                                                           const std::string& unique_id) {
  if (cudaError_t err = cudaSetDevice(device); err != cudaSuccess) {
    return CudaError(err, "cudaSetDevice");
  }
  ncclUniqueId id;
  if (unique_id.size() != sizeof(id.internal)) {
    return absl::InvalidArgumentError(absl::StrCat("NCCL unique id has ", unique_id.size(),
                                                   " bytes, expected ", sizeof(id.internal)));
  }
  std::copy(unique_id.begin(), unique_id.end(), id.internal);
  ncclComm_t comm;
  if (ncclResult_t err = ncclCommInitRank(&comm, world, id, rank); err != ncclSuccess) {
    return NcclError(err, "ncclCommInitRank");
  }
  return std::unique_ptr<NcclComm>(new NcclComm(comm));
}

NcclComm::~NcclComm() { ncclCommDestroy(static_cast<ncclComm_t>(comm_)); }

absl::Status NcclComm::AllReduceSumFloat(void* device_ptr, int64_t count) {
  ncclResult_t err = ncclAllReduce(device_ptr, device_ptr, static_cast<size_t>(count), ncclFloat32,
                                   ncclSum, static_cast<ncclComm_t>(comm_), cudaStreamLegacy);
  return err == ncclSuccess ? absl::OkStatus() : NcclError(err, "ncclAllReduce");
}

absl::Status NcclComm::Synchronize() {
  cudaError_t err = cudaStreamSynchronize(cudaStreamLegacy);
  return err == cudaSuccess ? absl::OkStatus() : CudaError(err, "cudaStreamSynchronize");
}

#else  // !MATBERT_WITH_NCCL

bool NcclCompiledIn() { return false; }

absl::StatusOr<std::string> NcclComm::NewUniqueId() {
  return absl::UnimplementedError("this build has no NCCL (CUDA toolkit or NCCL not found)");
}

absl::StatusOr<std::unique_ptr<NcclComm>> NcclComm::Create(int, int, int, const std::string&) {
  return absl::UnimplementedError("this build has no NCCL (CUDA toolkit or NCCL not found)");
}

NcclComm::~NcclComm() = default;

absl::Status NcclComm::AllReduceSumFloat(void*, int64_t) {
  return absl::UnimplementedError("this build has no NCCL");
}

absl::Status NcclComm::Synchronize() { return absl::UnimplementedError("this build has no NCCL"); }

#endif

}  // namespace matbert
