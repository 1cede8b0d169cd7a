#include "common/checkpoint_sums.h"

#include <algorithm>
#include <filesystem>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/file_util.h"
#include "common/sha256.h"
#include "common/status_macros.h"

namespace matbert {
namespace fs = std::filesystem;

absl::Status WriteChecksums(const std::string& dir) {
  std::map<std::string, std::string> digests;
  std::error_code ec;
  for (const fs::directory_entry& entry : fs::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (!entry.is_regular_file() || name == kChecksumsFile || name.front() == '.') continue;
    ASSIGN_OR_RETURN(digests[name], Sha256File(entry.path().string()));
  }
  if (ec) return ErrnoStatus(ec.value(), "cannot list", dir);
  std::string text;
  for (const auto& [name, digest] : digests) absl::StrAppend(&text, digest, "  ", name, "\n");
  return WriteFileAtomically(dir + "/" + kChecksumsFile, text);
}

absl::StatusOr<std::map<std::string, std::string>> ReadChecksums(const std::string& dir) {
  const std::string path = dir + "/" + kChecksumsFile;
  ASSIGN_OR_RETURN(std::string text, ReadFileToString(path));
  std::map<std::string, std::string> digests;
  int line_number = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
    ++line_number;
    const bool hex =
        line.size() > 66 && std::all_of(line.begin(), line.begin() + 64, [](char c) {
          return absl::ascii_isxdigit(static_cast<unsigned char>(c)) && !absl::ascii_isupper(c);
        });
    if (!hex || line.substr(64, 2) != "  " || line.substr(66).find('/') != line.npos) {
      return absl::DataLossError(
          absl::StrCat(path, " line ", line_number, ": not \"<64 hex digits>  <file name>\""));
    }
    digests[std::string(line.substr(66))] = std::string(line.substr(0, 64));
  }
  return digests;
}

absl::Status CompareWithChecksums(const std::string& dir,
                                  const std::map<std::string, std::string>& digests) {
  absl::StatusOr<std::map<std::string, std::string>> recorded = ReadChecksums(dir);
  if (absl::IsNotFound(recorded.status())) return absl::OkStatus();
  RETURN_IF_ERROR(recorded.status());
  for (const auto& [name, digest] : *recorded) {
    auto it = digests.find(name);
    if (it == digests.end()) {
      return absl::DataLossError(
          absl::StrCat(dir, "/", name, " is missing (", kChecksumsFile, " lists it)"));
    }
    if (it->second != digest) {
      return absl::DataLossError(absl::StrCat(dir, "/", name, " is corrupt: its SHA-256 is ",
                                              it->second, ", ", kChecksumsFile, " recorded ",
                                              digest, " when it was written"));
    }
  }
  return absl::OkStatus();
}

absl::Status VerifyChecksums(const std::string& dir) {
  absl::StatusOr<std::map<std::string, std::string>> recorded = ReadChecksums(dir);
  if (absl::IsNotFound(recorded.status())) return absl::OkStatus();
  RETURN_IF_ERROR(recorded.status());
  std::map<std::string, std::string> digests;
  for (const auto& [name, unused] : *recorded) {
    absl::StatusOr<std::string> digest = Sha256File(dir + "/" + name);
    if (digest.ok()) {
      digests[name] = *std::move(digest);
    } else if (!absl::IsNotFound(digest.status())) {
      return digest.status();
    }
  }
  return CompareWithChecksums(dir, digests);
}

}  // namespace matbert
