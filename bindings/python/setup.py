"""Build step of the ordq Python package: bundles the shared library.

``pip install ./bindings/python`` (after ``make build``) copies
``target/release/libordq.so`` of the repository, or the file named by
``ORDQ_LIBRARY``, into the package, so the installed package needs nothing
else. Without a built library the build fails, naming the command that
builds one. The wheel is tagged ``py3-none-<platform>``: the Python code
is the same for every Python 3 (ctypes, no extension module), but the
bundled library is built for one platform. Metadata lives in
pyproject.toml.
"""

import os
import shutil
import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.bdist_wheel import bdist_wheel
from setuptools.command.build_py import build_py
from setuptools.dist import Distribution

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent  # bindings/python -> repository root

if sys.platform == "darwin":
    LIB = "libordq.dylib"
elif sys.platform == "win32":
    LIB = "ordq.dll"
else:
    LIB = "libordq.so"

HOW_TO_BUILD = (
    "build it first: `make build` (or `cargo build --release -p ordq-ffi-lib`) in the ordq "
    "repository, or point ORDQ_LIBRARY at a built %s" % LIB
)


def library_to_bundle():
    """The shared library to copy into the package: ``ORDQ_LIBRARY`` when
    set, else the repository's release build. Exits with the way to build
    one when it does not exist."""
    env = os.environ.get("ORDQ_LIBRARY")
    lib = Path(env) if env else REPO / "target" / "release" / LIB
    if not lib.is_file():
        where = "ORDQ_LIBRARY=%s" % env if env else str(lib)
        raise SystemExit("ordq: no shared library at %s: %s" % (where, HOW_TO_BUILD))
    return lib


class BuildPyWithLibrary(build_py):
    """build_py that also copies the shared library into the package."""

    def run(self):
        lib = library_to_bundle()
        super().run()
        pkg = Path(self.build_lib) / "ordq"
        pkg.mkdir(parents=True, exist_ok=True)
        shutil.copy2(str(lib), str(pkg / LIB))
        print("ordq: bundled %s" % lib)


class BinaryDistribution(Distribution):
    """The package carries a native library: built into the platform
    directory, so the wheel is not pure (``Root-Is-Purelib: false``) and
    its platform tag is this platform's."""

    def has_ext_modules(self):
        return True


class PlatformWheel(bdist_wheel):
    """A wheel for any Python 3 on this platform: ``py3-none-<platform>``
    (bdist_wheel would tag it for this interpreter, ``cp311-cp311``,
    because it is not pure)."""

    def get_tag(self):
        _python, _abi, plat = super().get_tag()
        return "py3", "none", plat


setup(
    cmdclass={"build_py": BuildPyWithLibrary, "bdist_wheel": PlatformWheel},
    distclass=BinaryDistribution,
)
