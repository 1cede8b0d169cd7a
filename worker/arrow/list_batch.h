// Record batches of list<int32> / list<float64> columns in Arrow's columnar layout, laid
// out so that the body can be written to an IPC stream as it is: per column a validity
// buffer (empty: no nulls), int32 offsets, the child's validity (empty) and the child's
// values, each starting on an 8-byte boundary with zeroed padding.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

namespace matbert::arrow {

enum class ElementType { kInt32, kFloat64 };

inline int ElementSize(ElementType type) { return type == ElementType::kInt32 ? 4 : 8; }
const char* ElementTypeName(ElementType type);  // "int32", "float64"

struct ListField {
  std::string name;
  ElementType element = ElementType::kInt32;
  bool operator==(const ListField&) const = default;
};

// Columns of a stream plus the schema's custom metadata (key, value) pairs.
struct ListSchema {
  std::vector<ListField> fields;
  std::vector<std::pair<std::string, std::string>> metadata;
};

// Offset and length of one buffer inside a batch body, as in Arrow's Buffer struct.
struct BufferSpan {
  int64_t offset = 0;
  int64_t length = 0;
};

class ListBatch {
 public:
  // A batch of `rows` rows whose column f has child_lengths[f] elements in total, with the
  // body allocated and its padding zeroed; the caller fills offsets() and values().
  static ListBatch Allocate(const ListSchema& schema, int64_t rows,
                            std::span<const int64_t> child_lengths);

  // A batch over a body read from a file. `buffers` holds 4 per column in Arrow order
  // (validity, offsets, child validity, child values). REQUIRES: the spans lie within the
  // body, offsets and values are aligned to their element size (the reader checks).
  static ListBatch FromBody(int64_t rows, std::span<const int64_t> child_lengths,
                            std::unique_ptr<uint8_t[]> body, int64_t body_length,
                            std::vector<BufferSpan> buffers);

  int64_t rows() const { return rows_; }
  int num_fields() const { return static_cast<int>(child_lengths_.size()); }
  int64_t child_length(int field) const { return child_lengths_[field]; }

  // rows()+1 offsets into the column's values.
  int32_t* offsets(int field) {
    return reinterpret_cast<int32_t*>(body_.get() + buffers_[4 * field + 1].offset);
  }
  const int32_t* offsets(int field) const {
    return reinterpret_cast<const int32_t*>(body_.get() + buffers_[4 * field + 1].offset);
  }
  // The column's values. REQUIRES: T matches the column's element type.
  template <typename T>
  T* values(int field) {
    return reinterpret_cast<T*>(body_.get() + buffers_[4 * field + 3].offset);
  }
  template <typename T>
  const T* values(int field) const {
    return reinterpret_cast<const T*>(body_.get() + buffers_[4 * field + 3].offset);
  }
  // Row `row` of column `field`.
  template <typename T>
  std::span<const T> row(int field, int64_t row) const {
    const int32_t* off = offsets(field);
    return {values<T>(field) + off[row], static_cast<size_t>(off[row + 1] - off[row])};
  }

  std::span<const uint8_t> body() const { return {body_.get(), static_cast<size_t>(body_length_)}; }
  const std::vector<BufferSpan>& buffers() const { return buffers_; }

 private:
  ListBatch() = default;

  int64_t rows_ = 0;
  std::vector<int64_t> child_lengths_;
  std::unique_ptr<uint8_t[]> body_;
  int64_t body_length_ = 0;
  std::vector<BufferSpan> buffers_;
};

}  // namespace matbert::arrow
