// A checkpoint's record of its own bytes: SHA256SUMS inside the checkpoint directory, one
// "<64 hex digits>  <file name>" line per file, in the format `sha256sum -c` reads. The trainer
// writes it last, into the staging directory, so a complete checkpoint always has one; resume
// (the trainer and matbertd choosing where to resume) and download check the files against it,
// so a bit flip or a truncated file is reported by name instead of being loaded.
#pragma once

#include <map>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace matbert {

inline constexpr char kChecksumsFile[] = "SHA256SUMS";

// Hashes every regular file directly in `dir` (not SHA256SUMS itself, nor hidden files) and
// writes SHA256SUMS there, atomically.
absl::Status WriteChecksums(const std::string& dir);

// SHA256SUMS of `dir`: file name -> hex digest. NOT_FOUND when the directory has none (a
// checkpoint written before checksums were recorded); DATA_LOSS when it is malformed.
absl::StatusOr<std::map<std::string, std::string>> ReadChecksums(const std::string& dir);

// Checks digests computed by the caller (file name -> hex) against SHA256SUMS: DATA_LOSS
// naming the first file that is missing or differs. A checkpoint without SHA256SUMS passes.
absl::Status CompareWithChecksums(const std::string& dir,
                                  const std::map<std::string, std::string>& digests);

// Hashes the files SHA256SUMS lists and compares them (as above).
absl::Status VerifyChecksums(const std::string& dir);

}  // namespace matbert
