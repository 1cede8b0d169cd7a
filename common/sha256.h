// SHA-256 (OpenSSL's libcrypto) as lowercase hex: of a file, or of bytes fed piece by piece
// (a download checks each file while it arrives).
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace matbert {

class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  void Update(absl::string_view bytes);
  // The digest of everything fed so far, as 64 lowercase hex digits. Ends the hasher.
  std::string HexDigest();

 private:
  struct Context;
  std::unique_ptr<Context> ctx_;
};

absl::StatusOr<std::string> Sha256File(const std::string& path);

}  // namespace matbert
