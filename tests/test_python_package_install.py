#!/usr/bin/env python3
"""`pip install ./client/python` as a user does it: a fresh virtual environment on Debian's
Python, nothing in it but pip, the package and its dependencies fetched from PyPI (setuptools
and grpcio-tools to build, grpcio and protobuf to run; stubs generated from proto/ during the
build). The installed package then talks to a real matbertd. The repository's package and
proto/ are copied first, so the build leaves nothing in the source tree.

Usage: test_python_package_install.py --daemon D --worker W --configs DIR --repo DIR
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import matbertd_harness as harness  # noqa: E402

ARGS = None

CHECK = """
import sys, matbert
c = matbert.Client()
cluster = c.cluster()
assert cluster["device_kind"] == "cpu", cluster
try:
    c.get("nosuchjob")
except matbert.JobNotFound as e:
    print("JobNotFound:", e)
print("api", matbert.API_VERSION, "version", matbert.__version__)
"""


class PackageInstallTest(unittest.TestCase):
    def test_fresh_venv_pip_install_from_the_repository(self):
        with tempfile.TemporaryDirectory(prefix="matbert_pkg_") as tmp:
            repo = os.path.join(tmp, "repo")
            shutil.copytree(os.path.join(ARGS.repo, "client", "python"),
                            os.path.join(repo, "client", "python"),
                            ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
            shutil.copytree(os.path.join(ARGS.repo, "proto"), os.path.join(repo, "proto"))
            venv = os.path.join(tmp, "venv")
            subprocess.run(["/usr/bin/python3", "-m", "venv", venv], check=True)
            python = os.path.join(venv, "bin", "python")
            r = subprocess.run([python, "-m", "pip", "install", "--disable-pip-version-check",
                                "--no-cache-dir", os.path.join(repo, "client", "python")],
                               capture_output=True, text=True, timeout=600)
            self.assertEqual(r.returncode, 0, r.stdout[-3000:] + r.stderr[-3000:])
            d = harness.Daemon(os.path.join(tmp, "state"), harness.free_port()).start()
            try:
                r = subprocess.run([python, "-c", CHECK], capture_output=True, text=True,
                                   env=dict(os.environ, MATBERT_ADDR=f"127.0.0.1:{d.port}",
                                            PYTHONPATH=""), cwd=tmp, timeout=60)
            finally:
                d.stop()
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn("JobNotFound: ", r.stdout)
            self.assertIn("nosuchjob", r.stdout)
            self.assertIn("api matbert.v1", r.stdout)
            # The stubs were generated into the installed package, not taken from anywhere else.
            r = subprocess.run([python, "-c", "import matbert.v1.job_service_pb2_grpc as m; "
                                "print(m.__file__)"], capture_output=True, text=True, cwd=tmp)
            self.assertTrue(r.stdout.strip().startswith(os.path.join(venv, "lib")), r.stdout)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--daemon", required=True)
    parser.add_argument("--worker", required=True)
    parser.add_argument("--configs", required=True)
    parser.add_argument("--repo", required=True)
    ARGS, rest = parser.parse_known_args()
    harness.Daemon.binary, harness.Daemon.worker = ARGS.daemon, ARGS.worker
    harness.Daemon.spec_root = ARGS.configs
    unittest.main(argv=[sys.argv[0]] + rest, verbosity=2)
