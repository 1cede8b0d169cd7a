// matbert-worker: one training or generation process. Subcommands:
//   generate  write an offline low-rank matrix dataset (DESIGN.md §2)
//   inspect   validate a dataset directory and summarise it
//   train     train a BERT matrix-completion model (one rank)
//   complete  fill the missing entries of matrices with a trained checkpoint
#include <malloc.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"
#include "worker/complete_command.h"
#include "worker/generate_command.h"
#include "worker/inspect_command.h"
#include "worker/report/coordinator_reporter.h"
#include "worker/train_command.h"

int main(int argc, char** argv) {
  CLI::App app{
      "matbert-worker: generates matrix datasets, trains BERT matrix-completion "
      "models (one rank of a job) and completes matrices with them"};
  app.require_subcommand(1);
  app.set_help_all_flag("--help-all", "Show help for every subcommand");
  matbert::GenerateCommand generate(app);
  matbert::InspectCommand inspect(app);
  matbert::TrainCommand train(app);
  matbert::CompleteCommand complete(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    // One line, naming the flag; exit code 2 like other Unix tools' usage errors.
    std::string what = e.what();
    if (what.empty()) what = e.get_name();
    absl::FPrintF(stderr, "matbert-worker: %s (see --help)\n", what);
    return 2;
  }
  if (inspect.selected()) return inspect.Run();
  if (complete.selected()) return complete.Run();
  // Run by matbertd (MATBERT_COORDINATOR set): register, heartbeat and report to it.
  auto reporter = matbert::CoordinatorReporter::FromEnvironment();
  if (!reporter.ok()) {
    absl::FPrintF(stderr, "matbert-worker: %s\n", reporter.status().message());
    return 2;
  }
  if (*reporter) (*reporter)->Start(matbert::TrainCommand::StopFlag());
  if (train.selected()) {
    // Activations of a few MB are allocated and freed every training step. glibc serves blocks
    // that large with fresh mmap()s, so every step would page-fault and zero them again;
    // keeping them in the heap (and not trimming it) saves those faults (docs/benchmarks.md).
    // Process-wide, so it is set here and not inside the trainer library.
    ::mallopt(M_MMAP_THRESHOLD, 32 << 20);
    ::mallopt(M_TRIM_THRESHOLD, 1 << 30);
  }
  const int code = generate.selected() ? generate.Run() : train.Run(reporter->get());
  // Deliver what is queued (the daemon may be restarting) before the process goes away.
  // The exit message names the cause where the command knows it (the trainer's Status).
  std::string message;
  if (code != 0)
    message = train.selected() && !train.error().empty() ? train.error() : "see the rank's log";
  if (*reporter) (*reporter)->Finish(code, message, train.run_end(), 60);
  return code;
}
