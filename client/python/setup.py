"""Build step of the matbert package: generates the gRPC stubs of the API (matbert.v1) from the
repository's proto/ directory into the built package, so they always match the daemon built
from the same tree. MATBERT_PROTO_DIR overrides where the .proto files are."""
import os

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))


class BuildPyWithStubs(build_py):
    def run(self):
        super().run()
        import grpc_tools
        from grpc_tools import protoc

        proto_dir = os.environ.get("MATBERT_PROTO_DIR",
                                   os.path.join(HERE, "..", "..", "proto"))
        v1 = os.path.join(proto_dir, "matbert", "v1")
        if not os.path.isdir(v1):
            raise RuntimeError(f"no {v1}: build the matbert package from the matbert repository "
                               "(pip install ./client/python), or set MATBERT_PROTO_DIR")
        protos = sorted(os.path.join(v1, f) for f in os.listdir(v1) if f.endswith(".proto"))
        well_known = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")
        args = ["protoc", f"-I{proto_dir}", f"-I{well_known}", f"--python_out={self.build_lib}",
                f"--pyi_out={self.build_lib}", f"--grpc_python_out={self.build_lib}", *protos]
        if protoc.main(args) != 0:
            raise RuntimeError(f"protoc failed on {protos}")
        with open(os.path.join(self.build_lib, "matbert", "v1", "__init__.py"), "w") as f:
            f.write('"""Generated from proto/matbert/v1 at build time."""\n')


setup(cmdclass={"build_py": BuildPyWithStubs})
