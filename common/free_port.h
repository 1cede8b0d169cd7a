// A loopback TCP port that was free a moment ago (bind to port 0, read it back, close), for
// rendezvous ports and test servers. Another process may take it before it is used.
#pragma once

#include "absl/status/statusor.h"

namespace matbert {

absl::StatusOr<int> PickFreeLoopbackPort();

}  // namespace matbert
