// matbertctl's exit codes, documented in docs/matbertctl.md and `matbertctl --help`.
#pragma once

namespace matbert {

inline constexpr int kCtlOk = 0;
inline constexpr int kCtlError = 1;        // anything else: bad spec refused, I/O, corrupt download
inline constexpr int kCtlUsage = 2;        // bad flags or arguments
inline constexpr int kCtlNotFound = 3;     // no such job or checkpoint
inline constexpr int kCtlUnreachable = 4;  // no matbertd at --addr (or it refused the token)
inline constexpr int kCtlJobFailed = 5;    // the watched job ended FAILED
inline constexpr int kCtlJobCancelled = 6;  // the watched job ended CANCELLED
inline constexpr int kCtlDenied = 7;        // the token's user may not act on that job

}  // namespace matbert
