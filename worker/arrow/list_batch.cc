#include "worker/arrow/list_batch.h"

#include <cstring>

namespace matbert::arrow {
namespace {

int64_t PadTo8(int64_t n) { return (n + 7) & ~int64_t{7}; }

}  // namespace

const char* ElementTypeName(ElementType type) {
  return type == ElementType::kInt32 ? "int32" : "float64";
}

ListBatch ListBatch::Allocate(const ListSchema& schema, int64_t rows,
                              std::span<const int64_t> child_lengths) {
  ListBatch batch;
  batch.rows_ = rows;
  batch.child_lengths_.assign(child_lengths.begin(), child_lengths.end());
  int64_t cursor = 0;
  auto add = [&](int64_t length) {
    batch.buffers_.push_back({cursor, length});
    cursor += PadTo8(length);
  };
  for (size_t f = 0; f < schema.fields.size(); ++f) {
    add(0);                                                         // validity: no nulls
    add(4 * (rows + 1));                                            // int32 offsets
    add(0);                                                         // child validity
    add(ElementSize(schema.fields[f].element) * child_lengths[f]);  // child values
  }
  batch.body_length_ = cursor;
  batch.body_.reset(new uint8_t[static_cast<size_t>(cursor)]);
  // Zero only the padding; the caller overwrites every payload byte.
  for (const BufferSpan& b : batch.buffers_) {
    std::memset(batch.body_.get() + b.offset + b.length, 0,
                static_cast<size_t>(PadTo8(b.length) - b.length));
  }
  return batch;
}

ListBatch ListBatch::FromBody(int64_t rows, std::span<const int64_t> child_lengths,
                              std::unique_ptr<uint8_t[]> body, int64_t body_length,
                              std::vector<BufferSpan> buffers) {
  ListBatch batch;
  batch.rows_ = rows;
  batch.child_lengths_.assign(child_lengths.begin(), child_lengths.end());
  batch.body_ = std::move(body);
  batch.body_length_ = body_length;
  batch.buffers_ = std::move(buffers);
  return batch;
}

}  // namespace matbert::arrow
