// The devices matbertd hands out: GPUs found through NVML (libnvidia-ml.so.1, loaded at run
// time when present) or a given list, else a number of CPU slots.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace matbert {

struct DeviceInfo {
  std::string id;    // "gpu:0", "cpu:3", "slurm:12"
  std::string kind;  // "gpu" | "cpu" | "slurm" (a rank Slurm places)
  int index = 0;     // CUDA device index for GPUs, slot number for CPU slots
  std::string name;  // "NVIDIA H100 80GB HBM3", "CPU slot"
  int64_t memory_bytes = 0;
};

// `gpus`: "auto" (NVML; none found → CPU slots), "none" (CPU slots), or "0,1,…" (those
// CUDA indices). `cpu_slots` <= 0 means one slot per core. InvalidArgument names the flag.
absl::StatusOr<std::vector<DeviceInfo>> DiscoverDevices(const std::string& gpus, int cpu_slots);

// Under the Slurm executor: `n` rank slots, so that matbertd's queue admits any job of up to
// n ranks at once and Slurm does the placing.
std::vector<DeviceInfo> SlurmRankSlots(int n);

// GPUs visible through NVML; empty when the library or a driver is missing.
std::vector<DeviceInfo> NvmlGpus();

struct GpuUsage {
  int index = 0;           // CUDA index
  double utilization = 0;  // fraction of the last sample period the GPU was busy, 0..1
  int64_t memory_used_bytes = 0;
  int64_t memory_total_bytes = 0;
};
// Current utilisation and memory of every NVML GPU; empty without NVML. Thread-safe.
std::vector<GpuUsage> NvmlUsage();

}  // namespace matbert
