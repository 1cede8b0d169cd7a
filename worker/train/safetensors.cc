#include "worker/train/safetensors.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/status_macros.h"

namespace matbert {
namespace {

struct DtypeName {
  at::ScalarType type;
  const char* name;
};
constexpr DtypeName kDtypes[] = {{at::kFloat, "F32"}, {at::kDouble, "F64"}, {at::kBFloat16, "BF16"},
                                 {at::kHalf, "F16"},  {at::kLong, "I64"},   {at::kInt, "I32"},
                                 {at::kByte, "U8"},   {at::kBool, "BOOL"}};

const char* DtypeToName(at::ScalarType type) {
  for (const auto& d : kDtypes) {
    if (d.type == type) return d.name;
  }
  return nullptr;
}

bool NameToDtype(const std::string& name, at::ScalarType* type) {
  for (const auto& d : kDtypes) {
    if (name == d.name) {
      *type = d.type;
      return true;
    }
  }
  return false;
}

}  // namespace

absl::Status WriteSafetensors(const std::string& path, const NamedTensors& tensors,
                              const std::map<std::string, std::string>& metadata) {
  nlohmann::ordered_json header;
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::vector<at::Tensor> data;
  int64_t offset = 0;
  for (const auto& [name, tensor] : tensors) {
    const char* dtype = DtypeToName(tensor.scalar_type());
    if (dtype == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat("safetensors: tensor ", name, " has dtype ",
                                                     c10::toString(tensor.scalar_type()),
                                                     ", which the format cannot hold"));
    }
    at::Tensor t = tensor.detach().to(at::kCPU).contiguous();
    const int64_t bytes = t.numel() * static_cast<int64_t>(t.element_size());
    header[name] = {
        {"dtype", dtype}, {"shape", t.sizes().vec()}, {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
    data.push_back(std::move(t));
  }
  std::string json = header.dump();
  json.resize((json.size() + 7) / 8 * 8, ' ');
  std::string out(8, '\0');
  const uint64_t n = json.size();
  std::memcpy(out.data(), &n, 8);  // little-endian hosts only (x86-64, arm64)
  out += json;
  out.reserve(out.size() + static_cast<size_t>(offset));
  for (const at::Tensor& t : data) {
    out.append(static_cast<const char*>(t.data_ptr()), t.numel() * t.element_size());
  }
  return WriteFileAtomically(path, out);
}

namespace {
// The largest dimension accepted: 2^40, far beyond any real tensor, small enough that a
// product of them is checked for overflow before it is used.
constexpr uint64_t kMaxDim = uint64_t{1} << 40;
}  // namespace

absl::StatusOr<SafetensorsFile> ReadSafetensors(const std::string& path) {
  ASSIGN_OR_RETURN(std::string bytes, ReadFileToString(path));
  auto refuse = [&](const std::string& what) {
    return absl::DataLossError(absl::StrCat(path, ": ", what));
  };
  if (bytes.size() < 8) return refuse("shorter than the 8-byte header length");
  uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  if (n > bytes.size() - 8 || n > (100u << 20)) {
    return refuse(absl::StrCat("header length ", n, " exceeds the file size ", bytes.size()));
  }
  nlohmann::json header = nlohmann::json::parse(bytes.substr(8, n), nullptr, false);
  if (header.is_discarded() || !header.is_object()) return refuse("header is not a JSON object");
  const int64_t data_start = 8 + static_cast<int64_t>(n);
  const int64_t data_size = static_cast<int64_t>(bytes.size()) - data_start;

  SafetensorsFile file;
  std::vector<std::pair<int64_t, int64_t>> ranges;
  for (auto& [name, entry] : header.items()) {
    if (name == "__metadata__") {
      if (!entry.is_object()) return refuse("__metadata__ must be an object of strings");
      for (auto& [k, v] : entry.items()) {
        if (!v.is_string()) return refuse("__metadata__ must be an object of strings");
        file.metadata[k] = v.get<std::string>();
      }
      continue;
    }
    at::ScalarType type;
    if (!entry.is_object() || !entry.contains("dtype") || !entry["dtype"].is_string() ||
        !NameToDtype(entry["dtype"].get<std::string>(), &type)) {
      return refuse(absl::StrCat("tensor ", name, ": missing or unsupported dtype"));
    }
    const auto& shape = entry.value("shape", nlohmann::json());
    const auto& offsets = entry.value("data_offsets", nlohmann::json());
    if (!shape.is_array() || !offsets.is_array() || offsets.size() != 2 ||
        !offsets[0].is_number_unsigned() || !offsets[1].is_number_unsigned()) {
      return refuse(absl::StrCat("tensor ", name, ": needs \"shape\" and two \"data_offsets\""));
    }
    // Every number is bounded by the file before it is multiplied or used as an offset.
    std::vector<int64_t> sizes;
    int64_t numel = 1;
    for (const auto& dim : shape) {
      if (!dim.is_number_unsigned() || dim.get<uint64_t>() > kMaxDim) {
        return refuse(
            absl::StrCat("tensor ", name, ": bad shape (dimensions are 0 to ", kMaxDim, ")"));
      }
      sizes.push_back(dim.get<int64_t>());
      if (sizes.back() != 0 && numel > std::numeric_limits<int64_t>::max() / 16 / sizes.back()) {
        return refuse(absl::StrCat("tensor ", name, ": shape has too many elements"));
      }
      numel *= sizes.back();
    }
    const uint64_t begin_u = offsets[0].get<uint64_t>(), end_u = offsets[1].get<uint64_t>();
    if (begin_u > static_cast<uint64_t>(data_size) || end_u > static_cast<uint64_t>(data_size)) {
      return refuse(absl::StrCat("tensor ", name, ": data_offsets [", begin_u, ", ", end_u,
                                 ") lie past the ", data_size, " data bytes"));
    }
    const int64_t begin = static_cast<int64_t>(begin_u), end = static_cast<int64_t>(end_u);
    const int64_t expected = numel * static_cast<int64_t>(c10::elementSize(type));
    if (begin > end || end > data_size || end - begin != expected) {
      return refuse(absl::StrCat("tensor ", name, ": data_offsets [", begin, ", ", end,
                                 ") do not match its shape and dtype (", expected,
                                 " bytes) within ", data_size, " data bytes"));
    }
    ranges.emplace_back(begin, end);
    at::Tensor t = at::empty(sizes, at::TensorOptions().dtype(type));
    if (expected > 0) {  // an empty tensor has no data pointer to copy into
      std::memcpy(t.data_ptr(), bytes.data() + data_start + begin, static_cast<size_t>(expected));
    }
    file.tensors[name] = std::move(t);
  }
  std::sort(ranges.begin(), ranges.end());
  for (size_t i = 1; i < ranges.size(); ++i) {
    if (ranges[i].first < ranges[i - 1].second) return refuse("tensor data ranges overlap");
  }
  return file;
}

}  // namespace matbert
