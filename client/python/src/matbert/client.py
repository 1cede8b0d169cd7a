"""matbert.Client: the gRPC API of matbertd (package matbert.v1) for Python, with the defaults
and environment variables of matbertctl (MATBERT_ADDR, MATBERT_TOKEN, MATBERT_TLS_CA).

Every method turns gRPC errors into the exceptions of matbert.errors. Streams that follow a
job (watch, logs with follow=True) survive a restart of the daemon: they reconnect with
backoff and resume exactly where they stopped (by event sequence number, by log offset)."""
import hashlib
import os
import shutil
import time

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from . import errors
from .events import from_proto
from .job import Job
from .spec import spec_toml, override
from .v1 import cluster_service_pb2, cluster_service_pb2_grpc
from .v1 import job_pb2, job_service_pb2, job_service_pb2_grpc

DEFAULT_ADDR = "localhost:50051"


def _stamp_seconds(ts: Timestamp):
    return ts.seconds + ts.nanos / 1e9 if ts.seconds or ts.nanos else None


class Client:
    """A connection to one matbertd.

    addr: "host:port"; default $MATBERT_ADDR, else localhost:50051.
    token: bearer token; default $MATBERT_TOKEN (for a daemon started with tokens).
    tls_ca: PEM certificate file to trust, which turns TLS on; default $MATBERT_TLS_CA.
    timeout: seconds for each unary call.
    reconnect_timeout: seconds a following stream keeps trying to reach a restarting daemon.
    """

    def __init__(self, addr=None, token=None, tls_ca=None, timeout=30.0, reconnect_timeout=120.0):
        if addr:
            self.addr, self.addr_source = addr, "addr="
        elif os.environ.get("MATBERT_ADDR"):
            self.addr, self.addr_source = os.environ["MATBERT_ADDR"], "MATBERT_ADDR"
        else:
            self.addr, self.addr_source = DEFAULT_ADDR, "the default"
        self.token = token if token is not None else os.environ.get("MATBERT_TOKEN") or None
        tls_ca = tls_ca if tls_ca is not None else os.environ.get("MATBERT_TLS_CA") or None
        self.timeout, self.reconnect_timeout = timeout, reconnect_timeout
        options = [("grpc.max_receive_message_length", 64 << 20)]
        if tls_ca:
            with open(tls_ca, "rb") as f:
                credentials = grpc.ssl_channel_credentials(f.read())
            self._channel = grpc.secure_channel(self.addr, credentials, options)
        else:
            self._channel = grpc.insecure_channel(self.addr, options)
        self._jobs = job_service_pb2_grpc.JobServiceStub(self._channel)
        self._cluster = cluster_service_pb2_grpc.ClusterServiceStub(self._channel)

    def close(self):
        self._channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # --- plumbing -------------------------------------------------------------------------

    def _metadata(self):
        return (("authorization", f"Bearer {self.token}"),) if self.token else ()

    def _call(self, method, request, timeout=None):
        timeout = timeout or self.timeout
        try:
            return method(request, timeout=timeout, metadata=self._metadata())
        except grpc.RpcError as err:
            raise errors.from_rpc_error(err, self.addr, self.addr_source, timeout) from None

    def _follow(self, open_stream, on_item):
        """Yields the items of streams opened by open_stream(), reopening it while the daemon
        is unreachable for up to reconnect_timeout seconds; on_item(item) records how far the
        caller got, so that open_stream resumes after it."""
        waited, backoff = 0.0, 0.1
        while True:
            try:
                for item in open_stream():
                    waited, backoff = 0.0, 0.1
                    on_item(item)
                    yield item
                return
            except grpc.RpcError as err:
                if err.code() != grpc.StatusCode.UNAVAILABLE or waited >= self.reconnect_timeout:
                    raise errors.from_rpc_error(err, self.addr, self.addr_source) from None
                time.sleep(backoff)
                waited += backoff
                backoff = min(backoff * 2, 2.0)

    # --- jobs -----------------------------------------------------------------------------

    def submit(self, spec, overrides=None, gpus=None, nodes=None, priority=None, name=None,
               grace_period=None):
        """Queues a job and returns it (a Job; job.wait() follows it to the end).

        spec: a path to a TOML job spec, or a dict of sections ({"training": {"steps": 100}}).
        overrides: {"training.lr": 3e-4, ...}, applied after the spec like matbertctl's
        --section.key flags. gpus, nodes, priority, name: shortcuts for job.gpus, job.nodes,
        job.priority and job.name. grace_period: seconds between SIGTERM and SIGKILL at cancel.
        Raises InvalidSpec naming the key, ResourceExhausted when the queue is full."""
        text, source = spec_toml(spec)
        items = dict(overrides or {})
        for key, value in (("job.gpus", gpus), ("job.nodes", nodes), ("job.priority", priority),
                           ("job.name", name)):
            if value is not None:
                items[key] = value
        request = job_service_pb2.SubmitJobRequest(
            spec_toml=text, source_name=source,
            overrides=[override(k, v) for k, v in items.items()],
            grace_period_seconds=int(grace_period or 0))
        response = self._call(self._jobs.SubmitJob, request)
        return Job(response.job, self)

    def get(self, job_id):
        """The job's current state (a Job). Raises JobNotFound."""
        return Job(self._call(self._jobs.GetJob, job_service_pb2.GetJobRequest(job_id=str(job_id))),
                   self)

    def list(self, states=None, limit=0, mine=False):
        """Jobs, newest first; states: e.g. ["RUNNING", "QUEUED"]; limit 0 = all; mine: only
        the jobs of the user this client's token names."""
        wanted = [job_pb2.JobState.Value("JOB_STATE_" + s.upper()) for s in (states or [])]
        response = self._call(self._jobs.ListJobs,
                              job_service_pb2.ListJobsRequest(states=wanted, limit=limit,
                                                              mine=mine))
        return [Job(j, self) for j in response.jobs]

    def cancel(self, job_id, force=False):
        """SIGTERM to the job's ranks, SIGKILL after the grace period (force: at once)."""
        return Job(self._call(self._jobs.CancelJob,
                              job_service_pb2.CancelJobRequest(job_id=str(job_id), force=force)),
                   self)

    def watch(self, job_id, after_seq=0, include_logs=False):
        """Iterator of the job's events (StateChanged, MetricsReported, CheckpointSaved, and
        LogLine with include_logs) from after_seq on, following the job until it ends. If the
        daemon restarts, it reconnects and resumes after the last event it yielded: every
        stored event comes exactly once."""
        last = [int(after_seq)]

        def open_stream():
            request = job_service_pb2.WatchJobRequest(job_id=str(job_id), after_seq=last[0],
                                                      include_logs=include_logs)
            return self._jobs.WatchJob(request, metadata=self._metadata())

        def seen(event):
            if event.seq:
                last[0] = event.seq

        for event in self._follow(open_stream, seen):
            yield from_proto(event)

    def logs(self, job_id, follow=False, rank=None, tail=0):
        """Iterator of (rank, line) of the ranks' logs; follow=True keeps going until the job
        ends, across daemon restarts, without losing or repeating a line."""
        offsets = {}

        def open_stream():
            request = job_service_pb2.StreamLogsRequest(
                job_id=str(job_id), tail_lines=tail, follow=follow, resume_offsets=offsets)
            if rank is not None:
                request.rank = rank
            return self._jobs.StreamLogs(request, metadata=self._metadata())

        def seen(batch):
            for line in batch.lines:
                offsets[line.rank] = line.offset

        for batch in self._follow(open_stream, seen):
            for line in batch.lines:
                yield line.rank, line.text

    # --- checkpoints ----------------------------------------------------------------------

    def checkpoints(self, job_id):
        """The job's checkpoints, oldest first: dicts with step, size_bytes, time (Unix
        seconds), path (in the run directory) and eval (latest eval RMSEs at that step)."""
        response = self._call(self._jobs.ListCheckpoints,
                              job_service_pb2.ListCheckpointsRequest(job_id=str(job_id)))
        return [{"step": c.step, "size_bytes": c.size_bytes, "time": _stamp_seconds(c.time),
                 "path": c.path, "eval": dict(c.eval)} for c in response.checkpoints]

    def download(self, job_id, step=None, dest=None, overwrite=False):
        """Downloads a checkpoint (step=None: the latest) into dest (default
        ./<job>-step-NNNNNNN) and returns dest. Every file is checked against the size and
        SHA-256 of the manifest; the files are written to a hidden staging directory that is
        renamed into place only if all match. Raises ChecksumMismatch (nothing is left)."""
        request = job_service_pb2.DownloadCheckpointRequest(job_id=str(job_id))
        if step is not None:
            request.step = int(step)
        try:
            chunks = self._jobs.DownloadCheckpoint(request, metadata=self._metadata())
            first = next(chunks)
        except grpc.RpcError as err:
            raise errors.from_rpc_error(err, self.addr, self.addr_source) from None
        dest = os.path.abspath(dest or f"{job_id}-step-{first.step:07d}")
        if os.path.exists(dest) and not overwrite:
            raise FileExistsError(f"{dest} exists; pass overwrite=True to replace it")
        staging = os.path.join(os.path.dirname(dest),
                               f".{os.path.basename(dest)}.tmp-{os.getpid()}")
        shutil.rmtree(staging, ignore_errors=True)
        os.makedirs(staging)
        try:
            self._receive(first, chunks, staging)
            if os.path.exists(dest):
                shutil.rmtree(dest)
            os.rename(staging, dest)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return dest

    def _receive(self, first, chunks, staging):
        manifest = {f.name: f for f in first.manifest}
        for name in manifest:
            if os.path.basename(name) != name or name in (".", ".."):
                raise errors.MatbertError(f"refusing file name {name!r} in the manifest")
        files = {name: open(os.path.join(staging, name), "wb") for name in manifest}
        hashes = {name: hashlib.sha256() for name in manifest}
        try:
            for chunk in [first, *self._rest(chunks)]:
                if not chunk.data:
                    continue
                if chunk.file not in files:
                    raise errors.MatbertError(f"chunk of {chunk.file!r}, not in the manifest")
                out = files[chunk.file]
                if chunk.offset != out.tell():
                    raise errors.MatbertError(
                        f"{chunk.file}: chunk at offset {chunk.offset}, expected {out.tell()}")
                out.write(chunk.data)
                hashes[chunk.file].update(chunk.data)
            for name, f in files.items():
                f.flush()
                os.fsync(f.fileno())
        finally:
            for f in files.values():
                f.close()
        for name, entry in manifest.items():
            size = os.path.getsize(os.path.join(staging, name))
            if size != entry.size or hashes[name].hexdigest() != entry.sha256:
                raise errors.ChecksumMismatch(
                    f"{name}: received {size} bytes with SHA-256 {hashes[name].hexdigest()}, "
                    f"the manifest says {entry.size} bytes with {entry.sha256}")

    def _rest(self, chunks):
        try:
            yield from chunks
        except grpc.RpcError as err:
            raise errors.from_rpc_error(err, self.addr, self.addr_source) from None

    # --- cluster --------------------------------------------------------------------------

    def cluster(self):
        """The daemon's devices (who holds them) and queue, as a dict."""
        from google.protobuf.json_format import MessageToDict
        response = self._call(self._cluster.GetCluster, cluster_service_pb2.GetClusterRequest())
        return MessageToDict(response, preserving_proto_field_name=True)
