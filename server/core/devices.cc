#include "server/core/devices.h"

#include <dlfcn.h>
#include <unistd.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace matbert {
namespace {

// The few NVML entry points we call (nvml.h is not needed to build).
struct NvmlMemory {
  unsigned long long total, free, used;
};
using NvmlInit = int (*)();
using NvmlCount = int (*)(unsigned int*);
using NvmlHandleByIndex = int (*)(unsigned int, void**);
using NvmlName = int (*)(void*, char*, unsigned int);
using NvmlMemoryInfo = int (*)(void*, NvmlMemory*);

std::vector<DeviceInfo> CpuSlots(int slots) {
  if (slots <= 0) slots = static_cast<int>(std::max(1L, sysconf(_SC_NPROCESSORS_ONLN)));
  std::vector<DeviceInfo> devices;
  for (int i = 0; i < slots; ++i)
    devices.push_back({absl::StrCat("cpu:", i), "cpu", i, "CPU slot", 0});
  return devices;
}

}  // namespace

std::vector<DeviceInfo> NvmlGpus() {
  void* lib = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
  if (lib == nullptr) return {};
  auto init = reinterpret_cast<NvmlInit>(dlsym(lib, "nvmlInit_v2"));
  auto count = reinterpret_cast<NvmlCount>(dlsym(lib, "nvmlDeviceGetCount_v2"));
  auto handle = reinterpret_cast<NvmlHandleByIndex>(dlsym(lib, "nvmlDeviceGetHandleByIndex_v2"));
  auto name = reinterpret_cast<NvmlName>(dlsym(lib, "nvmlDeviceGetName"));
  auto memory = reinterpret_cast<NvmlMemoryInfo>(dlsym(lib, "nvmlDeviceGetMemoryInfo"));
  std::vector<DeviceInfo> gpus;
  unsigned int n = 0;
  if (init && count && handle && name && memory && init() == 0 && count(&n) == 0) {
    for (unsigned int i = 0; i < n; ++i) {
      void* device = nullptr;
      char text[96] = "GPU";
      NvmlMemory mem{};
      if (handle(i, &device) != 0) continue;
      name(device, text, sizeof(text));
      memory(device, &mem);
      gpus.push_back({absl::StrCat("gpu:", i), "gpu", static_cast<int>(i), text,
                      static_cast<int64_t>(mem.total)});
    }
  }
  // NVML stays loaded: unloading it while the driver holds state is not worth the risk.
  return gpus;
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

}  // namespace matbert
