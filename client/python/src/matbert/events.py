"""Typed events of WatchJob: what Client.watch yields."""
from dataclasses import dataclass, field


@dataclass(frozen=True)
class StateChanged:
    """The job moved to `state` ("QUEUED", "RUNNING", "SUCCEEDED", ...)."""
    seq: int
    time: float  # Unix seconds when the daemon stored the event
    state: str
    attempt: int  # attempt the change belongs to; 0 before the first
    reason: str


@dataclass(frozen=True)
class MetricsReported:
    """A record of rank 0's metrics.jsonl: kind "train" (loss, grad_norm, lr,
    tokens_per_second, ...), "eval" (eval_rmse, baseline_*_rmse), "summary" or "generate"."""
    seq: int
    time: float
    kind: str
    step: int
    values: dict = field(default_factory=dict)


@dataclass(frozen=True)
class CheckpointSaved:
    """A checkpoint was written; `path` is relative to the job's run directory."""
    seq: int
    time: float
    step: int
    path: str


@dataclass(frozen=True)
class LogLine:
    """A line a rank printed (watch(include_logs=True)); log lines are not stored, seq is 0."""
    seq: int
    time: float
    rank: int
    text: str


def state_name(value):
    """"RUNNING" for JOB_STATE_RUNNING's number."""
    from .v1 import job_pb2
    return job_pb2.JobState.Name(value).removeprefix("JOB_STATE_")


def from_proto(event):
    """The typed event for a matbert.v1.JobEvent."""
    t = event.time.seconds + event.time.nanos / 1e9
    which = event.WhichOneof("event")
    if which == "state_change":
        c = event.state_change
        return StateChanged(event.seq, t, state_name(c.state), c.attempt, c.reason)
    if which == "metrics":
        m = event.metrics
        return MetricsReported(event.seq, t, m.kind, m.step, dict(m.values))
    if which == "checkpoint":
        return CheckpointSaved(event.seq, t, event.checkpoint.step, event.checkpoint.path)
    if which == "log":
        return LogLine(event.seq, t, event.log.rank, event.log.text)
    raise ValueError(f"event {event.seq} of an unknown kind: {which}")
