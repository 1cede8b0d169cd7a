// matbertctl download JOB [--step S | --latest] [-o DIR]: the download lands in a staging
// directory, every file is checked against the manifest's size and SHA-256 while it arrives,
// and the directory appears under its name only when all of it matched.
#include <fcntl.h>
#include <unistd.h>

#include <map>
#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "client/commands.h"
#include "client/exit_codes.h"
#include "client/job_format.h"
#include "common/file_util.h"
#include "common/progress_bar.h"
#include "common/sha256.h"
#include "common/staging_dir.h"
#include "common/unique_fd.h"

namespace matbert {

int RunDownload(Connection& conn, const DownloadOptions& options) {
  v1::DownloadCheckpointRequest request;
  request.set_job_id(options.job_id);
  if (options.step) request.set_step(*options.step);
  auto ctx = conn.NewContext(0);
  auto stream = conn.jobs().DownloadCheckpoint(ctx.get(), request);
  v1::CheckpointChunk chunk;
  if (!stream->Read(&chunk)) {
    return conn.Fail(stream->Finish(), "download " + options.job_id);
  }
  // The first chunk is the manifest.
  const int64_t step = chunk.step();
  std::map<std::string, v1::CheckpointFile> manifest;
  int64_t total = 0;
  for (const v1::CheckpointFile& f : chunk.manifest()) {
    if (f.name().empty() || f.name().find('/') != std::string::npos || f.name()[0] == '.') {
      absl::FPrintF(stderr, "matbertctl download: refusing file name \"%s\" in the manifest\n",
                    f.name());
      return kCtlError;
    }
    manifest[f.name()] = f;
    total += f.size();
  }
  const std::string target = !options.output_dir.empty()
                                 ? options.output_dir
                                 : absl::StrFormat("%s-step-%07d", options.job_id, step);
  absl::StatusOr<StagingDir> staging = StagingDir::Create(target, options.overwrite);
  if (!staging.ok()) {
    absl::FPrintF(stderr, "matbertctl download: %s%s\n", staging.status().message(),
                  staging.status().code() == absl::StatusCode::kAlreadyExists
                      ? " (pass --overwrite to replace it)"
                      : "");
    return kCtlError;
  }
  // A redrawn bar on a terminal; nothing in scripts and logs.
  ProgressBar bar(total, "bytes",
                  !conn.options().json && isatty(STDERR_FILENO) ? ProgressBar::Mode::kTerminal
                                                                : ProgressBar::Mode::kQuiet);
  struct Incoming {
    UniqueFd fd;
    Sha256 sha;
    int64_t size = 0;
  };
  std::map<std::string, std::unique_ptr<Incoming>> files;
  int64_t received = 0;
  while (stream->Read(&chunk)) {
    auto it = manifest.find(chunk.file());
    if (it == manifest.end()) {
      absl::FPrintF(stderr,
                    "matbertctl download: a chunk for \"%s\", which is not in the "
                    "manifest; nothing was written\n",
                    chunk.file());
      return kCtlError;
    }
    std::unique_ptr<Incoming>& in = files[chunk.file()];
    if (!in) {
      in = std::make_unique<Incoming>();
      const std::string path = staging->path() + "/" + chunk.file();
      in->fd = UniqueFd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
      if (!in->fd.valid()) {
        absl::FPrintF(stderr, "matbertctl download: %s\n",
                      ErrnoStatus(errno, "cannot create", path).message());
        return kCtlError;
      }
    }
    if (chunk.offset() != in->size) {
      absl::FPrintF(stderr,
                    "matbertctl download: %s arrived out of order (offset %d, expected "
                    "%d); nothing was written\n",
                    chunk.file(), chunk.offset(), in->size);
      return kCtlError;
    }
    if (absl::Status s = WriteAll(in->fd.get(), chunk.data().data(), chunk.data().size(),
                                  staging->path() + "/" + chunk.file());
        !s.ok()) {
      absl::FPrintF(stderr, "matbertctl download: %s\n", s.message());
      return kCtlError;
    }
    in->sha.Update(chunk.data());
    in->size += static_cast<int64_t>(chunk.data().size());
    received += static_cast<int64_t>(chunk.data().size());
    bar.Update(received);
  }
  grpc::Status status = stream->Finish();
  if (!status.ok()) return conn.Fail(status, "download " + options.job_id);
  bar.Finish();
  for (const auto& [name, expected] : manifest) {
    auto it = files.find(name);
    const int64_t size = it == files.end() ? 0 : it->second->size;
    const std::string sha = it == files.end() ? Sha256().HexDigest() : it->second->sha.HexDigest();
    if (size != expected.size() || sha != expected.sha256()) {
      absl::FPrintF(stderr,
                    "matbertctl download: %s does not match the manifest (size %d, expected %d; "
                    "SHA-256 %s, expected %s); nothing was written\n",
                    name, size, expected.size(), sha, expected.sha256());
      return kCtlError;
    }
  }
  files.clear();  // close before the commit fsyncs and renames
  if (absl::Status s = staging->Commit(); !s.ok()) {
    absl::FPrintF(stderr, "matbertctl download: %s\n", s.message());
    return kCtlError;
  }
  if (conn.options().json) {
    PrintJson({{"job_id", options.job_id},
               {"step", step},
               {"dir", target},
               {"bytes", total},
               {"files", static_cast<int>(manifest.size())}});
  } else {
    absl::PrintF("downloaded step %d of %s to %s (%d files, %s, SHA-256 verified)\n", step,
                 options.job_id, target, manifest.size(), Bytes(total));
  }
  return kCtlOk;
}

}  // namespace matbert
