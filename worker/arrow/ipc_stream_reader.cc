#include "worker/arrow/ipc_stream_reader.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "common/file_util.h"
#include "common/status_macros.h"
#include "worker/arrow/arrow_ipc_generated.h"

namespace matbert::arrow {
namespace {

constexpr uint32_t kContinuation = 0xFFFFFFFF;
// Larger metadata than this is certainly corrupt for these schemas.
constexpr int32_t kMaxMetadataLength = 64 << 20;
// Rows of one record batch: list offsets are int32, so no list column can hold more.
constexpr int64_t kMaxRows = int64_t{1} << 31;

}  // namespace

absl::Status IpcStreamReader::Error(int64_t offset, absl::string_view what) const {
  return absl::DataLossError(absl::StrCat(path_, ": byte offset ", offset, ": ", what));
}

absl::Status IpcStreamReader::ReadExact(int64_t offset, void* out, size_t size) const {
  auto* p = static_cast<uint8_t*>(out);
  while (size > 0) {
    ssize_t n = ::pread(fd_.get(), p, size, offset);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(errno, "cannot read", path_);
    }
    if (n == 0) return Error(offset, "unexpected end of file");
    p += n;
    offset += n;
    size -= static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

absl::StatusOr<IpcStreamReader> IpcStreamReader::Open(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus(errno, "cannot open", path);
  IpcStreamReader reader(path, UniqueFd(fd));
  struct stat st;
  if (::fstat(fd, &st) != 0) return ErrnoStatus(errno, "cannot stat", path);
  reader.file_size_ = st.st_size;
  RETURN_IF_ERROR(reader.Scan());
  return reader;
}

namespace {

// Parses one column of a schema: list<int32> or list<float64> with an "item" child.
absl::StatusOr<ListField> ParseField(const fb::Field* field) {
  ListField out;
  if (field->name() != nullptr) out.name = field->name()->str();
  if (field->type_type() != fb::Type::List) {
    return absl::InvalidArgumentError(absl::StrCat("column '", out.name,
                                                   "' is not a list (type tag ",
                                                   static_cast<int>(field->type_type()), ")"));
  }
  if (field->children() == nullptr || field->children()->size() != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("list column '", out.name, "' must have exactly one child"));
  }
  // A union's tag may name a type whose table is absent: the type_as_* accessors are null then.
  const fb::Field* child = field->children()->Get(0);
  const fb::Int* int_type = child->type_as_Int();
  const fb::FloatingPoint* float_type = child->type_as_FloatingPoint();
  if (int_type != nullptr && int_type->bit_width() == 32 && int_type->is_signed()) {
    out.element = ElementType::kInt32;
  } else if (float_type != nullptr && float_type->precision() == fb::Precision::DOUBLE) {
    out.element = ElementType::kFloat64;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("column '", out.name, "': only list<int32> and list<float64> are supported"));
  }
  return out;
}

}  // namespace

absl::Status IpcStreamReader::Scan() {
  int64_t offset = 0;
  bool have_schema = false;
  std::vector<uint8_t> metadata;
  while (true) {
    if (offset == file_size_) {
      return Error(offset, "stream ends without the end-of-stream marker (truncated?)");
    }
    if (offset + 8 > file_size_) return Error(offset, "truncated message header");
    uint32_t header[2];
    RETURN_IF_ERROR(ReadExact(offset, header, 8));
    if (header[0] != kContinuation) {
      return Error(offset,
                   "expected the continuation marker FFFFFFFF (not an Arrow IPC stream, "
                   "or a pre-0.15 stream)");
    }
    const auto length = static_cast<int32_t>(header[1]);
    if (length == 0) {
      if (!have_schema) return Error(offset, "end of stream before the schema");
      if (offset + 8 != file_size_)
        return Error(offset + 8, "bytes after the end-of-stream marker");
      return absl::OkStatus();
    }
    if (length < 0 || length > kMaxMetadataLength || offset + 8 + length > file_size_) {
      return Error(offset, absl::StrCat("metadata length ", length, " is out of bounds"));
    }
    if (length % 8 != 0) return Error(offset, "metadata length is not a multiple of 8");
    metadata.resize(static_cast<size_t>(length));
    RETURN_IF_ERROR(ReadExact(offset + 8, metadata.data(), metadata.size()));
    flatbuffers::Verifier verifier(metadata.data(), metadata.size());
    if (!fb::VerifyMessageBuffer(verifier)) {
      return Error(offset + 8, "message metadata is not a valid flatbuffer");
    }
    const fb::Message* message = fb::GetMessage(metadata.data());
    if (message->version() < fb::MetadataVersion::V4) {
      return Error(offset,
                   absl::StrCat("metadata version V", static_cast<int>(message->version()) + 1,
                                " is not supported (need V4 or V5)"));
    }
    const int64_t body_length = message->body_length();
    const int64_t body_offset = offset + 8 + length;
    if (body_length < 0 || body_length > file_size_ - body_offset) {
      return Error(offset, absl::StrCat("body length ", body_length, " runs past the end of file"));
    }
    if (!have_schema) {
      if (message->header_type() != fb::MessageHeader::Schema) {
        return Error(offset, "the first message must be a Schema");
      }
      const fb::Schema* schema = message->header_as_Schema();
      if (schema == nullptr) return Error(offset, "Schema message without its schema");
      if (schema->endianness() != fb::Endianness::Little) {
        return Error(offset, "big-endian streams are not supported");
      }
      if (schema->fields() != nullptr) {
        for (const fb::Field* field : *schema->fields()) {
          auto parsed = ParseField(field);
          if (!parsed.ok()) return Error(offset, parsed.status().message());
          schema_.fields.push_back(*parsed);
        }
      }
      if (schema->custom_metadata() != nullptr) {
        for (const fb::KeyValue* kv : *schema->custom_metadata()) {
          schema_.metadata.emplace_back(kv->key() ? kv->key()->str() : "",
                                        kv->value() ? kv->value()->str() : "");
        }
      }
      have_schema = true;
    } else if (message->header_type() == fb::MessageHeader::RecordBatch) {
      const fb::RecordBatch* batch = message->header_as_RecordBatch();
      if (batch == nullptr) return Error(offset, "RecordBatch message without its batch");
      if (batch->length() < 0 || batch->length() > kMaxRows) {
        return Error(offset, absl::StrCat("record batch length ", batch->length(),
                                          " is out of bounds [0, ", kMaxRows, "]"));
      }
      batches_.push_back(
          {offset, offset + 8, length, body_offset, body_length, batch->length(), num_rows_});
      num_rows_ += batch->length();
    } else {
      return Error(offset, absl::StrCat("unsupported message type ",
                                        static_cast<int>(message->header_type()),
                                        " (only Schema and RecordBatch are read)"));
    }
    offset = body_offset + body_length;
  }
}

absl::StatusOr<ListBatch> IpcStreamReader::ReadBatch(int k) const {
  const BatchEntry& entry = batches_[k];
  std::vector<uint8_t> metadata(static_cast<size_t>(entry.metadata_length));
  RETURN_IF_ERROR(ReadExact(entry.metadata_offset, metadata.data(), metadata.size()));
  flatbuffers::Verifier verifier(metadata.data(), metadata.size());
  if (!fb::VerifyMessageBuffer(verifier)) {
    return Error(entry.message_offset, "message metadata changed since the file was opened");
  }
  const fb::RecordBatch* batch = fb::GetMessage(metadata.data())->header_as_RecordBatch();
  const int64_t at = entry.message_offset;
  if (batch == nullptr || batch->length() != entry.rows) {
    return Error(at, "message metadata changed since the file was opened");
  }
  const size_t num_fields = schema_.fields.size();
  if (batch->compression() != nullptr)
    return Error(at, "compressed record batches are not supported");
  if (batch->nodes() == nullptr || batch->nodes()->size() != 2 * num_fields) {
    return Error(at, absl::StrCat("expected ", 2 * num_fields, " field nodes"));
  }
  if (batch->buffers() == nullptr || batch->buffers()->size() != 4 * num_fields) {
    return Error(at, absl::StrCat("expected ", 4 * num_fields, " buffers"));
  }
  std::vector<BufferSpan> buffers;
  for (const fb::Buffer* b : *batch->buffers()) {
    if (b->offset() < 0 || b->length() < 0 || b->offset() > entry.body_length ||
        b->length() > entry.body_length - b->offset()) {
      return Error(at,
                   absl::StrCat("buffer ", buffers.size(), " [", b->offset(), ", +", b->length(),
                                ") lies outside the body of ", entry.body_length, " bytes"));
    }
    if (b->offset() % 8 != 0) {
      return Error(at, absl::StrCat("buffer ", buffers.size(), " is not 8-byte aligned"));
    }
    buffers.push_back({b->offset(), b->length()});
  }
  std::vector<int64_t> child_lengths;
  for (size_t f = 0; f < num_fields; ++f) {
    const fb::FieldNode* list = batch->nodes()->Get(2 * f);
    const fb::FieldNode* child = batch->nodes()->Get(2 * f + 1);
    const std::string& name = schema_.fields[f].name;
    if (list->length() != batch->length() || list->null_count() != 0 || child->null_count() != 0) {
      return Error(at, absl::StrCat("column '", name,
                                    "': node length differs from the batch, or has nulls"));
    }
    // Lengths are bounded before they are multiplied: batch->length() by kMaxRows in Scan.
    if (buffers[4 * f + 1].length < 4 * (batch->length() + 1)) {
      return Error(at, absl::StrCat("column '", name, "': offsets buffer too short"));
    }
    if (child->length() < 0 || child->length() > entry.body_length ||
        buffers[4 * f + 3].length < ElementSize(schema_.fields[f].element) * child->length()) {
      return Error(at, absl::StrCat("column '", name, "': values buffer too short"));
    }
    child_lengths.push_back(child->length());
  }

  std::unique_ptr<uint8_t[]> body(new uint8_t[static_cast<size_t>(entry.body_length) + 1]);
  RETURN_IF_ERROR(ReadExact(entry.body_offset, body.get(), static_cast<size_t>(entry.body_length)));
  ListBatch out = ListBatch::FromBody(batch->length(), child_lengths, std::move(body),
                                      entry.body_length, std::move(buffers));
  for (size_t f = 0; f < num_fields; ++f) {
    const int32_t* off = out.offsets(static_cast<int>(f));
    if (off[0] < 0)
      return Error(at, absl::StrCat("column '", schema_.fields[f].name, "': negative offset"));
    for (int64_t i = 0; i < out.rows(); ++i) {
      if (off[i + 1] < off[i] || off[i + 1] > child_lengths[f]) {
        return Error(entry.body_offset + out.buffers()[4 * f + 1].offset + 4 * (i + 1),
                     absl::StrCat("column '", schema_.fields[f].name, "': offset of row ", i + 1,
                                  " is out of order or past the values"));
      }
    }
  }
  return out;
}

}  // namespace matbert::arrow
