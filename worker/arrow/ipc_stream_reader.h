// Reads and validates an Arrow IPC stream of list<int32> / list<float64> columns, as
// written by IpcStreamWriter or by pyarrow / HuggingFace datasets. Open() walks every
// message header once, so a truncated or corrupt stream is refused up front; ReadBatch()
// then loads one record batch at a time (memory stays bounded by one batch). Every refusal
// names the file and the byte offset of the offending message.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/unique_fd.h"
#include "worker/arrow/list_batch.h"

namespace matbert::arrow {

class IpcStreamReader {
 public:
  static absl::StatusOr<IpcStreamReader> Open(const std::string& path);

  IpcStreamReader(IpcStreamReader&&) = default;
  IpcStreamReader& operator=(IpcStreamReader&&) = default;

  const ListSchema& schema() const { return schema_; }
  int num_batches() const { return static_cast<int>(batches_.size()); }
  int64_t num_rows() const { return num_rows_; }
  // Rows in batch k, and the index of its first row in the stream.
  int64_t batch_rows(int k) const { return batches_[k].rows; }
  int64_t batch_first_row(int k) const { return batches_[k].first_row; }

  // Reads and validates batch k (offsets monotonic and within the values, buffers within
  // the body). Thread-compatible: concurrent calls on one reader are safe (pread).
  absl::StatusOr<ListBatch> ReadBatch(int k) const;

 private:
  struct BatchEntry {
    int64_t message_offset = 0;   // start of the encapsulated message
    int64_t metadata_offset = 0;  // start of the flatbuffer
    int32_t metadata_length = 0;
    int64_t body_offset = 0;
    int64_t body_length = 0;
    int64_t rows = 0;
    int64_t first_row = 0;
  };

  IpcStreamReader(std::string path, UniqueFd fd) : path_(std::move(path)), fd_(std::move(fd)) {}
  absl::Status Scan();
  absl::Status Error(int64_t offset, absl::string_view what) const;
  absl::Status ReadExact(int64_t offset, void* out, size_t size) const;

  std::string path_;
  UniqueFd fd_;
  int64_t file_size_ = 0;
  ListSchema schema_;
  std::vector<BatchEntry> batches_;
  int64_t num_rows_ = 0;
};

}  // namespace matbert::arrow
