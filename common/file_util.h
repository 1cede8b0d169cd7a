// Durable file operations: errno-carrying Status, fsync, write-then-rename, reading whole
// files. Everything that must never be seen half-written goes through here.
#pragma once

#include <sys/types.h>

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace matbert {

// A Status for a failed system call: "<what> <path>: <strerror(err)>", with a code that
// follows errno (NOT_FOUND for ENOENT, PERMISSION_DENIED for EACCES, ...).
absl::Status ErrnoStatus(int err, absl::string_view what, absl::string_view path);

// fsyncs a file or a directory by path.
absl::Status FsyncPath(const std::string& path);

// Writes `contents` to `path` atomically: a temporary file beside it, fsync, rename, then
// fsync of the parent directory. A reader sees the old file or the whole new one. `mode`: the
// new file's permissions (before the umask).
absl::Status WriteFileAtomically(const std::string& path, absl::string_view contents,
                                 mode_t mode = 0644);

// Reads a whole file.
absl::StatusOr<std::string> ReadFileToString(const std::string& path);

// Appends `text` to a file, creating it (0644) if missing.
absl::Status AppendToFile(const std::string& path, absl::string_view text);

// Writes all of `data` to `fd`, retrying short writes and EINTR.
absl::Status WriteAll(int fd, const void* data, size_t size, absl::string_view path);

}  // namespace matbert
