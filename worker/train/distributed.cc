#include "worker/train/distributed.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <thread>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"

namespace matbert {
namespace {

constexpr char kPrefix[] = "matbert/";

// The local IPv4 address the kernel would send from to reach `host` (no packet is sent): the
// one on the network the peers share, not whatever this host's name resolves to (often
// 127.0.0.1). Empty when it cannot tell.
std::string LocalAddressTowards(const std::string& host, int port) {
  addrinfo hints{};
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_DGRAM;
  addrinfo* found = nullptr;
  if (getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &found) != 0) return "";
  std::string local;
  const int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd >= 0 && ::connect(fd, found->ai_addr, found->ai_addrlen) == 0) {
    sockaddr_in self{};
    socklen_t len = sizeof(self);
    char text[INET_ADDRSTRLEN];
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&self), &len) == 0 &&
        ::inet_ntop(AF_INET, &self.sin_addr, text, sizeof(text)) != nullptr) {
      local = text;
    }
  }
  if (fd >= 0) ::close(fd);
  freeaddrinfo(found);
  return local;
}

// The Gloo device of this rank: GLOO_SOCKET_IFNAME's interface when set, else the address
// that routes to MASTER_ADDR. Returns what the peers dial, for the log.
std::shared_ptr<::gloo::transport::Device> GlooDevice(const DistEnv& env, std::string* address) {
  if (const char* ifname = std::getenv("GLOO_SOCKET_IFNAME"); ifname != nullptr && *ifname) {
    *address = absl::StrCat("interface ", ifname);
    return c10d::ProcessGroupGloo::createDeviceForInterface(ifname);
  }
  const bool loopback = env.master_addr == "127.0.0.1" || env.master_addr == "localhost";
  *address = loopback ? "127.0.0.1" : LocalAddressTowards(env.master_addr, env.master_port);
  if (address->empty()) {
    *address = "the address of this host's name";
    return c10d::ProcessGroupGloo::createDefaultDevice();
  }
  return c10d::ProcessGroupGloo::createDeviceForHostname(*address);
}

}  // namespace

Communicator::Communicator(DistEnv env, c10::intrusive_ptr<c10d::Store> store,
                           c10::intrusive_ptr<c10d::ProcessGroupGloo> group)
    : env_(std::move(env)), store_(std::move(store)), group_(std::move(group)) {
  alive_thread_ = std::thread([this] {
    const std::string key = absl::StrCat(kPrefix, "alive/", env_.rank);
    while (!stop_alive_.load()) {
      try {
        store_->add(key, 1);
      } catch (const std::exception&) {
        return;  // the store is gone; collectives will report it
      }
      for (int i = 0; i < 5 && !stop_alive_.load(); ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
    }
  });
}

Communicator::~Communicator() {
  stop_alive_ = true;
  alive_thread_.join();
}

std::vector<int> Communicator::DeadPeers() {
  auto read = [&] {
    std::vector<int64_t> counts(env_.world_size, 0);
    for (int r = 0; r < env_.world_size; ++r)
      counts[r] = store_->add(absl::StrCat(kPrefix, "alive/", r), 0);
    return counts;
  };
  std::vector<int64_t> before = read();
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  std::vector<int64_t> after = read();
  std::vector<int> dead;
  for (int r = 0; r < env_.world_size; ++r) {
    if (r != env_.rank && after[r] == before[r]) dead.push_back(r);
  }
  return dead;
}

absl::StatusOr<std::unique_ptr<Communicator>> Communicator::Connect(const DistEnv& env,
                                                                    std::chrono::seconds timeout,
                                                                    int nccl_device) {
  const std::string where = absl::StrCat(env.master_addr, ":", env.master_port);
  c10::intrusive_ptr<c10d::Store> store;
  try {
    c10d::TCPStoreOptions options;
    options.port = static_cast<uint16_t>(env.master_port);
    options.isServer = env.rank == 0;
    options.numWorkers = env.world_size;
    options.waitWorkers = false;  // our own rendezvous below names who is missing
    options.timeout = timeout;
    store = c10::make_intrusive<c10d::TCPStore>(env.master_addr, options);
  } catch (const std::exception& e) {
    return absl::UnavailableError(absl::StrCat("rank ", env.rank, ": cannot reach the store at ",
                                               where, " (MASTER_ADDR:MASTER_PORT): ", e.what()));
  }
  store->set(absl::StrCat(kPrefix, "arrived/", env.rank), std::vector<uint8_t>{1});
  std::vector<std::string> keys;
  for (int r = 0; r < env.world_size; ++r) keys.push_back(absl::StrCat(kPrefix, "arrived/", r));
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!store->check(keys)) {
    if (std::chrono::steady_clock::now() > deadline) {
      std::vector<int> missing;
      for (int r = 0; r < env.world_size; ++r) {
        if (!store->check({keys[r]})) missing.push_back(r);
      }
      return absl::DeadlineExceededError(absl::StrCat(
          "rendezvous at ", where, " timed out after ", timeout.count(), " s: rank(s) ",
          absl::StrJoin(missing, ", "), " of ", env.world_size, " never arrived"));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  try {
    auto options = c10d::ProcessGroupGloo::Options::create(
        std::chrono::duration_cast<std::chrono::milliseconds>(timeout));
    std::string address;
    options->devices.push_back(GlooDevice(env, &address));
    if (env.world_size > 1 && env.master_addr != "127.0.0.1" && env.master_addr != "localhost") {
      fprintf(stderr, "rank %d of %d: collectives over %s (store at %s)\n", env.rank,
              env.world_size, address.c_str(), where.c_str());
    }
    options->threads = 2;
    auto group =
        c10::make_intrusive<c10d::ProcessGroupGloo>(store, env.rank, env.world_size, options);
    std::unique_ptr<Communicator> comm(new Communicator(env, store, group));
    if (nccl_device >= 0) {
      const std::string key = absl::StrCat(kPrefix, "nccl_id");
      if (env.rank == 0) {
        absl::StatusOr<std::string> id = NcclComm::NewUniqueId();
        if (!id.ok()) return id.status();
        store->set(key, std::vector<uint8_t>(id->begin(), id->end()));
      }
      std::vector<uint8_t> id = store->get(key);  // waits for rank 0, up to the timeout
      absl::StatusOr<std::unique_ptr<NcclComm>> nccl = NcclComm::Create(
          env.rank, env.world_size, nccl_device, std::string(id.begin(), id.end()));
      if (!nccl.ok()) return nccl.status();
      comm->nccl_ = *std::move(nccl);
    }
    return comm;
  } catch (const std::exception& e) {
    return absl::UnavailableError(
        absl::StrCat("rank ", env.rank, ": cannot form the Gloo process group: ", e.what()));
  }
}

void Communicator::Heartbeat(int64_t step) {
  try {
    const std::string value = std::to_string(step);
    store_->set(absl::StrCat(kPrefix, "step/", env_.rank),
                std::vector<uint8_t>(value.begin(), value.end()));
  } catch (const std::exception&) {
    // A dead store shows up in the next collective, which reports it.
  }
}

absl::Status Communicator::Failure(const std::string& what, int64_t step,
                                   const std::string& cause) {
  std::string peers;
  try {
    std::vector<std::string> lost;
    for (int r : DeadPeers()) {
      std::vector<uint8_t> v = store_->get(absl::StrCat(kPrefix, "step/", r));
      lost.push_back(
          absl::StrCat("rank ", r, " (last seen at step ", std::string(v.begin(), v.end()), ")"));
    }
    peers = lost.empty() ? "; every peer is still alive (a peer may be stuck, or slower than "
                           "training.collective_timeout)"
                         : "; lost: " + absl::StrJoin(lost, ", ");
  } catch (const std::exception&) {
    peers = "; lost: rank 0 (it hosts the store, which no longer answers)";
  }
  return absl::UnavailableError(
      absl::StrCat("rank ", env_.rank, ": ", what, " at step ", step, " failed: ", cause, peers));
}

absl::Status Communicator::Wait(const c10::intrusive_ptr<c10d::Work>& work, const std::string& what,
                                int64_t step) {
  try {
    work->wait();
  } catch (const c10::Error& e) {
    return Failure(what, step, e.what_without_backtrace());
  } catch (const std::exception& e) {
    return Failure(what, step, e.what());
  }
  return absl::OkStatus();
}

absl::Status Communicator::Broadcast(std::vector<torch::Tensor>& tensors, const std::string& what,
                                     int64_t step) {
  // Gloo broadcasts a list as copies of one tensor; send the tensors as one flat buffer.
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> flat_parts;
  for (const torch::Tensor& t : tensors) flat_parts.push_back(t.detach().reshape(-1));
  std::vector<torch::Tensor> flat{torch::cat(flat_parts).to(torch::kCPU)};  // Gloo: CPU
  try {
    RETURN_IF_ERROR(Wait(group_->broadcast(flat), what, step));
  } catch (const c10::Error& e) {
    return Failure(what, step, e.what_without_backtrace());
  } catch (const std::exception& e) {
    return Failure(what, step, e.what());
  }
  int64_t offset = 0;
  for (torch::Tensor& t : tensors) {
    t.detach().copy_(flat[0].narrow(0, offset, t.numel()).view(t.sizes()));
    offset += t.numel();
  }
  return absl::OkStatus();
}

absl::Status Communicator::AllReduceSum(std::vector<torch::Tensor>& tensors,
                                        const std::string& what, int64_t step) {
  try {
    return Wait(group_->allreduce(tensors), what, step);
  } catch (const c10::Error& e) {
    return Failure(what, step, e.what_without_backtrace());
  } catch (const std::exception& e) {
    return Failure(what, step, e.what());
  }
}

c10::intrusive_ptr<c10d::Work> Communicator::AllReduceAsync(torch::Tensor& tensor) {
  std::vector<torch::Tensor> tensors{tensor};
  return group_->allreduce(tensors);
}

GradientBuckets::GradientBuckets(std::vector<torch::Tensor> params, int64_t bucket_bytes,
                                 Communicator* comm)
    : params_(std::move(params)), where_(params_.size()), seen_(params_.size()), comm_(comm) {
  // Reverse order: the last layers' gradients are ready first.
  Bucket current;
  int64_t elements = 0;
  auto close = [&] {
    if (current.params.empty()) return;
    current.flat = torch::zeros({elements}, params_[current.params[0]].options());
    buckets_.push_back(std::move(current));
    current = Bucket();
    elements = 0;
  };
  for (size_t i = params_.size(); i-- > 0;) {
    where_[i] = {buckets_.size(), current.params.size()};
    current.params.push_back(i);
    current.offsets.push_back(elements);
    elements += params_[i].numel();
    if (elements * 4 >= bucket_bytes) close();
  }
  close();
  for (size_t i = 0; i < params_.size(); ++i) {
    params_[i].register_hook([this, i](const torch::Tensor& grad) { OnGradient(i, grad); });
  }
}

GradientBuckets::~GradientBuckets() = default;

void GradientBuckets::Arm() {
  armed_ = true;
  std::fill(seen_.begin(), seen_.end(), false);
  for (Bucket& b : buckets_) {
    b.ready = 0;
    b.work.reset();
    b.launched = false;
  }
}

void GradientBuckets::OnGradient(size_t param, const torch::Tensor& grad) {
  if (!armed_ || seen_[param]) return;
  seen_[param] = true;
  auto [bucket_index, slot] = where_[param];
  Bucket& bucket = buckets_[bucket_index];
  torch::NoGradGuard no_grad;
  torch::Tensor total = grad;
  // Earlier micro-steps accumulated into .grad; this hook sees only the last one's part.
  if (params_[param].grad().defined()) total = params_[param].grad() + grad;
  bucket.flat.narrow(0, bucket.offsets[slot], params_[param].numel()).copy_(total.reshape(-1));
  if (++bucket.ready == bucket.params.size()) Launch(bucket);
}

void GradientBuckets::Launch(Bucket& bucket) {
  bucket.launched = true;
  if (NcclComm* nccl = comm_->nccl()) {
    // Enqueued behind the kernels that wrote the bucket; a failure shows in Finish().
    launch_status_.Update(nccl->AllReduceSumFloat(bucket.flat.data_ptr(), bucket.flat.numel()));
  } else {
    bucket.work = comm_->AllReduceAsync(bucket.flat);
  }
}

absl::StatusOr<double> GradientBuckets::Finish(int64_t step) {
  armed_ = false;
  const auto start = std::chrono::steady_clock::now();
  torch::NoGradGuard no_grad;
  for (Bucket& bucket : buckets_) {
    if (bucket.launched) continue;
    // Parameters that got no gradient this step (unused) contribute zeros.
    for (size_t slot = 0; slot < bucket.params.size(); ++slot) {
      const size_t p = bucket.params[slot];
      if (seen_[p]) continue;
      torch::Tensor g = params_[p].grad();
      auto view = bucket.flat.narrow(0, bucket.offsets[slot], params_[p].numel());
      if (g.defined())
        view.copy_(g.reshape(-1));
      else
        view.zero_();
    }
    Launch(bucket);
  }
  const double world = comm_->world_size();
  if (!launch_status_.ok()) {
    absl::Status s = launch_status_;
    launch_status_ = absl::OkStatus();
    return absl::UnavailableError(
        absl::StrCat("all-reduce of gradients at step ", step, " failed: ", s.message()));
  }
  for (Bucket& bucket : buckets_) {
    if (bucket.work) {
      if (absl::Status s = comm_->Wait(bucket.work, "all-reduce of gradients", step); !s.ok()) {
        return s;
      }
    }
    for (size_t slot = 0; slot < bucket.params.size(); ++slot) {
      torch::Tensor& p = params_[bucket.params[slot]];
      torch::Tensor averaged =
          bucket.flat.narrow(0, bucket.offsets[slot], p.numel()).view(p.sizes()) / world;
      if (p.grad().defined()) {
        p.mutable_grad().copy_(averaged);
      } else {
        p.mutable_grad() = averaged.clone();
      }
    }
  }
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace matbert
