// A job's run directory, runs/<job>/ under the state dir, as the daemon reads it:
// checkpoints (listing, SHA-256 manifests) and the ranks' log files (where a reader starts,
// following them line by line).
#pragma once

#include <cstdint>
#include <map>
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

// Where a retry resumes: the newest checkpoint whose files match their SHA256SUMS. Each newer
// one that does not is renamed to step-NNNNNNN.corrupt (kept for inspection, never listed or
// loaded again) and named in `skipped` ("step 20: <what is wrong>").
struct ResumePoint {
  int64_t step = -1;  // -1: no intact checkpoint (start from scratch)
  std::vector<std::string> skipped;
};
ResumePoint NewestIntactCheckpoint(const std::string& run_dir);

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

// Where a reader of a job's rank logs starts (StreamLogs).
struct LogStart {
  std::optional<int> rank;                // one rank; nullopt: every rank of the job
  std::map<int, int64_t> resume_offsets;  // rank → offset a client had read up to
  int tail_lines = 0;                     // > 0: the last lines of each log; 0: all of it
};

// The offset to start each followed rank's log at: a resume offset where the client gave
// one, else the start of its last `tail_lines`, else 0. `world` is the job's rank count.
// INVALID_ARGUMENT naming the field for a rank outside the job or a negative tail.
absl::StatusOr<std::map<int, int64_t>> LogStartOffsets(const std::string& run_dir, int world,
                                                       const LogStart& start);

struct RankLogLine {
  int rank = 0;
  std::string text;  // without the newline
  int64_t end = 0;   // offset just past the newline: where a resumed reader starts
};

// Follows the logs of a job's ranks: each Read gives the complete lines written since the
// last one, rank by rank. Thread-compatible.
class RankLogs {
 public:
  // Follows the ranks in `offsets` from there; with `discover`, also every further
  // logs/rank-N.log that appears (N = 0, 1, … without gaps), from its start.
  RankLogs(std::string run_dir, std::map<int, int64_t> offsets, bool discover = false)
      : run_dir_(std::move(run_dir)), offsets_(std::move(offsets)), discover_(discover) {}
  // At most about `max_bytes` of each rank's log per call; what is left comes next time.
  std::vector<RankLogLine> Read(int64_t max_bytes = 256 * 1024);
  const std::map<int, int64_t>& offsets() const { return offsets_; }

 private:
  const std::string run_dir_;
  std::map<int, int64_t> offsets_;
  const bool discover_;
};

}  // namespace matbert
