// The exported entry point of libmatbert_train.so.
#include "worker/train/train_module.h"

extern "C" __attribute__((visibility("default"))) const matbert::TrainModuleApi*
matbert_train_module_api() {
  static const matbert::TrainModuleApi api{1, &matbert::Train};
  return &api;
}
