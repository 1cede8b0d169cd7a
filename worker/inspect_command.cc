#include "worker/inspect_command.h"

#include <fcntl.h>
#include <unistd.h>

#include "absl/strings/str_format.h"
#include "common/file_util.h"
#include "worker/data/matrix_dataset.h"
#include "worker/exit_codes.h"

namespace matbert {

InspectCommand::InspectCommand(CLI::App& app) {
  command_ = app.add_subcommand(
      "inspect",
      "Validate a generated dataset (every file, batch and row) and summarise it.\n"
      "Example:\n  matbert-worker inspect data/generated/my_dataset");
  command_->add_option("dir", dir_, "Dataset directory")->required();
  command_->add_option("--dump", dump_prefix_,
                       "Also write all rows as raw little-endian arrays: PREFIX.input_ids.i32 "
                       "and PREFIX.values.f64 (row-major, rows in order)");
}

int InspectCommand::Run() {
  absl::StatusOr<MatrixDataset> dataset = MatrixDataset::Open(dir_);
  absl::Status status = dataset.status();
  int ids_fd = -1, values_fd = -1;
  std::string ids_path = dump_prefix_ + ".input_ids.i32";
  std::string values_path = dump_prefix_ + ".values.f64";
  if (status.ok() && !dump_prefix_.empty()) {
    ids_fd = ::open(ids_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    values_fd = ::open(values_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (ids_fd < 0 || values_fd < 0) status = ErrnoStatus(errno, "cannot create", dump_prefix_);
  }
  if (status.ok()) {
    status = dataset->ForEachRow(
        [&](int64_t, std::span<const int32_t> ids, std::span<const double> values) {
          if (ids_fd < 0 || !status.ok()) return;
          status = WriteAll(ids_fd, ids.data(), ids.size_bytes(), ids_path);
          if (status.ok())
            status = WriteAll(values_fd, values.data(), values.size_bytes(), values_path);
        });
  }
  if (ids_fd >= 0) ::close(ids_fd);
  if (values_fd >= 0) ::close(values_fd);
  if (!status.ok()) {
    absl::FPrintF(stderr, "matbert-worker inspect: %s\n", status.message());
    return ExitCodeFor(status);
  }
  const MatrixShape& s = dataset->shape();
  const MatrixTokenizer& t = dataset->tokenizer();
  absl::PrintF("%s: valid\n", dir_);
  absl::PrintF("  rows %d in %d record batches, %d tokens each\n", dataset->num_rows(),
               dataset->num_batches(), dataset->row_length());
  absl::PrintF("  matrices %dx%d rank %d, seed %d\n", s.m, s.n, s.r, dataset->seed());
  absl::PrintF("  tokenizer prec %d, n_sigma %d, row_sep %s, vocab %d\n", t.options().prec,
               t.options().n_sigma, t.options().row_sep ? "on" : "off", t.vocab_size());
  return kExitOk;
}

}  // namespace matbert
