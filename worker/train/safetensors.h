// The safetensors format (HuggingFace): an 8-byte little-endian header length N, N bytes of
// JSON {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...,
// "__metadata__": {string: string}}, padded with spaces to 8 bytes, then the raw data.
// Hand-written because Debian has no package for it; tested against a reader built from
// Python's json + numpy.
#pragma once

#include <ATen/Tensor.h>

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace matbert {

using NamedTensors = std::vector<std::pair<std::string, at::Tensor>>;

// Writes `tensors` (any of F32, F64, BF16, F16, I64, I32, U8; made contiguous CPU copies)
// in the given order, atomically (temp file, fsync, rename).
absl::Status WriteSafetensors(const std::string& path, const NamedTensors& tensors,
                              const std::map<std::string, std::string>& metadata = {});

struct SafetensorsFile {
  std::map<std::string, at::Tensor> tensors;  // CPU tensors owning their memory
  std::map<std::string, std::string> metadata;
};

// Reads and validates a file: header JSON, dtypes, shapes against byte ranges, ranges
// within the file and not overlapping. Errors name the file and the tensor.
absl::StatusOr<SafetensorsFile> ReadSafetensors(const std::string& path);

}  // namespace matbert
