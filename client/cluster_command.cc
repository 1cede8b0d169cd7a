// matbertctl cluster: devices, who holds them, and the queue.
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "client/commands.h"
#include "client/exit_codes.h"
#include "client/job_format.h"

namespace matbert {

int RunCluster(Connection& conn) {
  v1::GetClusterRequest request;
  v1::Cluster cluster;
  auto ctx = conn.NewContext();
  grpc::Status status = conn.cluster().GetCluster(ctx.get(), request, &cluster);
  if (!status.ok()) return conn.Fail(status, "cluster");
  if (conn.options().json) {
    PrintJson(ClusterJson(cluster));
    return kCtlOk;
  }
  if (!cluster.executor_trouble().empty()) {
    // Said first: everything below about the executor's cluster is its last answer.
    absl::PrintF("not answering: %s; what follows is its last answer, from %d s ago\n",
                 cluster.executor_trouble(), cluster.executor_age_s());
  }
  if (cluster.backend() == "slurm") {
    absl::PrintF("matbertd %s at %s: Slurm executor, %d node(s), %d job(s) in Slurm's queue\n",
                 cluster.version(), conn.options().addr, cluster.nodes_size(),
                 cluster.slurm_queue_size());
    absl::PrintF("%-16s  %-10s  %-9s  %-12s  %s\n", "NODE", "STATE", "CPUS A/T", "GRES",
                 "PARTITIONS");
    for (const v1::ClusterNode& n : cluster.nodes()) {
      absl::PrintF("%-16s  %-10s  %-9s  %-12s  %s\n", n.name(), n.state(),
                   absl::StrCat(n.cpus_allocated(), "/", n.cpus()), n.gres(),
                   absl::StrJoin(n.partitions(), ","));
    }
    if (cluster.slurm_queue_size() > 0) {
      absl::PrintF("\n%-10s  %-28s  %-10s  %-16s  %s\n", "SLURM JOB", "NAME", "STATE", "REASON",
                   "NODES");
      for (const v1::ClusterQueueEntry& e : cluster.slurm_queue()) {
        absl::PrintF("%-10s  %-28s  %-10s  %-16s  %s\n", e.id(), e.name(), e.state(), e.reason(),
                     e.nodes());
      }
    }
    return kCtlOk;
  }
  int held = 0;
  for (const v1::Device& d : cluster.devices()) held += d.job_id().empty() ? 0 : 1;
  absl::PrintF("matbertd %s at %s: %d %s device(s), %d held, %d queued job(s)\n", cluster.version(),
               conn.options().addr, cluster.devices_size(), cluster.device_kind(), held,
               cluster.queue_size());
  absl::PrintF("%-8s  %-32s  %-10s  %s\n", "DEVICE", "NAME", "MEMORY", "JOB");
  for (const v1::Device& d : cluster.devices()) {
    absl::PrintF("%-8s  %-32s  %-10s  %s\n", d.id(), d.name(),
                 d.memory_bytes() > 0 ? Bytes(d.memory_bytes()) : "-",
                 d.job_id().empty() ? "free" : d.job_id());
  }
  if (cluster.queue_size() > 0) {
    absl::PrintF("\n%-4s  %-6s  %-10s  %-24s  %-8s  %s\n", "POS", "JOB", "OWNER", "NAME",
                 "PRIORITY", "DEVICES");
    int position = 0;
    for (const v1::QueuedJob& q : cluster.queue()) {
      absl::PrintF("%-4d  %-6s  %-10s  %-24s  %-8d  %d\n", ++position, q.job_id(),
                   OwnerText(q.owner()), q.name(), q.priority(), q.devices_requested());
    }
  }
  return kCtlOk;
}

}  // namespace matbert
