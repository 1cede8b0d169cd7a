// What DownloadCheckpoint streams, without the stream: the checkpoint a request means,
// checked against the SHA256SUMS written with it before any byte goes out, then its files
// in chunks. The RPC layer translates the manifest and chunks; nothing here knows gRPC.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/unique_fd.h"
#include "server/core/run_files.h"

namespace matbert {

class CheckpointDownload {
 public:
  // The checkpoint `step` (nullopt or -1: the newest) of the job whose run directory is
  // `run_dir`: NOT_FOUND naming the steps there are, DATA_LOSS naming the damaged file.
  // Hashes every file: call it outside any lock.
  static absl::StatusOr<CheckpointDownload> Open(const std::string& run_dir,
                                                 std::optional<int64_t> step,
                                                 const std::string& job_id);

  int64_t step() const { return dir_.step; }
  // Every file, sorted by name, with its size and SHA-256: what the client checks against.
  const std::vector<FileDigest>& manifest() const { return files_; }

  struct Chunk {
    std::string file;  // a manifest name
    int64_t offset = 0;
    std::string data;  // at most the `max_bytes` asked for; never empty
  };
  // The next chunk, file by file in manifest order; nullopt after the last. Each file stays
  // open while it is read, so removing the checkpoint then (keep-K) does not cut it short;
  // ABORTED when a file was gone before its first chunk, DATA_LOSS when one is shorter than
  // its manifest says.
  absl::StatusOr<std::optional<Chunk>> Next(size_t max_bytes);

 private:
  CheckpointDownload(CheckpointDir dir, std::vector<FileDigest> files)
      : dir_(std::move(dir)), files_(std::move(files)) {}

  CheckpointDir dir_;
  std::vector<FileDigest> files_;
  size_t file_ = 0;     // the file being read
  int64_t offset_ = 0;  // in it
  UniqueFd fd_;         // open on files_[file_] once its first chunk is read
};

}  // namespace matbert
