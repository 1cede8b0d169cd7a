#include "worker/arrow/ipc_stream_writer.h"

#include <fcntl.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "common/file_util.h"
#include "worker/arrow/arrow_ipc_generated.h"

namespace matbert::arrow {
namespace {

constexpr uint32_t kContinuation = 0xFFFFFFFF;

// Continuation marker, int32 length of (flatbuffer + padding), flatbuffer, zero padding to
// a multiple of 8 bytes in total.
std::string Encapsulate(const flatbuffers::FlatBufferBuilder& fbb) {
  const size_t size = fbb.GetSize();
  const size_t padded = (8 + size + 7) / 8 * 8 - 8;
  std::string out(8 + padded, '\0');
  const int32_t length = static_cast<int32_t>(padded);
  std::memcpy(out.data(), &kContinuation, 4);
  std::memcpy(out.data() + 4, &length, 4);
  std::memcpy(out.data() + 8, fbb.GetBufferPointer(), size);
  return out;
}

flatbuffers::Offset<fb::Field> BuildField(flatbuffers::FlatBufferBuilder& fbb,
                                          const ListField& field) {
  flatbuffers::Offset<void> child_type;
  fb::Type child_type_tag;
  if (field.element == ElementType::kInt32) {
    child_type = fb::CreateInt(fbb, 32, true).Union();
    child_type_tag = fb::Type::Int;
  } else {
    child_type = fb::CreateFloatingPoint(fbb, fb::Precision::DOUBLE).Union();
    child_type_tag = fb::Type::FloatingPoint;
  }
  auto item = fb::CreateField(fbb, fbb.CreateString("item"), /*nullable=*/true, child_type_tag,
                              child_type, fbb.CreateVector<flatbuffers::Offset<fb::Field>>({}));
  auto list_type = fb::CreateList(fbb).Union();
  return fb::CreateField(fbb, fbb.CreateString(field.name), /*nullable=*/true, fb::Type::List,
                         list_type, fbb.CreateVector(std::vector{item}));
}

std::string EncodeSchemaMessage(const ListSchema& schema) {
  flatbuffers::FlatBufferBuilder fbb(1024);
  std::vector<flatbuffers::Offset<fb::Field>> fields;
  for (const ListField& field : schema.fields) fields.push_back(BuildField(fbb, field));
  std::vector<flatbuffers::Offset<fb::KeyValue>> metadata;
  for (const auto& [key, value] : schema.metadata) {
    metadata.push_back(fb::CreateKeyValue(fbb, fbb.CreateString(key), fbb.CreateString(value)));
  }
  auto fb_schema = fb::CreateSchema(fbb, fb::Endianness::Little, fbb.CreateVector(fields),
                                    fbb.CreateVector(metadata));
  fbb.Finish(fb::CreateMessage(fbb, fb::MetadataVersion::V5, fb::MessageHeader::Schema,
                               fb_schema.Union(), /*body_length=*/0));
  return Encapsulate(fbb);
}

}  // namespace

std::string EncodeRecordBatchPrefix(const ListBatch& batch, const ListSchema& schema) {
  flatbuffers::FlatBufferBuilder fbb(512);
  std::vector<fb::FieldNode> nodes;
  for (int f = 0; f < static_cast<int>(schema.fields.size()); ++f) {
    nodes.emplace_back(batch.rows(), 0);           // the list column
    nodes.emplace_back(batch.child_length(f), 0);  // its "item" child
  }
  std::vector<fb::Buffer> buffers;
  for (const BufferSpan& b : batch.buffers()) buffers.emplace_back(b.offset, b.length);
  auto record_batch = fb::CreateRecordBatch(fbb, batch.rows(), fbb.CreateVectorOfStructs(nodes),
                                            fbb.CreateVectorOfStructs(buffers));
  fbb.Finish(fb::CreateMessage(fbb, fb::MetadataVersion::V5, fb::MessageHeader::RecordBatch,
                               record_batch.Union(), static_cast<int64_t>(batch.body().size())));
  return Encapsulate(fbb);
}

absl::StatusOr<IpcStreamWriter> IpcStreamWriter::Open(const std::string& path, ListSchema schema) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoStatus(errno, "cannot create", path);
  IpcStreamWriter writer(path, UniqueFd(fd), std::move(schema));
  std::string message = EncodeSchemaMessage(writer.schema_);
  std::span<const uint8_t> part(reinterpret_cast<const uint8_t*>(message.data()), message.size());
  absl::Status status = writer.WriteVector({&part, 1});
  if (!status.ok()) return status;
  return writer;
}

absl::Status IpcStreamWriter::WriteVector(std::span<const std::span<const uint8_t>> parts) {
  std::vector<iovec> iov;
  size_t total = 0;
  for (const auto& p : parts) {
    if (p.empty()) continue;
    iov.push_back({const_cast<uint8_t*>(p.data()), p.size()});
    total += p.size();
  }
  size_t first = 0;
  size_t remaining = total;
  while (remaining > 0) {
    ssize_t n = ::writev(fd_.get(), iov.data() + first, static_cast<int>(iov.size() - first));
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(errno, "cannot write", path_);
    }
    remaining -= static_cast<size_t>(n);
    auto written = static_cast<size_t>(n);
    while (first < iov.size() && written >= iov[first].iov_len) {
      written -= iov[first].iov_len;
      ++first;
    }
    if (first < iov.size()) {
      iov[first].iov_base = static_cast<uint8_t*>(iov[first].iov_base) + written;
      iov[first].iov_len -= written;
    }
  }
  bytes_written_ += static_cast<int64_t>(total);
  return absl::OkStatus();
}

absl::Status IpcStreamWriter::Write(const ListBatch& batch, const std::string& prefix) {
  std::string computed;
  const std::string* message = &prefix;
  if (prefix.empty()) {
    computed = EncodeRecordBatchPrefix(batch, schema_);
    message = &computed;
  }
  std::span<const uint8_t> parts[2] = {
      {reinterpret_cast<const uint8_t*>(message->data()), message->size()}, batch.body()};
  return WriteVector(parts);
}

absl::Status IpcStreamWriter::Finish() {
  static constexpr uint8_t kEndOfStream[8] = {0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0};
  std::span<const uint8_t> part(kEndOfStream, 8);
  absl::Status status = WriteVector({&part, 1});
  if (status.ok() && ::fsync(fd_.get()) != 0) status = ErrnoStatus(errno, "cannot fsync", path_);
  if (fd_.Reset() != 0 && status.ok()) status = ErrnoStatus(errno, "cannot close", path_);
  return status;
}

}  // namespace matbert::arrow
