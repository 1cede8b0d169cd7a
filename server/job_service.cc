#include "server/job_service.h"

#include <map>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "server/core/checkpoint_catalog.h"
#include "server/core/checkpoint_download.h"
#include "server/core/event_follower.h"
#include "server/core/run_files.h"
#include "server/proto_convert.h"
#include "server/rpc_call.h"

namespace matbert {
namespace {

constexpr size_t kChunkBytes = 1 << 20;

// The job, when the caller may act on it (its owner or an admin).
absl::StatusOr<JobView> JobFor(const Coordinator* coordinator, const Principal& caller,
                               const std::string& job_id) {
  ASSIGN_OR_RETURN(JobView view, coordinator->Get(job_id));
  RETURN_IF_ERROR(MayActOnJob(caller, job_id, view.job.owner));
  return view;
}

// Log lines as the API carries them.
void ToProto(const RankLogLine& line, v1::LogLine* out) {
  out->set_rank(line.rank);
  out->set_text(line.text);
  out->set_offset(line.end);
}

}  // namespace

grpc::ServerUnaryReactor* JobServiceImpl::SubmitJob(grpc::CallbackServerContext* ctx,
                                                    const v1::SubmitJobRequest* request,
                                                    v1::SubmitJobResponse* response) {
  return UnaryCall(ctx, *auth_, [&](const Principal& caller) -> absl::Status {
    RETURN_IF_ERROR(MayUseClientApi(caller));
    ASSIGN_OR_RETURN(JobView view, coordinator_->Submit(FromProto(*request, caller.user)));
    response->set_job_id(view.job.id);
    ToProto(view, coordinator_->options(), response->mutable_job());
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* JobServiceImpl::GetJob(grpc::CallbackServerContext* ctx,
                                                 const v1::GetJobRequest* request,
                                                 v1::Job* response) {
  return UnaryCall(ctx, *auth_, [&](const Principal& caller) -> absl::Status {
    RETURN_IF_ERROR(MayUseClientApi(caller));
    ASSIGN_OR_RETURN(JobView view, coordinator_->Get(request->job_id()));
    ToProto(view, coordinator_->options(), response);
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* JobServiceImpl::ListJobs(grpc::CallbackServerContext* ctx,
                                                   const v1::ListJobsRequest* request,
                                                   v1::ListJobsResponse* response) {
  return UnaryCall(ctx, *auth_, [&](const Principal& caller) -> absl::Status {
    RETURN_IF_ERROR(MayUseClientApi(caller));
    std::vector<JobState> states;
    for (int s : request->states()) {
      if (s < static_cast<int>(JobState::kQueued) || s > static_cast<int>(JobState::kPending)) {
        return absl::InvalidArgumentError(absl::StrCat(
            "states: unknown job state ", s, "; allowed JOB_STATE_QUEUED … PENDING (1-8)"));
      }
      states.push_back(static_cast<JobState>(s));
    }
    if (request->limit() < 0) return absl::InvalidArgumentError("limit must be >= 0");
    std::optional<std::string> owner;
    if (request->mine()) owner = caller.user;
    for (const JobView& view : coordinator_->List(states, request->limit(), owner)) {
      v1::Job* job = response->add_jobs();
      ToProto(view, coordinator_->options(), job);
      job->clear_spec_toml();  // kilobytes per job; GetJob has it
    }
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* JobServiceImpl::CancelJob(grpc::CallbackServerContext* ctx,
                                                    const v1::CancelJobRequest* request,
                                                    v1::Job* response) {
  return UnaryCall(ctx, *auth_, [&](const Principal& caller) -> absl::Status {
    RETURN_IF_ERROR(JobFor(coordinator_, caller, request->job_id()).status());
    ASSIGN_OR_RETURN(JobView view, coordinator_->Cancel(request->job_id(), request->force()));
    ToProto(view, coordinator_->options(), response);
    return absl::OkStatus();
  });
}

grpc::ServerWriteReactor<v1::JobEvent>* JobServiceImpl::WatchJob(
    grpc::CallbackServerContext* ctx, const v1::WatchJobRequest* request) {
  return StreamCall<v1::JobEvent>(ctx, *auth_, &streams_,
                                  [coordinator = coordinator_, request = *request](
                                      const Principal& caller, StreamWriter<v1::JobEvent>* writer) {
                                    const std::string& job_id = request.job_id();
                                    if (request.after_seq() < 0) {
                                      return absl::InvalidArgumentError("after_seq must be >= 0");
                                    }
                                    RETURN_IF_ERROR(JobFor(coordinator, caller, job_id).status());
                                    EventFollower follower(coordinator, job_id, request.after_seq(),
                                                           request.include_logs(),
                                                           [writer] { writer->Wake(); });
                                    while (true) {
                                      ASSIGN_OR_RETURN(EventFollower::Batch batch, follower.Next());
                                      for (const EventRecord& event : batch.events) {
                                        v1::JobEvent out;
                                        if (ToProto(event, &out) && !writer->Write(out))
                                          return absl::OkStatus();
                                      }
                                      for (const RankLogLine& line : batch.logs) {
                                        v1::JobEvent out;
                                        ToProto(line, out.mutable_log());
                                        if (!writer->Write(out)) return absl::OkStatus();
                                      }
                                      if (batch.ended) return absl::OkStatus();
                                      if (batch.more) continue;
                                      // Woken by a new event; the timeout also polls logs.
                                      if (!writer->WaitForWake(follower.poll_interval()))
                                        return absl::OkStatus();
                                    }
                                  });
}

grpc::ServerWriteReactor<v1::LogBatch>* JobServiceImpl::StreamLogs(
    grpc::CallbackServerContext* ctx, const v1::StreamLogsRequest* request) {
  return StreamCall<v1::LogBatch>(
      ctx, *auth_, &streams_,
      [coordinator = coordinator_, request = *request](const Principal& caller,
                                                       StreamWriter<v1::LogBatch>* writer) {
        absl::StatusOr<JobView> view = JobFor(coordinator, caller, request.job_id());
        if (!view.ok()) return view.status();
        LogStart start;
        if (request.has_rank()) start.rank = request.rank();
        start.resume_offsets.insert(request.resume_offsets().begin(),
                                    request.resume_offsets().end());
        start.tail_lines = request.tail_lines();
        absl::StatusOr<std::map<int, int64_t>> offsets =
            LogStartOffsets(view->run_dir, view->job.devices_requested, start);
        if (!offsets.ok()) return offsets.status();
        RankLogs logs(view->run_dir, *std::move(offsets));
        while (true) {
          // Whether the job had ended before this read: then the read sees everything.
          absl::StatusOr<JobView> now = coordinator->Get(request.job_id());
          const bool ended = !now.ok() || IsFinal(now->job.state);
          bool any = false;
          for (std::vector<RankLogLine> lines; !(lines = logs.Read()).empty();) {
            any = true;
            v1::LogBatch batch;
            for (const RankLogLine& line : lines) ToProto(line, batch.add_lines());
            if (!writer->Write(batch)) return absl::OkStatus();
          }
          if (!request.follow() || ended) return absl::OkStatus();
          if (!any && !writer->WaitForWake(std::chrono::milliseconds(200))) return absl::OkStatus();
        }
      });
}

grpc::ServerUnaryReactor* JobServiceImpl::ListCheckpoints(grpc::CallbackServerContext* ctx,
                                                          const v1::ListCheckpointsRequest* request,
                                                          v1::ListCheckpointsResponse* response) {
  return UnaryCall(ctx, *auth_, [&](const Principal& caller) -> absl::Status {
    ASSIGN_OR_RETURN(JobView view, JobFor(coordinator_, caller, request->job_id()));
    ASSIGN_OR_RETURN(std::vector<EventRecord> events, coordinator_->AllEvents(request->job_id()));
    for (const CheckpointEntry& c :
         CatalogCheckpoints(ListCheckpointDirs(view.run_dir), EvalsByStep(events))) {
      v1::CheckpointInfo* info = response->add_checkpoints();
      info->set_step(c.dir.step);
      info->set_size_bytes(c.dir.size_bytes);
      SetTimestamp(c.dir.mtime_ms, info->mutable_time());
      info->set_path("checkpoints/" + c.dir.name);
      info->mutable_eval()->insert(c.eval.begin(), c.eval.end());
    }
    return absl::OkStatus();
  });
}

grpc::ServerWriteReactor<v1::CheckpointChunk>* JobServiceImpl::DownloadCheckpoint(
    grpc::CallbackServerContext* ctx, const v1::DownloadCheckpointRequest* request) {
  return StreamCall<v1::CheckpointChunk>(
      ctx, *auth_, &streams_,
      [coordinator = coordinator_, request = *request](const Principal& caller,
                                                       StreamWriter<v1::CheckpointChunk>* writer) {
        absl::StatusOr<JobView> view = JobFor(coordinator, caller, request.job_id());
        if (!view.ok()) return view.status();
        std::optional<int64_t> step;
        if (request.has_step()) step = request.step();
        ASSIGN_OR_RETURN(CheckpointDownload download,
                         CheckpointDownload::Open(view->run_dir, step, request.job_id()));
        v1::CheckpointChunk first;
        first.set_step(download.step());
        for (const FileDigest& f : download.manifest()) {
          v1::CheckpointFile* entry = first.add_manifest();
          entry->set_name(f.name);
          entry->set_size(f.size);
          entry->set_sha256(f.sha256);
        }
        if (!writer->Write(first)) return absl::OkStatus();
        while (true) {
          ASSIGN_OR_RETURN(std::optional<CheckpointDownload::Chunk> next,
                           download.Next(kChunkBytes));
          if (!next) return absl::OkStatus();
          v1::CheckpointChunk chunk;
          chunk.set_step(download.step());
          chunk.set_file(next->file);
          chunk.set_offset(next->offset);
          chunk.set_data(std::move(next->data));
          if (!writer->Write(chunk)) return absl::OkStatus();
        }
      });
}

}  // namespace matbert
