#include "server/core/run_files.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "common/checkpoint_sums.h"
#include "common/file_util.h"
#include "common/run_layout.h"
#include "common/sha256.h"
#include "common/unique_fd.h"

namespace matbert {
namespace fs = std::filesystem;

std::vector<CheckpointDir> ListCheckpointDirs(const std::string& run_dir) {
  std::vector<CheckpointDir> out;
  std::error_code ec;
  for (const fs::directory_entry& entry : fs::directory_iterator(RunCheckpointsDir(run_dir), ec)) {
    const std::string name = entry.path().filename().string();
    const std::optional<int64_t> step = ParseCheckpointDirName(name);
    if (!step.has_value() || !entry.is_directory(ec)) continue;
    CheckpointDir dir;
    dir.step = *step;
    dir.path = entry.path().string();
    dir.name = name;
    for (const fs::directory_entry& file : fs::directory_iterator(entry.path(), ec)) {
      if (file.is_regular_file()) dir.size_bytes += static_cast<int64_t>(file.file_size());
    }
    struct stat st;
    if (::stat(dir.path.c_str(), &st) == 0) {
      dir.mtime_ms = int64_t{st.st_mtim.tv_sec} * 1000 + st.st_mtim.tv_nsec / 1000000;
    }
    out.push_back(std::move(dir));
  }
  std::sort(out.begin(), out.end(),
            [](const CheckpointDir& a, const CheckpointDir& b) { return a.step < b.step; });
  return out;
}

ResumePoint NewestIntactCheckpoint(const std::string& run_dir) {
  ResumePoint point;
  std::vector<CheckpointDir> dirs = ListCheckpointDirs(run_dir);
  for (auto it = dirs.rbegin(); it != dirs.rend(); ++it) {
    const absl::Status intact = VerifyChecksums(it->path);
    if (intact.ok()) {
      point.step = it->step;
      break;
    }
    std::error_code ec;
    fs::remove_all(it->path + ".corrupt", ec);  // an older corrupt copy of the same step
    fs::rename(it->path, it->path + ".corrupt", ec);
    point.skipped.push_back(absl::StrCat("step ", it->step, ": ", intact.message()));
  }
  return point;
}

absl::StatusOr<std::vector<FileDigest>> DigestDirectory(const std::string& dir) {
  std::vector<FileDigest> files;
  std::error_code ec;
  for (const fs::directory_entry& entry : fs::directory_iterator(dir, ec)) {
    if (!entry.is_regular_file()) continue;
    FileDigest f;
    f.name = entry.path().filename().string();
    f.size = static_cast<int64_t>(entry.file_size());
    auto sha = Sha256File(entry.path().string());
    if (!sha.ok()) return sha.status();
    f.sha256 = *sha;
    files.push_back(std::move(f));
  }
  if (ec) return ErrnoStatus(ec.value(), "cannot list", dir);
  std::sort(files.begin(), files.end(),
            [](const FileDigest& a, const FileDigest& b) { return a.name < b.name; });
  return files;
}

std::vector<LogLineAt> ReadLogLines(const std::string& path, int64_t offset, int64_t max_bytes) {
  std::vector<LogLineAt> lines;
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return lines;
  std::string buf(static_cast<size_t>(max_bytes), '\0');
  const ssize_t n = ::pread(fd.get(), buf.data(), buf.size(), offset);
  if (n <= 0) return lines;
  buf.resize(n);
  size_t start = 0;
  for (size_t nl; (nl = buf.find('\n', start)) != std::string::npos; start = nl + 1) {
    lines.push_back({buf.substr(start, nl - start), offset + static_cast<int64_t>(nl) + 1});
  }
  // One line longer than max_bytes: hand it out in pieces rather than stall on it.
  if (lines.empty() && n == max_bytes) lines.push_back({buf, offset + n});
  return lines;
}

int64_t TailOffset(const std::string& path, int n) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid() || n <= 0) return 0;
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) return 0;
  int64_t end = st.st_size;
  // Only complete lines count: start from the last newline.
  int newlines = 0;
  std::vector<char> buf(64 * 1024);
  for (int64_t pos = end; pos > 0;) {
    const int64_t chunk = std::min<int64_t>(pos, buf.size());
    pos -= chunk;
    if (::pread(fd.get(), buf.data(), chunk, pos) != chunk) return 0;
    for (int64_t i = chunk - 1; i >= 0; --i) {
      if (buf[i] != '\n') continue;
      if (pos + i + 1 == end) continue;  // the newline ending the last line
      if (++newlines == n) return pos + i + 1;
    }
  }
  return 0;
}

absl::StatusOr<std::map<int, int64_t>> LogStartOffsets(const std::string& run_dir, int world,
                                                       const LogStart& start) {
  world = std::max(1, world);
  if (start.tail_lines < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("tail_lines must be >= 0, got ", start.tail_lines));
  }
  if (start.rank && (*start.rank < 0 || *start.rank >= world)) {
    return absl::InvalidArgumentError(
        absl::StrCat("rank must be between 0 and ", world - 1, ", got ", *start.rank));
  }
  std::map<int, int64_t> offsets;
  for (int rank = 0; rank < world; ++rank) {
    if (start.rank && rank != *start.rank) continue;
    if (auto it = start.resume_offsets.find(rank); it != start.resume_offsets.end()) {
      offsets[rank] = std::max<int64_t>(0, it->second);
    } else {
      offsets[rank] = TailOffset(RunLogPath(run_dir, rank), start.tail_lines);
    }
  }
  return offsets;
}

std::vector<RankLogLine> RankLogs::Read(int64_t max_bytes) {
  if (discover_) {
    for (int rank = 0;; ++rank) {
      if (::access(RunLogPath(run_dir_, rank).c_str(), F_OK) != 0) break;
      offsets_.try_emplace(rank, 0);
    }
  }
  std::vector<RankLogLine> out;
  for (auto& [rank, offset] : offsets_) {
    for (LogLineAt& line : ReadLogLines(RunLogPath(run_dir_, rank), offset, max_bytes)) {
      offset = line.end;
      out.push_back({rank, std::move(line.text), line.end});
    }
  }
  return out;
}

}  // namespace matbert
