// A job's run directory, runs/<job>/ under the state dir, as the daemon reads it:
// checkpoints (listing, SHA-256 manifests, chunked reads) and the ranks' log files.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace matbert {

struct CheckpointDir {
  int64_t step = 0;
  std::string path;        // absolute
  std::string name;        // "step-0000500"
  int64_t size_bytes = 0;  // regular files inside, together
  int64_t mtime_ms = 0;
};

// Finished checkpoints (checkpoints/step-NNNNNNN, never the hidden staging ones), oldest first.
std::vector<CheckpointDir> ListCheckpointDirs(const std::string& run_dir);

struct FileDigest {
  std::string name;  // file name inside the checkpoint
  int64_t size = 0;
  std::string sha256;  // lowercase hex
};

// Regular files of a directory, sorted by name, with their SHA-256.
absl::StatusOr<std::vector<FileDigest>> DigestDirectory(const std::string& dir);

struct LogLineAt {
  std::string text;  // without the newline
  int64_t end = 0;   // offset just past the newline
};

// Complete lines (ending in '\n') of a file from byte `offset`, at most `max_bytes` of them;
// a trailing partial line is left for the next call. A missing file reads as empty.
std::vector<LogLineAt> ReadLogLines(const std::string& path, int64_t offset, int64_t max_bytes);

// Offset where the last `n` complete lines of a file start (0 if it has fewer).
int64_t TailOffset(const std::string& path, int n);

}  // namespace matbert
