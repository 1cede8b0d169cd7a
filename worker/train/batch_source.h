// Where training batches come from: fresh matrices generated online, or rows of an offline
// dataset, collated with masks. Batch (step, micro) of rank `rank` is a pure function of
// the spec, so a resumed or re-sharded run sees the same stream. A Prefetcher builds the
// next batches on a background thread while the current step computes.
#pragma once

#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>

#include "absl/status/statusor.h"
#include "common/job_spec.h"
#include "worker/data/matrix_dataset.h"
#include "worker/data/matrix_generator.h"
#include "worker/train/collator.h"

namespace matbert {

// Position of one micro-batch in the global stream.
struct BatchKey {
  int64_t step = 1;  // optimizer step, 1-based
  int micro = 0;     // micro-step within grad_accum
};

class BatchSource {
 public:
  virtual ~BatchSource() = default;
  // The micro-batch `key` of this rank. Not thread-safe: one caller at a time.
  virtual absl::StatusOr<TrainBatch> Get(const BatchKey& key) = 0;
};

// Online generation or the offline dataset named in spec.matrix.dataset.
absl::StatusOr<std::unique_ptr<BatchSource>> MakeBatchSource(const JobSpec& spec, int rank,
                                                             int world_size);

// The fixed held-out evaluation set: spec.training.eval_samples fresh matrices (never
// training data), masked like training data, in batches of batch_size.
std::vector<TrainBatch> MakeEvalBatches(const JobSpec& spec);

// Runs a BatchSource ahead of the trainer on its own thread, `depth` micro-batches deep.
class Prefetcher {
 public:
  Prefetcher(std::unique_ptr<BatchSource> source, BatchKey first, int grad_accum, int depth = 2);
  ~Prefetcher();

  // The next micro-batch in order; REQUIRES: `key` is the one after the previous call's.
  absl::StatusOr<TrainBatch> Next(const BatchKey& key);
  // Seconds the caller spent waiting for data in Next() so far.
  double wait_seconds() const { return wait_seconds_; }
  // Seconds the background thread spent building batches so far (overlapped with training).
  double produce_seconds() {
    std::lock_guard lock(mu_);
    return produce_seconds_;
  }

 private:
  void Run();

  std::unique_ptr<BatchSource> source_;
  const int grad_accum_;
  const size_t depth_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::pair<BatchKey, absl::StatusOr<TrainBatch>>> ready_;  // guarded by mu_
  BatchKey next_;                                                      // guarded by mu_
  bool stop_ = false;                                                  // guarded by mu_
  double wait_seconds_ = 0;
  double produce_seconds_ = 0;  // guarded by mu_
  std::thread thread_;
};

}  // namespace matbert
