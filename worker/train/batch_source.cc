#include "worker/train/batch_source.h"

#include <algorithm>
#include <chrono>
#include <map>
#include <numeric>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "worker/data/random.h"

namespace matbert {
namespace {

// Stream ids separating the uses of the training seed.
constexpr uint64_t kTrainMatrices = 0x7472616E;  // "tran"
constexpr uint64_t kTrainMasks = 0x6D61736B;     // "mask"
constexpr uint64_t kEvalMatrices = 0x6576616C;   // "eval"
constexpr uint64_t kEvalMasks = 0x65766D6B;
constexpr uint64_t kDataOrder = 0x6F726472;  // "ordr"

uint64_t SubSeed(int64_t seed, uint64_t use) {
  return Mix64(static_cast<uint64_t>(seed) ^ Mix64(use));
}

CollatorOptions CollatorFor(const JobSpec& spec, uint64_t mask_use) {
  CollatorOptions c;
  const MatrixSection& m = spec.matrix;
  const bool scheduled = m.mask_prob_start > 0 && m.mask_prob_end > 0;
  c.mask_prob = scheduled ? m.mask_prob_end : m.mask_prob;
  c.mask_prob_start = scheduled ? m.mask_prob_start : c.mask_prob;
  c.schedule_steps = scheduled ? spec.training.steps : 1;
  c.bert_masking = m.mask_strategy == "bert";
  c.diffusion = m.objective == "diffusion";
  c.causal_fraction = m.objective == "hybrid" ? m.causal_fraction : 0;
  c.random_prob = m.mask_random_prob;
  c.keep_prob = m.mask_keep_prob;
  c.loss_masked_only = spec.matrix.loss_masked_only;
  c.seed = SubSeed(spec.training.seed, mask_use);
  return c;
}

FactorLaw FactorsOf(const JobSpec& spec) {
  return {spec.matrix.factor_dist, spec.matrix.factor_mean};
}

MatrixTokenizer TokenizerFor(const JobSpec& spec) {
  return *MatrixTokenizer::Create({spec.matrix.prec, spec.matrix.n_sigma, spec.matrix.row_sep});
}

// Global index of sample b of micro-batch `key` on `rank`: the stream is laid out step by
// step, rank by rank, micro by micro.
uint64_t SampleKey(const BatchKey& key, int rank, int world, int grad_accum, int batch, int b) {
  const uint64_t micro_index =
      (static_cast<uint64_t>(key.step - 1) * world + rank) * grad_accum + key.micro;
  return micro_index * batch + b;
}

class OnlineSource : public BatchSource {
 public:
  OnlineSource(const JobSpec& spec, int rank, int world)
      : spec_(spec),
        rank_(rank),
        world_(world),
        tokenizer_(TokenizerFor(spec)),
        collator_(tokenizer_, CollatorFor(spec, kTrainMasks)),
        generator_({spec.matrix.m, spec.matrix.n, spec.matrix.r},
                   SubSeed(spec.training.seed, kTrainMatrices), FactorsOf(spec)) {}

  absl::StatusOr<TrainBatch> Get(const BatchKey& key) override {
    const int b = spec_.training.batch_size;
    const int64_t l = tokenizer_.SequenceLength(spec_.matrix.m, spec_.matrix.n);
    ids_.resize(b * l);
    values_.resize(b * l);
    matrix_.resize(static_cast<size_t>(spec_.matrix.m) * spec_.matrix.n);
    keys_.resize(b);
    for (int i = 0; i < b; ++i) {
      keys_[i] = SampleKey(key, rank_, world_, spec_.training.grad_accum, b, i);
      generator_.Generate(keys_[i], matrix_);
      tokenizer_.EncodeMatrix(matrix_, spec_.matrix.m, spec_.matrix.n,
                              {ids_.data() + i * l, size_t(l)},
                              {values_.data() + i * l, size_t(l)});
    }
    return collator_.Collate(ids_, values_, keys_, key.step);
  }

 private:
  const JobSpec spec_;
  const int rank_, world_;
  MatrixTokenizer tokenizer_;
  MatrixCollator collator_;
  MatrixGenerator generator_;
  std::vector<int32_t> ids_;
  std::vector<double> values_, matrix_;
  std::vector<uint64_t> keys_;
};

// Rows of an offline dataset in a seeded order per epoch: record batches shuffled, rows
// within a record batch shuffled, so reading stays one record batch at a time.
class OfflineSource : public BatchSource {
 public:
  OfflineSource(const JobSpec& spec, int rank, int world, MatrixDataset dataset)
      : spec_(spec),
        rank_(rank),
        world_(world),
        dataset_(std::move(dataset)),
        collator_(dataset_.tokenizer(), CollatorFor(spec, kTrainMasks)) {}

  absl::StatusOr<TrainBatch> Get(const BatchKey& key) override {
    const int b = spec_.training.batch_size;
    const int64_t l = dataset_.row_length();
    ids_.resize(b * l);
    values_.resize(b * l);
    keys_.resize(b);
    for (int i = 0; i < b; ++i) {
      keys_[i] = SampleKey(key, rank_, world_, spec_.training.grad_accum, b, i);
      ASSIGN_OR_RETURN(auto row, Locate(keys_[i]));
      if (row.first != cached_batch_) {
        ASSIGN_OR_RETURN(arrow::ListBatch batch, dataset_.ReadBatch(row.first));
        cached_ = std::move(batch);
        cached_batch_ = row.first;
      }
      auto row_ids = cached_->row<int32_t>(0, row.second);
      auto row_values = cached_->row<double>(1, row.second);
      std::copy(row_ids.begin(), row_ids.end(), ids_.begin() + i * l);
      std::copy(row_values.begin(), row_values.end(), values_.begin() + i * l);
    }
    return collator_.Collate(ids_, values_, keys_, key.step);
  }

 private:
  // (record batch, row within it) of global sample `key`.
  absl::StatusOr<std::pair<int, int64_t>> Locate(uint64_t key) {
    const int64_t n = dataset_.num_rows();
    const int64_t epoch = static_cast<int64_t>(key / n);
    int64_t offset = static_cast<int64_t>(key % n);
    if (epoch != order_epoch_) {
      order_.resize(dataset_.num_batches());
      std::iota(order_.begin(), order_.end(), 0);
      RandomStream rng(SubSeed(spec_.training.seed, kDataOrder), static_cast<uint64_t>(epoch));
      for (size_t i = order_.size(); i > 1; --i)
        std::swap(order_[i - 1], order_[rng.NextU64() % i]);
      order_epoch_ = epoch;
    }
    for (int batch : order_) {
      const int64_t rows = BatchRows(batch);
      if (offset < rows) {
        // A seeded affine permutation of the rows: (a*offset + c) mod rows with a coprime.
        RandomStream rng(SubSeed(spec_.training.seed, kDataOrder + 1),
                         static_cast<uint64_t>(epoch) * dataset_.num_batches() + batch);
        int64_t a = 1 + static_cast<int64_t>(rng.NextU64() % rows);
        while (std::gcd(a, rows) != 1) a = a % rows + 1;
        const int64_t c = static_cast<int64_t>(rng.NextU64() % rows);
        return std::make_pair(batch, (a * offset + c) % rows);
      }
      offset -= rows;
    }
    return absl::InternalError("offline dataset: sample index past the end");
  }

  int64_t BatchRows(int batch) const {
    const int64_t end = batch + 1 < dataset_.num_batches() ? dataset_.batch_first_row(batch + 1)
                                                           : dataset_.num_rows();
    return end - dataset_.batch_first_row(batch);
  }

  const JobSpec spec_;
  const int rank_, world_;
  MatrixDataset dataset_;
  MatrixCollator collator_;
  std::vector<int> order_;
  int64_t order_epoch_ = -1;
  std::optional<arrow::ListBatch> cached_;
  int cached_batch_ = -1;
  std::vector<int32_t> ids_;
  std::vector<double> values_;
  std::vector<uint64_t> keys_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<BatchSource>> MakeBatchSource(const JobSpec& spec, int rank,
                                                             int world_size) {
  if (spec.matrix.dataset.empty()) return std::make_unique<OnlineSource>(spec, rank, world_size);
  ASSIGN_OR_RETURN(MatrixDataset dataset, MatrixDataset::Open(spec.matrix.dataset));
  const MatrixShape& s = dataset.shape();
  const TokenizerOptions& t = dataset.tokenizer().options();
  if (s.m != spec.matrix.m || s.n != spec.matrix.n || t.prec != spec.matrix.prec ||
      t.n_sigma != spec.matrix.n_sigma || t.row_sep != spec.matrix.row_sep ||
      dataset.factors() != FactorsOf(spec)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "matrix.dataset ", spec.matrix.dataset, " holds ", s.m, "x", s.n, " matrices with prec ",
        t.prec, ", n_sigma ", t.n_sigma, ", row_sep ", t.row_sep ? "true" : "false", ", factors ",
        dataset.factors().Describe(), "; the spec asks for ", spec.matrix.m, "x", spec.matrix.n,
        ", prec ", spec.matrix.prec, ", n_sigma ", spec.matrix.n_sigma, ", row_sep ",
        spec.matrix.row_sep ? "true" : "false", ", factors ", FactorsOf(spec).Describe()));
  }
  return std::make_unique<OfflineSource>(spec, rank, world_size, std::move(dataset));
}

std::vector<TrainBatch> MakeEvalBatches(const JobSpec& spec) {
  const MatrixTokenizer tokenizer = TokenizerFor(spec);
  MatrixCollator collator(tokenizer, CollatorFor(spec, kEvalMasks));
  MatrixGenerator generator({spec.matrix.m, spec.matrix.n, spec.matrix.r},
                            SubSeed(spec.training.seed, kEvalMatrices), FactorsOf(spec));
  const int64_t l = tokenizer.SequenceLength(spec.matrix.m, spec.matrix.n);
  std::vector<double> matrix(static_cast<size_t>(spec.matrix.m) * spec.matrix.n);
  std::vector<TrainBatch> out;
  for (int first = 0; first < spec.training.eval_samples; first += spec.training.batch_size) {
    const int b = std::min(spec.training.batch_size, spec.training.eval_samples - first);
    std::vector<int32_t> ids(b * l);
    std::vector<double> values(b * l);
    std::vector<uint64_t> keys(b);
    for (int i = 0; i < b; ++i) {
      keys[i] = static_cast<uint64_t>(first + i);
      generator.Generate(keys[i], matrix);
      tokenizer.EncodeMatrix(matrix, spec.matrix.m, spec.matrix.n, {ids.data() + i * l, size_t(l)},
                             {values.data() + i * l, size_t(l)});
    }
    out.push_back(collator.Collate(ids, values, keys));
  }
  return out;
}

Prefetcher::Prefetcher(std::unique_ptr<BatchSource> source, BatchKey first, int grad_accum,
                       int depth)
    : source_(std::move(source)), grad_accum_(grad_accum), depth_(depth), next_(first) {
  thread_ = std::thread([this] { Run(); });
}

Prefetcher::~Prefetcher() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void Prefetcher::Run() {
  std::unique_lock lock(mu_);
  while (true) {
    cv_.wait(lock, [&] { return stop_ || ready_.size() < depth_; });
    if (stop_) return;
    const BatchKey key = next_;
    next_ =
        key.micro + 1 < grad_accum_ ? BatchKey{key.step, key.micro + 1} : BatchKey{key.step + 1, 0};
    lock.unlock();
    const auto start = std::chrono::steady_clock::now();
    absl::StatusOr<TrainBatch> batch = source_->Get(key);
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    lock.lock();
    produce_seconds_ += seconds;
    ready_.emplace_back(key, std::move(batch));
    cv_.notify_all();
  }
}

absl::StatusOr<TrainBatch> Prefetcher::Next(const BatchKey& key) {
  auto start = std::chrono::steady_clock::now();
  std::unique_lock lock(mu_);
  cv_.wait(lock, [&] { return !ready_.empty(); });
  wait_seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  auto [got, batch] = std::move(ready_.front());
  ready_.pop_front();
  cv_.notify_all();
  if (got.step != key.step || got.micro != key.micro) {
    return absl::InternalError(absl::StrCat("prefetcher out of order: wanted step ", key.step,
                                            " micro ", key.micro, ", got step ", got.step));
  }
  return batch;
}

}  // namespace matbert
