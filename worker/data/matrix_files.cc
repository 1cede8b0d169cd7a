#include "worker/data/matrix_files.h"

#include <charconv>
#include <cmath>
#include <cstring>
#include <limits>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/file_util.h"
#include "common/status_macros.h"

namespace matbert {
namespace {

constexpr char kNpyMagic[] = "\x93NUMPY";
constexpr double kNan = std::numeric_limits<double>::quiet_NaN();

absl::Status Bad(const std::string& path, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(path, ": ", what));
}

bool IsMissing(absl::string_view cell) {
  return cell.empty() || cell == "nan" || cell == "NaN" || cell == "NAN" || cell == "NA";
}

absl::StatusOr<MatrixFile> ReadCsv(const std::string& path, const std::string& text) {
  MatrixFile file;
  file.format = MatrixFile::kCsv;
  int rows_in_block = 0;
  int line_number = 0;
  auto end_block = [&]() -> absl::Status {
    if (rows_in_block == 0) return absl::OkStatus();
    if (file.count == 0) file.m = rows_in_block;
    if (rows_in_block != file.m) {
      return Bad(path, absl::StrCat("matrix ", file.count + 1, " (ending at line ", line_number,
                                    ") has ", rows_in_block, " rows; the first has ", file.m));
    }
    ++file.count;
    rows_in_block = 0;
    return absl::OkStatus();
  };
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_number;
    line = absl::StripTrailingAsciiWhitespace(line);  // also "\r"
    if (absl::StripAsciiWhitespace(line).empty()) {
      RETURN_IF_ERROR(end_block());
      continue;
    }
    if (absl::StartsWith(line, "#")) continue;
    std::vector<absl::string_view> cells = absl::StrSplit(line, ',');
    if (file.n == 0) file.n = static_cast<int>(cells.size());
    if (static_cast<int>(cells.size()) != file.n) {
      return Bad(path, absl::StrCat("line ", line_number, " has ", cells.size(),
                                    " values; the first row has ", file.n));
    }
    for (size_t c = 0; c < cells.size(); ++c) {
      const absl::string_view cell = absl::StripAsciiWhitespace(cells[c]);
      double v = kNan;
      if (!IsMissing(cell) && (!absl::SimpleAtod(cell, &v) || !std::isfinite(v))) {
        return Bad(path, absl::StrCat("line ", line_number, ", column ", c + 1, ": \"", cell,
                                      "\" is not a number (missing entries are empty or nan)"));
      }
      file.values.push_back(v);
    }
    ++rows_in_block;
  }
  RETURN_IF_ERROR(end_block());
  if (file.count == 0) return Bad(path, "holds no matrix");
  return file;
}

// The value of 'key' in a .npy header dict ("{'descr': '<f8', 'fortran_order': False, ...}").
absl::string_view HeaderField(absl::string_view header, absl::string_view key) {
  const std::string quoted = absl::StrCat("'", key, "':");
  size_t at = header.find(quoted);
  if (at == absl::string_view::npos) return {};
  absl::string_view rest = absl::StripLeadingAsciiWhitespace(header.substr(at + quoted.size()));
  if (absl::StartsWith(rest, "(")) return rest.substr(0, rest.find(')') + 1);
  if (absl::StartsWith(rest, "'")) return rest.substr(0, rest.find('\'', 1) + 1);
  return rest.substr(0, rest.find_first_of(",}"));
}

absl::StatusOr<MatrixFile> ReadNpy(const std::string& path, const std::string& data) {
  if (data.size() < 10 || data.compare(0, 6, kNpyMagic, 6) != 0) {
    return Bad(path, "not a .npy file (no \\x93NUMPY magic)");
  }
  const int major = static_cast<unsigned char>(data[6]);
  size_t header_len = 0, header_at = 0;
  if (major == 1) {
    header_len = static_cast<unsigned char>(data[8]) | static_cast<unsigned char>(data[9]) << 8;
    header_at = 10;
  } else if (major == 2 || major == 3) {
    if (data.size() < 12) return Bad(path, "truncated .npy header");
    for (int i = 0; i < 4; ++i)
      header_len |= size_t{static_cast<unsigned char>(data[8 + i])} << 8 * i;
    header_at = 12;
  } else {
    return Bad(path, absl::StrCat(".npy format version ", major, " is not supported (1, 2, 3)"));
  }
  if (header_at + header_len > data.size()) return Bad(path, "truncated .npy header");
  const absl::string_view header(data.data() + header_at, header_len);
  const absl::string_view descr = HeaderField(header, "descr");
  const absl::string_view fortran = HeaderField(header, "fortran_order");
  const absl::string_view shape_text = HeaderField(header, "shape");
  size_t item = 0;
  if (descr == "'<f8'") item = 8;
  if (descr == "'<f4'") item = 4;
  if (item == 0) {
    return Bad(path, absl::StrCat("dtype ", descr.empty() ? "(none)" : descr,
                                  " is not supported: save float64 or float32"));
  }
  if (fortran != "False") {
    return Bad(path, "Fortran order is not supported: save np.ascontiguousarray(a)");
  }
  std::vector<int64_t> shape;
  absl::string_view dims = absl::StripPrefix(absl::StripSuffix(shape_text, ")"), "(");
  for (absl::string_view d : absl::StrSplit(dims, ',', absl::SkipWhitespace())) {
    int64_t v = 0;
    if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(d), &v) || v < 1 || v > (1 << 30)) {
      return Bad(path, absl::StrCat("shape ", shape_text, " is not a shape of positive sizes"));
    }
    shape.push_back(v);
  }
  if (shape.size() != 2 && shape.size() != 3) {
    return Bad(path, absl::StrCat("shape ", shape_text, ": expected (m, n) or (k, m, n)"));
  }
  MatrixFile file;
  file.format = MatrixFile::kNpy;
  file.stacked = shape.size() == 3;
  file.count = file.stacked ? shape[0] : 1;
  file.m = static_cast<int>(shape[shape.size() - 2]);
  file.n = static_cast<int>(shape[shape.size() - 1]);
  const size_t entries = static_cast<size_t>(file.count) * file.m * file.n;
  const size_t body = header_at + header_len;
  if (entries > (data.size() - body) / item || data.size() - body != entries * item) {
    return Bad(path, absl::StrCat("holds ", data.size() - body, " bytes of data; shape ",
                                  shape_text, " needs ", entries * item));
  }
  file.values.resize(entries);
  for (size_t i = 0; i < entries; ++i) {
    if (item == 8) {
      std::memcpy(&file.values[i], data.data() + body + 8 * i, 8);
    } else {
      float f;
      std::memcpy(&f, data.data() + body + 4 * i, 4);
      file.values[i] = f;
    }
  }
  return file;
}

std::string ShortestForm(double v) {
  if (std::isnan(v)) return "nan";
  char buffer[32];
  auto [end, ec] = std::to_chars(buffer, buffer + sizeof(buffer), v);
  return std::string(buffer, end);
}

std::string CsvText(const MatrixFile& file) {
  std::string out;
  for (int64_t k = 0; k < file.count; ++k) {
    if (k > 0) out += "\n";
    for (int i = 0; i < file.m; ++i) {
      const double* row = file.values.data() + (k * file.m + i) * file.n;
      for (int j = 0; j < file.n; ++j) absl::StrAppend(&out, j ? "," : "", ShortestForm(row[j]));
      out += "\n";
    }
  }
  return out;
}

std::string NpyBytes(const MatrixFile& file) {
  const std::string shape = file.stacked
                                ? absl::StrCat("(", file.count, ", ", file.m, ", ", file.n, ")")
                                : absl::StrCat("(", file.m, ", ", file.n, ")");
  std::string header =
      absl::StrCat("{'descr': '<f8', 'fortran_order': False, 'shape': ", shape, ", }");
  // Version 1.0: magic, version, 2-byte length; the data starts 64-byte aligned.
  const size_t unpadded = 10 + header.size() + 1;
  header.append((64 - unpadded % 64) % 64, ' ');
  header += '\n';
  std::string out(kNpyMagic, 6);
  out += '\x01';
  out += '\x00';
  out += static_cast<char>(header.size() & 0xff);
  out += static_cast<char>(header.size() >> 8);
  out += header;
  out.append(reinterpret_cast<const char*>(file.values.data()), file.values.size() * 8);
  return out;
}

}  // namespace

absl::StatusOr<MatrixFile> ReadMatrixFile(const std::string& path) {
  const bool csv = absl::EndsWithIgnoreCase(path, ".csv");
  if (!csv && !absl::EndsWithIgnoreCase(path, ".npy")) {
    return Bad(path, "unknown format: the name must end in .csv or .npy");
  }
  ASSIGN_OR_RETURN(std::string data, ReadFileToString(path));
  return csv ? ReadCsv(path, data) : ReadNpy(path, data);
}

absl::Status WriteMatrixFile(const std::string& path, const MatrixFile& file) {
  return WriteFileAtomically(path,
                             file.format == MatrixFile::kCsv ? CsvText(file) : NpyBytes(file));
}

}  // namespace matbert
