#include <dlfcn.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "worker/train/train_module.h"

namespace matbert {

absl::StatusOr<const TrainModuleApi*> LoadTrainModule() {
  std::string path;
  if (const char* env = std::getenv("MATBERT_TRAIN_MODULE"); env != nullptr && *env) {
    path = env;
  } else {
    std::error_code ec;
    std::filesystem::path exe = std::filesystem::read_symlink("/proc/self/exe", ec);
    path = (exe.parent_path() / "libmatbert_train.so").string();
  }
  void* handle = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot load the trainer module ", path, ": ", ::dlerror(),
                     " (build it with scripts/build.sh, or set MATBERT_TRAIN_MODULE)"));
  }
  using ApiFn = const TrainModuleApi* (*)();
  auto api_fn = reinterpret_cast<ApiFn>(::dlsym(handle, "matbert_train_module_api"));
  if (api_fn == nullptr) {
    return absl::FailedPreconditionError(absl::StrCat(path, " is not a matbert trainer module"));
  }
  const TrainModuleApi* api = api_fn();
  if (api == nullptr || api->version != TrainModuleApi::kVersion || api->train == nullptr ||
      api->complete == nullptr || api->eval_set == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat(path, " is a trainer module of another version; rebuild"));
  }
  return api;
}

}  // namespace matbert
