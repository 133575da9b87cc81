"""Build step of the ordq Python package: bundles the shared library.

``pip install ./bindings/python`` (after ``make build``) copies
``target/release/libordq.so`` (or the file named by ``ORDQ_LIBRARY``) into
the package, so the installed package needs nothing else. When no built
library is found, the package is built without one and, at run time, falls
back to the repository it was built from (recorded in ``ordq/_build_info.py``)
or to ``ORDQ_LIBRARY``. Metadata lives in pyproject.toml.
"""

import os
import shutil
import sys
from pathlib import Path

from setuptools import setup
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


def library_to_bundle():
    """The shared library to copy into the package, or None."""
    env = os.environ.get("ORDQ_LIBRARY")
    if env:
        if not Path(env).is_file():
            raise SystemExit("ORDQ_LIBRARY=%s does not exist" % env)
        return Path(env)
    built = REPO / "target" / "release" / LIB
    return built if built.is_file() else None


class BuildPyWithLibrary(build_py):
    """build_py that also copies the shared library into the package and
    records the repository root for the run-time fallback."""

    def run(self):
        super().run()
        pkg = Path(self.build_lib) / "ordq"
        pkg.mkdir(parents=True, exist_ok=True)
        lib = library_to_bundle()
        if lib is not None:
            shutil.copy2(str(lib), str(pkg / LIB))
            print("ordq: bundled %s" % lib)
        else:
            print(
                "ordq: no built library found (run `make build` first to bundle one); "
                "the package will look for it at run time (ORDQ_LIBRARY, then %s/target)" % REPO
            )
        root = str(REPO) if (REPO / "include" / "ordq.h").is_file() else ""
        (pkg / "_build_info.py").write_text(
            '"""Written by setup.py at build time."""\n\n'
            "#: The ordq repository this package was built from ('' if none).\n"
            "REPO_ROOT = %r\n" % root
        )


class BinaryDistribution(Distribution):
    """The wheel carries a native library: tag it for this platform."""

    def has_ext_modules(self):
        return True


setup(cmdclass={"build_py": BuildPyWithLibrary}, distclass=BinaryDistribution)
