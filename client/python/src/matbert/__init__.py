"""matbert: the Python client of the matbert training service.

    import matbert
    client = matbert.Client()                      # MATBERT_ADDR, else localhost:50051
    job = client.submit("configs/bert_matcomp_cpu.toml", overrides={"training.steps": 300})
    final = job.wait()                             # raises matbert.JobFailed with the reason

matbert.hf.BertForMatrixRegression (needs the [hf] extra: torch, transformers) loads the
checkpoints it trains; matbert.MatrixTokenizer tokenizes matrices as the service does."""
from .client import Client
from .errors import (ChecksumMismatch, DeadlineExceeded, InvalidSpec, JobCancelled, JobFailed,
                     JobNotFound, MatbertError, PermissionDenied, ResourceExhausted,
                     Unauthenticated, Unavailable)
from .events import CheckpointSaved, LogLine, MetricsReported, StateChanged
from .job import FINAL_STATES, Job
from .tokenizer import MatrixTokenizer

__version__ = "0.1.0"
API_VERSION = "matbert.v1"  # the gRPC package this client speaks

__all__ = ["Client", "Job", "FINAL_STATES", "MatrixTokenizer", "StateChanged",
           "MetricsReported", "CheckpointSaved", "LogLine", "MatbertError", "Unavailable",
           "DeadlineExceeded",           "Unauthenticated", "PermissionDenied", "JobNotFound", "InvalidSpec",
           "ResourceExhausted", "JobFailed", "JobCancelled", "ChecksumMismatch",
           "API_VERSION", "__version__"]
