#include "common/staging_dir.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <system_error>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/status_macros.h"

namespace matbert {
namespace fs = std::filesystem;

namespace {

std::string StagingPrefix(const fs::path& target) {
  return absl::StrCat(".", target.filename().string(), ".tmp-");
}

// Removes "<parent>/.<name>.tmp-<pid>" directories whose process is gone.
void RemoveStaleStaging(const fs::path& target) {
  std::error_code ec;
  const std::string prefix = StagingPrefix(target);
  fs::path parent = target.parent_path().empty() ? fs::path(".") : target.parent_path();
  for (const auto& entry : fs::directory_iterator(parent, ec)) {
    std::string name = entry.path().filename().string();
    if (!absl::StartsWith(name, prefix)) continue;
    int pid = 0;
    if (!absl::SimpleAtoi(name.substr(prefix.size()), &pid) || pid <= 0) continue;
    if (pid == ::getpid()) continue;
    if (::kill(pid, 0) == 0 || errno != ESRCH) continue;  // still alive, or not ours to judge
    fs::remove_all(entry.path(), ec);
  }
}

}  // namespace

absl::StatusOr<StagingDir> StagingDir::Create(const std::string& target, bool overwrite) {
  fs::path target_path = fs::path(target).lexically_normal();
  if (target_path.filename().empty()) target_path = target_path.parent_path();
  std::error_code ec;
  if (fs::exists(target_path, ec) && !overwrite) {
    return absl::AlreadyExistsError(absl::StrCat(target_path.string(), " already exists"));
  }
  fs::path parent = target_path.parent_path().empty() ? fs::path(".") : target_path.parent_path();
  fs::create_directories(parent, ec);
  if (ec) return ErrnoStatus(ec.value(), "cannot create directory", parent.string());
  RemoveStaleStaging(target_path);
  std::string staging = (parent / absl::StrCat(StagingPrefix(target_path), ::getpid())).string();
  fs::remove_all(staging, ec);
  if (::mkdir(staging.c_str(), 0755) != 0) {
    return ErrnoStatus(errno, "cannot create directory", staging);
  }
  return StagingDir(target_path.string(), std::move(staging), overwrite);
}

StagingDir::StagingDir(StagingDir&& other) noexcept
    : target_(std::move(other.target_)),
      staging_(std::move(other.staging_)),
      overwrite_(other.overwrite_),
      committed_(other.committed_) {
  other.committed_ = true;  // the moved-from object owns nothing
}

StagingDir::~StagingDir() {
  if (committed_ || staging_.empty()) return;
  std::error_code ec;
  fs::remove_all(staging_, ec);
}

absl::Status StagingDir::Commit() {
  std::error_code ec;
  for (const auto& entry : fs::recursive_directory_iterator(staging_, ec)) {
    RETURN_IF_ERROR(FsyncPath(entry.path().string()));
  }
  if (ec) return ErrnoStatus(ec.value(), "cannot list", staging_);
  RETURN_IF_ERROR(FsyncPath(staging_));

  bool replaced = false;
  if (overwrite_ && fs::exists(target_, ec)) {
    if (::renameat2(AT_FDCWD, staging_.c_str(), AT_FDCWD, target_.c_str(), RENAME_EXCHANGE) != 0) {
      return ErrnoStatus(errno, "cannot replace", target_);
    }
    replaced = true;  // staging_ now holds the old contents
  } else if (::renameat2(AT_FDCWD, staging_.c_str(), AT_FDCWD, target_.c_str(), RENAME_NOREPLACE) !=
             0) {
    if (errno == EEXIST) {
      return absl::AlreadyExistsError(absl::StrCat(target_, " appeared while writing"));
    }
    return ErrnoStatus(errno, "cannot rename to", target_);
  }
  committed_ = true;
  fs::path parent = fs::path(target_).parent_path();
  RETURN_IF_ERROR(FsyncPath(parent.empty() ? "." : parent.string()));
  if (replaced) fs::remove_all(staging_, ec);
  return absl::OkStatus();
}

}  // namespace matbert
