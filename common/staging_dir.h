// A directory that is built under a temporary name beside its target and appears at the
// target path only when complete (fsync, then rename). An interrupted writer, even one
// killed by SIGKILL, leaves only a hidden ".<name>.tmp-<pid>" beside the target, which the
// next writer of the same target removes.
#pragma once

#include <string>

#include "absl/status/statusor.h"

namespace matbert {

class StagingDir {
 public:
  // Creates the staging directory for `target`. Fails with ALREADY_EXISTS when `target`
  // exists and `overwrite` is false, and with the errno cause when the parent cannot be
  // created or written. Removes staging directories of the same target left by dead
  // processes.
  static absl::StatusOr<StagingDir> Create(const std::string& target, bool overwrite);

  StagingDir(StagingDir&& other) noexcept;
  StagingDir& operator=(StagingDir&&) = delete;
  StagingDir(const StagingDir&) = delete;
  // Removes the staging directory unless Commit() succeeded.
  ~StagingDir();

  // Where to write the contents.
  const std::string& path() const { return staging_; }
  const std::string& target() const { return target_; }

  // fsyncs every file directly in the staging directory and the directory itself, then
  // puts it at the target path, replacing an existing target when `overwrite` was given
  // (atomically, with renameat2(RENAME_EXCHANGE)). Call once.
  absl::Status Commit();

 private:
  StagingDir(std::string target, std::string staging, bool overwrite)
      : target_(std::move(target)), staging_(std::move(staging)), overwrite_(overwrite) {}

  std::string target_;
  std::string staging_;
  bool overwrite_ = false;
  bool committed_ = false;
};

}  // namespace matbert
