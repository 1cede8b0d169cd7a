"""Job: a snapshot of a job as the daemon last reported it, with the calls that follow it."""
from . import errors
from .events import StateChanged, state_name

FINAL_STATES = ("SUCCEEDED", "FAILED", "CANCELLED")


class Job:
    """id, name, owner, kind, state ("RUNNING", "PENDING", ...), reason (why it is in that
    state: what a waiting job waits for), step, total_steps, loss, failure, priority,
    devices (local backend), nodes (Slurm: its node list once Slurm runs it), attempts (list
    of dicts), max_restarts, queue_position, run_dir, spec_toml (GetJob only),
    submit_time/start_time/end_time (Unix seconds or None). `proto` is the matbert.v1.Job
    message itself."""

    def __init__(self, proto, client):
        self.proto, self._client = proto, client

    def __getattr__(self, name):
        if name in ("proto", "_client"):
            raise AttributeError(name)
        return getattr(self.proto, name)

    @property
    def state(self):
        return state_name(self.proto.state)

    @property
    def done(self):
        return self.state in FINAL_STATES

    @property
    def attempts(self):
        return [{"number": a.number, "state": state_name(a.state), "reason": a.reason,
                 "resumed_from_step": a.resumed_from_step} for a in self.proto.attempts]

    def _stamp(self, ts):
        return ts.seconds + ts.nanos / 1e9 if ts.seconds or ts.nanos else None

    @property
    def submit_time(self):
        return self._stamp(self.proto.submit_time)

    @property
    def start_time(self):
        return self._stamp(self.proto.start_time)

    @property
    def end_time(self):
        return self._stamp(self.proto.end_time)

    def refresh(self):
        """This job's current state from the daemon (a new Job)."""
        return self._client.get(self.id)

    def watch(self, after_seq=0, include_logs=False):
        """Client.watch for this job."""
        return self._client.watch(self.id, after_seq=after_seq, include_logs=include_logs)

    def wait(self, on_event=None):
        """Follows the job until it ends (across daemon restarts) and returns its final state.
        on_event(event) is called with every event on the way. Raises JobFailed or
        JobCancelled, which carry the final job and its reason."""
        for event in self._client.watch(self.id):
            if on_event is not None:
                on_event(event)
            if isinstance(event, StateChanged) and event.state in FINAL_STATES:
                break
        final = self.refresh()
        if final.state == "FAILED":
            raise errors.JobFailed(final)
        if final.state == "CANCELLED":
            raise errors.JobCancelled(final)
        return final

    def __repr__(self):
        return (f"Job(id={self.id!r}, name={self.name!r}, state={self.state}, "
                f"step={self.step}/{self.total_steps})")
