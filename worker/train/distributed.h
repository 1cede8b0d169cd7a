// Data parallelism across ranks (DESIGN.md §6): the torchrun environment contract, a
// rendezvous through c10d's TCPStore that names the ranks that never arrived, a Gloo
// process group, gradient buckets all-reduced while backward still runs, and failures
// that name the collective, the step and the peers that fell behind.
#pragma once

#include <torch/types.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "common/dist_env.h"
#include "worker/train/nccl_comm.h"

namespace c10d {
class ProcessGroupGloo;
class Store;
class Work;
}  // namespace c10d

namespace matbert {

class Communicator {
 public:
  // Rendezvous of all ranks at MASTER_ADDR:MASTER_PORT (rank 0 hosts the store), then a Gloo
  // process group (CPU tensors) and, when `nccl_device` >= 0, an NCCL communicator on that
  // CUDA device for gradients. Collectives fail after `timeout`.
  static absl::StatusOr<std::unique_ptr<Communicator>> Connect(const DistEnv& env,
                                                               std::chrono::seconds timeout,
                                                               int nccl_device = -1);
  ~Communicator();

  int rank() const { return env_.rank; }
  // The NCCL communicator, or null for CPU ranks.
  NcclComm* nccl() const { return nccl_.get(); }
  int world_size() const { return env_.world_size; }

  // Records that this rank reached `step` (read back when a collective fails).
  void Heartbeat(int64_t step);

  // Ranks whose liveness counter stopped advancing (a background thread of every rank
  // bumps its counter in the store twice a second). Takes about 1.5 s.
  std::vector<int> DeadPeers();

  // Blocking collectives; a failure names `what` and `step` and the lagging peers.
  absl::Status Broadcast(std::vector<torch::Tensor>& tensors, const std::string& what,
                         int64_t step);
  absl::Status AllReduceSum(std::vector<torch::Tensor>& tensors, const std::string& what,
                            int64_t step);

  // Starts an all-reduce (sum) of `tensor` and returns its handle for Wait().
  c10::intrusive_ptr<c10d::Work> AllReduceAsync(torch::Tensor& tensor);
  absl::Status Wait(const c10::intrusive_ptr<c10d::Work>& work, const std::string& what,
                    int64_t step);

 private:
  Communicator(DistEnv env, c10::intrusive_ptr<c10d::Store> store,
               c10::intrusive_ptr<c10d::ProcessGroupGloo> group);
  absl::Status Failure(const std::string& what, int64_t step, const std::string& cause);

  DistEnv env_;
  c10::intrusive_ptr<c10d::Store> store_;
  // The concrete type: from LibTorch 2.0 on, ProcessGroupGloo is a c10d::Backend rather than a
  // c10d::ProcessGroup, and its collectives have the same signatures in both.
  c10::intrusive_ptr<c10d::ProcessGroupGloo> group_;
  std::unique_ptr<NcclComm> nccl_;
  std::atomic<bool> stop_alive_{false};
  std::thread alive_thread_;
};

// Averages gradients across ranks in buckets of about `bucket_bytes`, launched from autograd
// hooks as soon as every gradient of a bucket is ready, so communication overlaps the rest
// of backward. Buckets hold parameters in reverse order, the order backward produces them.
class GradientBuckets {
 public:
  GradientBuckets(std::vector<torch::Tensor> params, int64_t bucket_bytes, Communicator* comm);
  ~GradientBuckets();

  // Call before the last micro-step's backward: its hooks then fill and launch buckets.
  void Arm();
  // After that backward: launches what is left, waits for everything, and replaces each
  // parameter's .grad with the average over ranks. Returns seconds spent waiting.
  absl::StatusOr<double> Finish(int64_t step);

 private:
  struct Bucket {
    torch::Tensor flat;            // concatenated gradients
    std::vector<size_t> params;    // indices into params_
    std::vector<int64_t> offsets;  // element offset of each parameter in flat
    size_t ready = 0;
    c10::intrusive_ptr<c10d::Work> work;  // Gloo; NCCL work is ordered on the CUDA stream
    bool launched = false;
  };
  void OnGradient(size_t param, const torch::Tensor& grad);
  void Launch(Bucket& bucket);

  std::vector<torch::Tensor> params_;
  std::vector<std::pair<size_t, size_t>> where_;  // param -> (bucket, slot)
  std::vector<bool> seen_;
  std::vector<Bucket> buckets_;
  Communicator* comm_;
  bool armed_ = false;
  absl::Status launch_status_;  // first NCCL enqueue failure of this step
};

}  // namespace matbert
