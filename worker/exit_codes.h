// Exit codes of matbert-worker.
#pragma once

#include "absl/status/status.h"

namespace matbert {

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;  // runtime failure (I/O, training diverged, ...)
inline constexpr int kExitUsage = 2;    // bad flags or input: nothing was done

// kExitUsage for errors caused by what the user asked for, kExitFailure otherwise.
inline int ExitCodeFor(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kOk:
      return kExitOk;
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kAlreadyExists:
    case absl::StatusCode::kPermissionDenied:
    case absl::StatusCode::kNotFound:
    case absl::StatusCode::kFailedPrecondition:
      return kExitUsage;
    default:
      return kExitFailure;
  }
}

}  // namespace matbert
