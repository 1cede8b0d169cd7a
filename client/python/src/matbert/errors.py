"""Exceptions of the matbert client, one per cause: gRPC status codes from the daemon become
the class named for them, and the failures of a job or a download get their own."""
import re

import grpc


class MatbertError(Exception):
    """Base of every error this package raises. `code` is the gRPC status code when the error
    came from the daemon, else None."""

    def __init__(self, message, code=None):
        super().__init__(message)
        self.code = code


class Unavailable(MatbertError):
    """The daemon cannot be reached. `addr` is where the client looked and `addr_source` why
    there (the argument, MATBERT_ADDR, or the default)."""

    def __init__(self, message, addr, addr_source, code=None):
        super().__init__(
            f"cannot reach matbertd at {addr} (from {addr_source}): {message}; start one with "
            "`build/server/matbertd`, or point addr= / MATBERT_ADDR at a running one", code)
        self.addr, self.addr_source = addr, addr_source


class DeadlineExceeded(Unavailable):
    """The daemon was reached but did not answer within the call's timeout (it is running but
    stopped or overloaded). A kind of Unavailable, so code that retries those retries this."""

    def __init__(self, message, addr, addr_source, timeout, code=None):
        MatbertError.__init__(
            self, f"matbertd at {addr} (from {addr_source}) did not answer within "
            f"{timeout:g} s: {message}", code)
        self.addr, self.addr_source, self.timeout = addr, addr_source, timeout


class Unauthenticated(MatbertError):
    """The daemon wants a (different) token: pass token= or set MATBERT_TOKEN."""


class PermissionDenied(MatbertError):
    """The token's user may not act on this job (it belongs to another user)."""


class JobNotFound(MatbertError):
    """No job with that id (or no such checkpoint of it)."""


class InvalidSpec(MatbertError):
    """The spec or an override was refused. `key` is the spec key the daemon named
    ("training.lr"), or None when the message names none."""

    def __init__(self, message, code=None):
        super().__init__(message, code)
        m = re.search(r"\b([a-z_]+\.[a-z_][a-z0-9_]*)\b", message)
        self.key = m.group(1) if m else None


class ResourceExhausted(MatbertError):
    """A limit of the daemon was reached, e.g. its queue holds --max-queued jobs."""


class JobFailed(MatbertError):
    """Job.wait(): the job ended FAILED. `job` is its final state, `reason` why."""

    def __init__(self, job):
        super().__init__(f"job {job.id} failed: {job.failure or 'no reason recorded'}")
        self.job, self.reason = job, job.failure


class JobCancelled(MatbertError):
    """Job.wait(): the job was cancelled. `job` is its final state."""

    def __init__(self, job):
        super().__init__(f"job {job.id} was cancelled: {job.failure or 'by a client'}")
        self.job, self.reason = job, job.failure


class ChecksumMismatch(MatbertError):
    """download(): a file's bytes do not match the SHA-256 of the manifest; nothing was kept."""


_BY_CODE = {
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
    grpc.StatusCode.NOT_FOUND: JobNotFound,
    grpc.StatusCode.INVALID_ARGUMENT: InvalidSpec,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhausted,
}


def from_rpc_error(err, addr, addr_source, timeout=None):
    """The exception for a grpc.RpcError raised by a call to the daemon at `addr` that had
    `timeout` seconds."""
    code, details = err.code(), err.details() or str(err)
    if code == grpc.StatusCode.DEADLINE_EXCEEDED and timeout:
        return DeadlineExceeded(details, addr, addr_source, timeout, code)
    if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
        return Unavailable(details, addr, addr_source, code)
    return _BY_CODE.get(code, MatbertError)(details, code)
