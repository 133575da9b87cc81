"""Building and installing the package with pip: the wheel is tagged
``py3-none-<platform>`` and carries the library; without a built library
the install fails and says how to build one. Each test builds a copy of
the package source in a temporary directory (pip builds in-tree), with
pip's build isolation (setuptools from the package index or pip's cache)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

import ordq
from conftest import PKG_ROOT

from ordq import _ffi


def copy_source(dest: Path) -> Path:
    """The package source (no build output, bundled library or tests) at
    ``dest/bindings/python``, in a tree with no ``target/``: the layout of
    a checkout whose library was never built."""
    src = dest / "bindings" / "python"
    shutil.copytree(
        PKG_ROOT,
        src,
        ignore=shutil.ignore_patterns(
            "build", "*.egg-info", "__pycache__", ".pytest_cache", "tests", _ffi.LIBRARY_FILE
        ),
    )
    return src


def pip(*args: str, **env: str) -> subprocess.CompletedProcess:
    e = {k: v for k, v in os.environ.items() if k != "ORDQ_LIBRARY"}
    e.update(env)
    return subprocess.run(
        [sys.executable, "-m", "pip", *args, "--no-deps", "--disable-pip-version-check"],
        env=e,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_wheel_is_py3_none_platform_and_bundles_the_library(tmp_path: Path) -> None:
    src = copy_source(tmp_path / "repo")
    out = tmp_path / "wheels"
    r = pip("wheel", "-w", str(out), str(src), ORDQ_LIBRARY=str(_ffi.LIBRARY_PATH))
    assert r.returncode == 0, r.stdout + r.stderr
    (wheel,) = out.iterdir()
    plat = re.sub(r"[-.]", "_", sysconfig.get_platform())
    assert wheel.name == "ordq-%s-py3-none-%s.whl" % (ordq.__version__, plat)
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        meta = z.read("ordq-%s.dist-info/WHEEL" % ordq.__version__).decode()
    assert {"ordq/%s" % _ffi.LIBRARY_FILE, "ordq/aio.py", "ordq/py.typed"} <= names
    assert "Root-Is-Purelib: false" in meta
    assert "Tag: py3-none-%s" % plat in meta


@pytest.mark.parametrize("where", ["ORDQ_LIBRARY", "repository"])
def test_install_without_a_built_library_fails_and_says_how_to_build_it(
    tmp_path: Path, where: str
) -> None:
    src = copy_source(tmp_path / "repo")
    missing = tmp_path / "nowhere" / _ffi.LIBRARY_FILE
    env = {"ORDQ_LIBRARY": str(missing)} if where == "ORDQ_LIBRARY" else {}
    target = tmp_path / "site"
    r = pip("install", "--target", str(target), str(src), **env)
    out = r.stdout + r.stderr
    assert r.returncode != 0, out
    if where == "ORDQ_LIBRARY":
        assert "ordq: no shared library at ORDQ_LIBRARY=%s" % missing in out, out
    else:
        default = tmp_path / "repo" / "target" / "release" / _ffi.LIBRARY_FILE
        assert "ordq: no shared library at %s" % default in out, out
    assert "`make build`" in out and "`cargo build --release -p ordq-ffi-lib`" in out, out
    assert not (target / "ordq").exists()
