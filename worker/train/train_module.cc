// The exported entry point of libmatbert_train.so.
#include "worker/train/train_module.h"

#include <c10/util/Exception.h>

#include <exception>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"

namespace {

// LibTorch reports failures (out of memory, a shape it cannot use) by throwing c10::Error. No
// exception may leave the module, whose caller reaches it through a C table: here they become
// a Status with LibTorch's message on one line, which the rank prints and reports to matbertd.
template <typename Result, typename Request>
absl::StatusOr<Result> ReturningStatus(absl::StatusOr<Result> (*run)(const Request&),
                                       const Request& request) {
  try {
    return run(request);
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat(
        "LibTorch error: ", absl::StrReplaceAll(e.what_without_backtrace(), {{"\n", "; "}})));
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("error in the trainer: ", e.what()));
  }
}

absl::StatusOr<matbert::TrainResult> TrainReturningStatus(const matbert::TrainOptions& options) {
  return ReturningStatus(&matbert::Train, options);
}

absl::StatusOr<matbert::Completion> CompleteReturningStatus(
    const matbert::CompletionRequest& request) {
  return ReturningStatus(&matbert::CompleteMatrices, request);
}

absl::StatusOr<matbert::EvalSet> EvalSetReturningStatus(const std::string& checkpoint) {
  return ReturningStatus(&matbert::CheckpointEvalSet, checkpoint);
}

}  // namespace

extern "C" __attribute__((visibility("default"))) const matbert::TrainModuleApi*
matbert_train_module_api() {
  static const matbert::TrainModuleApi api{matbert::TrainModuleApi::kVersion, &TrainReturningStatus,
                                           &CompleteReturningStatus, &EvalSetReturningStatus};
  return &api;
}
