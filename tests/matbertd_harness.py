"""Shared pieces of the matbertd/matbertctl integration tests: Python stubs generated from
proto/ at test time, a real matbertd process, and finding a job's worker processes."""
import os
import socket
import subprocess
import sys
import time

import grpc

v1 = {}  # generated modules: job, js, jsg, cs, csg


def generate_stubs(proto_dir, out_dir):
    # Debian's protoc and grpc_python_plugin: python3-grpc-tools 1.14 bundles a protoc that
    # predates proto3 `optional`.
    os.makedirs(out_dir, exist_ok=True)
    protos = sorted(os.path.join(proto_dir, "matbert", "v1", f)
                    for f in os.listdir(os.path.join(proto_dir, "matbert", "v1"))
                    if f.endswith(".proto"))
    subprocess.run(["protoc", f"-I{proto_dir}", f"--python_out={out_dir}",
                    f"--grpc_python_out={out_dir}",
                    "--plugin=protoc-gen-grpc_python=/usr/bin/grpc_python_plugin", *protos],
                   check=True)
    sys.path.insert(0, out_dir)
    from matbert.v1 import job_pb2, job_service_pb2, job_service_pb2_grpc  # noqa: E402
    from matbert.v1 import cluster_service_pb2, cluster_service_pb2_grpc  # noqa: E402
    from matbert.v1 import worker_service_pb2, worker_service_pb2_grpc  # noqa: E402
    v1.update(job=job_pb2, js=job_service_pb2, jsg=job_service_pb2_grpc,
              cs=cluster_service_pb2, csg=cluster_service_pb2_grpc,
              ws=worker_service_pb2, wsg=worker_service_pb2_grpc)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def job_processes(job_id, attempt=None):
    """pids (and RANK) of matbert-worker processes whose environment says they belong to the
    job (and attempt): not the launchers around them, such as srun."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                env = dict(e.split(b"=", 1) for e in f.read().split(b"\0") if b"=" in e)
            with open(f"/proc/{pid}/stat") as f:
                stat = f.read()
            if stat.rsplit(")", 1)[1].split()[0] == "Z" or "(matbert-worker)" not in stat:
                continue
        except OSError:
            continue
        if env.get(b"MATBERT_JOB_ID") == job_id.encode() and (
                attempt is None or env.get(b"MATBERT_ATTEMPT") == str(attempt).encode()):
            found.append((int(pid), int(env.get(b"RANK", b"-1"))))
    return found


class Daemon:
    """A matbertd on 127.0.0.1:`port` with 2 CPU slots; set binary/worker/spec_root first."""
    binary = worker = spec_root = None

    def __init__(self, state_dir, port, *extra, tls_ca=None, listen_host="127.0.0.1", env=None):
        self.state_dir, self.port, self.extra, self.tls_ca = state_dir, port, extra, tls_ca
        self.listen_host, self.env = listen_host, env
        self.proc = None
        os.makedirs(state_dir, exist_ok=True)
        self.log = open(os.path.join(state_dir, "matbertd.out"), "ab")

    def start(self):
        self.proc = subprocess.Popen(
            [Daemon.binary, "--listen", f"{self.listen_host}:{self.port}", "--state-dir",
             self.state_dir,
             "--gpus", "none", "--cpu-slots", "2", "--worker", Daemon.worker,
             "--spec-root", Daemon.spec_root, *self.extra],
            stdout=self.log, stderr=subprocess.STDOUT, env=self.env)
        if self.tls_ca:
            with open(self.tls_ca, "rb") as f:
                credentials = grpc.ssl_channel_credentials(f.read())
            self.channel = grpc.secure_channel(f"127.0.0.1:{self.port}", credentials)
        else:
            self.channel = grpc.insecure_channel(f"127.0.0.1:{self.port}")
        grpc.channel_ready_future(self.channel).result(timeout=10)
        time.sleep(0.2)  # the port is open slightly before the services answer
        # Stubs only where this process generated them (the matbert package has its own).
        self.jobs = v1["jsg"].JobServiceStub(self.channel) if v1 else None
        return self

    def kill(self):
        self.proc.kill()
        self.proc.wait()
        self.channel.close()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
            self.channel.close()
        self.log.close()


class CorruptingDownloadProxy:
    """A gRPC server on 127.0.0.1:`port` that forwards DownloadCheckpoint to the daemon at
    `upstream_port` and flips one bit in the middle of the first data chunk: what a client
    must detect with the manifest's SHA-256. `chunk_class` is the CheckpointChunk message class
    of the caller's stubs. Use as a context manager."""

    def __init__(self, upstream_port, chunk_class):
        import concurrent.futures
        self.upstream = grpc.insecure_channel(f"127.0.0.1:{upstream_port}")
        forward = self.upstream.unary_stream("/matbert.v1.JobService/DownloadCheckpoint")

        def corrupt(request, context):
            flipped = False
            for raw in forward(request):
                chunk = chunk_class.FromString(raw)
                if chunk.data and not flipped:
                    data = bytearray(chunk.data)
                    data[len(data) // 2] ^= 0x01
                    chunk.data, flipped = bytes(data), True
                yield chunk.SerializeToString()

        handler = grpc.method_handlers_generic_handler("matbert.v1.JobService", {
            "DownloadCheckpoint": grpc.unary_stream_rpc_method_handler(corrupt)})
        self.server = grpc.server(concurrent.futures.ThreadPoolExecutor(max_workers=2),
                                  handlers=[handler])
        self.port = self.server.add_insecure_port("127.0.0.1:0")

    def __enter__(self):
        self.server.start()
        return self

    def __exit__(self, *exc):
        self.server.stop(0)
        self.upstream.close()


def run_tests(args, rest):
    """Points Daemon at the built programs, generates the stubs, runs the calling script's
    tests (module __main__), and exits with their verdict."""
    import tempfile
    import unittest
    Daemon.binary, Daemon.worker, Daemon.spec_root = args.daemon, args.worker, args.configs
    with tempfile.TemporaryDirectory(prefix="matbert_stubs_") as stubs:
        generate_stubs(args.proto_dir, stubs)
        result = unittest.main(module="__main__", argv=[sys.argv[0], "-v", *rest],
                               exit=False).result
    sys.exit(0 if result.wasSuccessful() else 1)
