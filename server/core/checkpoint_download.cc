#include "server/core/checkpoint_download.h"

#include <fcntl.h>
#include <unistd.h>

#include <map>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/checkpoint_sums.h"
#include "common/unique_fd.h"
#include "server/core/checkpoint_catalog.h"

namespace matbert {

absl::StatusOr<CheckpointDownload> CheckpointDownload::Open(const std::string& run_dir,
                                                            std::optional<int64_t> step,
                                                            const std::string& job_id) {
  absl::StatusOr<CheckpointDir> dir = SelectCheckpoint(ListCheckpointDirs(run_dir), step, job_id);
  if (!dir.ok()) return dir.status();
  absl::StatusOr<std::vector<FileDigest>> files = DigestDirectory(dir->path);
  if (!files.ok()) return files.status();
  // The bytes must still be the ones written: a damaged checkpoint is refused by name.
  std::map<std::string, std::string> digests;
  for (const FileDigest& f : *files) digests[f.name] = f.sha256;
  if (absl::Status intact = CompareWithChecksums(dir->path, digests); !intact.ok()) {
    return absl::DataLossError(
        absl::StrCat("checkpoint step ", dir->step, " of job ", job_id, ": ", intact.message()));
  }
  return CheckpointDownload(*std::move(dir), *std::move(files));
}

absl::StatusOr<std::optional<CheckpointDownload::Chunk>> CheckpointDownload::Next(
    size_t max_bytes) {
  while (file_ < files_.size() && offset_ >= files_[file_].size) {
    ++file_;
    offset_ = 0;
    fd_.Reset();
  }
  if (file_ == files_.size()) return std::optional<Chunk>();
  const FileDigest& f = files_[file_];
  if (!fd_.valid()) {
    const std::string path = dir_.path + "/" + f.name;
    fd_ = UniqueFd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd_.valid()) {
      return absl::AbortedError(absl::StrCat("checkpoint step ", dir_.step,
                                             " was removed during the download; try again"));
    }
  }
  Chunk chunk;
  chunk.file = f.name;
  chunk.offset = offset_;
  chunk.data.resize(std::min<int64_t>(max_bytes, f.size - offset_));
  const ssize_t n = ::pread(fd_.get(), chunk.data.data(), chunk.data.size(), offset_);
  if (n <= 0) {
    return absl::DataLossError(absl::StrCat("cannot read ", f.name, " of step ", dir_.step,
                                            " at byte ", offset_, " of ", f.size));
  }
  chunk.data.resize(n);
  offset_ += n;
  return std::optional<Chunk>(std::move(chunk));
}

}  // namespace matbert
