#include "server/core/devices.h"

#include <dlfcn.h>
#include <unistd.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace matbert {
namespace {

// The few NVML entry points we call (nvml.h is not needed to build), resolved once.
struct NvmlMemory {
  unsigned long long total, free, used;
};
struct NvmlUtilization {
  unsigned int gpu, memory;  // percent
};
struct Nvml {
  int (*init)() = nullptr;
  int (*count)(unsigned int*) = nullptr;
  int (*handle)(unsigned int, void**) = nullptr;
  int (*name)(void*, char*, unsigned int) = nullptr;
  int (*memory)(void*, NvmlMemory*) = nullptr;
  int (*utilization)(void*, NvmlUtilization*) = nullptr;
  bool ok = false;
};

// NVML stays loaded for the life of the process; nullptr-free only when every symbol exists
// and nvmlInit succeeded.
const Nvml& LoadNvml() {
  static const Nvml nvml = [] {
    Nvml n;
    void* lib = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
    if (lib == nullptr) return n;
    n.init = reinterpret_cast<int (*)()>(dlsym(lib, "nvmlInit_v2"));
    n.count = reinterpret_cast<int (*)(unsigned int*)>(dlsym(lib, "nvmlDeviceGetCount_v2"));
    n.handle = reinterpret_cast<int (*)(unsigned int, void**)>(
        dlsym(lib, "nvmlDeviceGetHandleByIndex_v2"));
    n.name = reinterpret_cast<int (*)(void*, char*, unsigned int)>(dlsym(lib, "nvmlDeviceGetName"));
    n.memory = reinterpret_cast<int (*)(void*, NvmlMemory*)>(dlsym(lib, "nvmlDeviceGetMemoryInfo"));
    n.utilization = reinterpret_cast<int (*)(void*, NvmlUtilization*)>(
        dlsym(lib, "nvmlDeviceGetUtilizationRates"));
    n.ok = n.init && n.count && n.handle && n.name && n.memory && n.utilization && n.init() == 0;
    return n;
  }();
  return nvml;
}

std::vector<DeviceInfo> CpuSlots(int slots) {
  if (slots <= 0) slots = static_cast<int>(std::max(1L, sysconf(_SC_NPROCESSORS_ONLN)));
  std::vector<DeviceInfo> devices;
  for (int i = 0; i < slots; ++i)
    devices.push_back({absl::StrCat("cpu:", i), "cpu", i, "CPU slot", 0});
  return devices;
}

}  // namespace

std::vector<DeviceInfo> NvmlGpus() {
  const Nvml& nvml = LoadNvml();
  std::vector<DeviceInfo> gpus;
  unsigned int n = 0;
  if (!nvml.ok || nvml.count(&n) != 0) return gpus;
  for (unsigned int i = 0; i < n; ++i) {
    void* device = nullptr;
    char text[96] = "GPU";
    NvmlMemory mem{};
    if (nvml.handle(i, &device) != 0) continue;
    nvml.name(device, text, sizeof(text));
    nvml.memory(device, &mem);
    gpus.push_back({absl::StrCat("gpu:", i), "gpu", static_cast<int>(i), text,
                    static_cast<int64_t>(mem.total)});
  }
  return gpus;
}

std::vector<GpuUsage> NvmlUsage() {
  const Nvml& nvml = LoadNvml();
  std::vector<GpuUsage> usage;
  unsigned int n = 0;
  if (!nvml.ok || nvml.count(&n) != 0) return usage;
  for (unsigned int i = 0; i < n; ++i) {
    void* device = nullptr;
    NvmlMemory mem{};
    NvmlUtilization util{};
    if (nvml.handle(i, &device) != 0 || nvml.memory(device, &mem) != 0 ||
        nvml.utilization(device, &util) != 0) {
      continue;
    }
    usage.push_back({static_cast<int>(i), util.gpu / 100.0, static_cast<int64_t>(mem.used),
                     static_cast<int64_t>(mem.total)});
  }
  return usage;
}

absl::StatusOr<std::vector<DeviceInfo>> DiscoverDevices(const std::string& gpus, int cpu_slots) {
  if (gpus == "none") return CpuSlots(cpu_slots);
  if (gpus == "auto") {
    std::vector<DeviceInfo> found = NvmlGpus();
    return found.empty() ? CpuSlots(cpu_slots) : found;
  }
  std::vector<DeviceInfo> devices;
  for (absl::string_view part : absl::StrSplit(gpus, ',')) {
    int index;
    if (!absl::SimpleAtoi(part, &index) || index < 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--gpus must be auto, none, or a list of CUDA indices like 0,1,3; got \"", gpus, "\""));
    }
    devices.push_back({absl::StrCat("gpu:", index), "gpu", index, "GPU", 0});
  }
  std::vector<DeviceInfo> known = NvmlGpus();
  for (DeviceInfo& d : devices) {
    for (const DeviceInfo& k : known) {
      if (k.index == d.index) d = k;
    }
  }
  return devices;
}

std::vector<DeviceInfo> SlurmRankSlots(int n) {
  std::vector<DeviceInfo> slots;
  for (int i = 0; i < n; ++i) {
    slots.push_back({absl::StrCat("slurm:", i), "slurm", i, "rank placed by Slurm", 0});
  }
  return slots;
}

}  // namespace matbert
