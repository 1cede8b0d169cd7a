// Writes an Arrow IPC *stream* (not the ARROW1 file format): a Schema message, RecordBatch
// messages, and the end-of-stream marker FF FF FF FF 00 00 00 00. Metadata version V5,
// little-endian, 8-byte aligned, uncompressed. Spec: Apache Arrow "Columnar Format",
// section "Serialization and Interprocess Communication".
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "common/unique_fd.h"
#include "worker/arrow/list_batch.h"

namespace matbert::arrow {

// The encapsulated message prefix for `batch`: continuation marker, metadata length, the
// RecordBatch flatbuffer and padding. The batch body follows it in the stream. Pure
// function; safe to call from any thread.
std::string EncodeRecordBatchPrefix(const ListBatch& batch, const ListSchema& schema);

class IpcStreamWriter {
 public:
  // Creates `path` (truncating) and writes the schema message.
  static absl::StatusOr<IpcStreamWriter> Open(const std::string& path, ListSchema schema);

  // Destruction closes the file; a stream without Finish() has no end marker.
  IpcStreamWriter(IpcStreamWriter&&) = default;
  IpcStreamWriter& operator=(IpcStreamWriter&&) = default;

  // Appends a batch. `prefix` is EncodeRecordBatchPrefix(batch, schema), computed by the
  // caller (possibly on another thread) or left empty to compute it here.
  absl::Status Write(const ListBatch& batch, const std::string& prefix = {});

  // Writes the end-of-stream marker, fsyncs and closes the file.
  absl::Status Finish();

  int64_t bytes_written() const { return bytes_written_; }
  const ListSchema& schema() const { return schema_; }

 private:
  IpcStreamWriter(std::string path, UniqueFd fd, ListSchema schema)
      : path_(std::move(path)), fd_(std::move(fd)), schema_(std::move(schema)) {}
  absl::Status WriteVector(std::span<const std::span<const uint8_t>> parts);

  std::string path_;
  UniqueFd fd_;
  ListSchema schema_;
  int64_t bytes_written_ = 0;
};

}  // namespace matbert::arrow
