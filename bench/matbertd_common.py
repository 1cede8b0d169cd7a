"""What the matbertd benchmarks share: Python stubs generated from proto/ at run time, and a
daemon on a free loopback port with one CPU slot and its state in a temporary directory."""
import os
import socket
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def generate_stubs(tmp):
    """protoc + grpc_python_plugin (Debian's) into `tmp`, which is put on sys.path."""
    proto = os.path.join(ROOT, "proto")
    subprocess.run(["protoc", f"-I{proto}", f"--python_out={tmp}", f"--grpc_python_out={tmp}",
                    "--plugin=protoc-gen-grpc_python=/usr/bin/grpc_python_plugin",
                    *[os.path.join(proto, "matbert", "v1", f)
                      for f in os.listdir(os.path.join(proto, "matbert", "v1"))]], check=True)
    sys.path.insert(0, tmp)


def start_daemon(binary, worker, tmp, *extra):
    """matbertd with one CPU slot on a free port, logging to tmp/matbertd.out: (process, port)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = open(os.path.join(tmp, "matbertd.out"), "wb")
    process = subprocess.Popen([binary, "--listen", f"127.0.0.1:{port}", "--state-dir",
                                os.path.join(tmp, "state"), "--gpus", "none", "--cpu-slots", "1",
                                "--worker", worker, *extra],
                               stdout=log, stderr=subprocess.STDOUT)
    return process, port
