"""Finding and loading the library, and the ABI version check."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import PKG_ROOT, REPO, subprocess_env
import ordq
from ordq import _ffi


def import_in_child(**env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", "import ordq; print(ordq.LIBRARY_PATH)"],
        env=subprocess_env(**env),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_abi_compatibility_rule() -> None:
    v = lambda a, b, c: (a << 16) | (b << 8) | c  # noqa: E731
    want = v(0, 1, 0)
    assert _ffi.abi_compatible(v(0, 1, 0), want)
    assert _ffi.abi_compatible(v(0, 1, 7), want)  # patch: no interface change
    assert not _ffi.abi_compatible(v(0, 2, 0), want)  # 0.x: a minor breaks
    assert not _ffi.abi_compatible(v(0, 0, 9), want)
    assert not _ffi.abi_compatible(v(1, 1, 0), want)
    # Past 1.0 a newer minor only adds.
    assert _ffi.abi_compatible(v(1, 3, 0), v(1, 1, 0))
    assert _ffi.abi_compatible(v(1, 0, 0), v(1, 1, 0))
    assert not _ffi.abi_compatible(v(2, 1, 0), v(1, 1, 0))
    assert _ffi.format_version(v(0, 1, 2)) == "0.1.2"


def test_loaded_library_matches_this_package() -> None:
    assert ordq.abi_version() == _ffi.format_version(_ffi.ORDQ_ABI_VERSION)
    assert ordq.library_version() == ordq.__version__
    assert Path(ordq.LIBRARY_PATH).is_file()


def test_search_order_without_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ORDQ_LIBRARY", raising=False)
    found = _ffi.candidates()
    origins = [o for o, _ in found]
    assert origins[0] == "package directory"
    assert found[0][1] == PKG_ROOT / "ordq" / _ffi.LIBRARY_FILE
    assert found[1] == ("repository release build", REPO / "target" / "release" / _ffi.LIBRARY_FILE)
    assert found[-1] == ("repository debug build", REPO / "target" / "debug" / _ffi.LIBRARY_FILE)


def test_env_var_is_the_only_candidate(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORDQ_LIBRARY", "/somewhere/libordq.so")
    assert _ffi.candidates() == [("ORDQ_LIBRARY", Path("/somewhere/libordq.so"))]


def test_env_var_is_used() -> None:
    lib = str(_ffi.LIBRARY_PATH)
    r = import_in_child(ORDQ_LIBRARY=lib)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == lib


def test_missing_library_named_by_env_fails_clearly() -> None:
    r = import_in_child(ORDQ_LIBRARY="/nonexistent/libordq.so")
    assert r.returncode != 0
    assert "LibraryError" in r.stderr
    assert "cannot load /nonexistent/libordq.so (ORDQ_LIBRARY)" in r.stderr


def test_a_library_that_is_not_ordq_is_refused() -> None:
    import ctypes.util

    libm = ctypes.util.find_library("m")
    if not libm:
        pytest.skip("no libm to load")
    r = import_in_child(ORDQ_LIBRARY=libm)
    assert r.returncode != 0
    assert "is not an ordq library (no ordq_abi_version)" in r.stderr


def _fake_library(tmp_path: Path, version: int, name: str) -> Path:
    """A shared library that exports only ordq_abi_version()."""
    cc = shutil.which("cc") or shutil.which("gcc")
    src = tmp_path / (name + ".c")
    src.write_text(
        "#include <stdint.h>\nuint32_t ordq_abi_version(void) { return %du; }\n" % version
    )
    out = tmp_path / (name + ".so")
    subprocess.run([cc, "-shared", "-fPIC", str(src), "-o", str(out)], check=True)
    return out


@pytest.mark.skipif(not (shutil.which("cc") or shutil.which("gcc")), reason="no C compiler")
@pytest.mark.parametrize(
    "version,text,reason",
    [
        (0x000100, "0.1.0", "a different minor version, and 0.x minors are incompatible"),
        (0x010100, "1.1.0", "a different major version"),
    ],
)
def test_a_different_abi_version_is_refused(
    tmp_path: Path, version: int, text: str, reason: str
) -> None:
    lib = _fake_library(tmp_path, version, "fake%d" % version)
    r = import_in_child(ORDQ_LIBRARY=str(lib))
    assert r.returncode != 0
    assert "has ABI version %s, but this package was built for ABI 0.5.0" % text in r.stderr
    assert reason in r.stderr
    assert "make build" in r.stderr


@pytest.mark.skipif(not (shutil.which("cc") or shutil.which("gcc")), reason="no C compiler")
def test_a_same_abi_library_missing_a_symbol_is_refused(tmp_path: Path) -> None:
    lib = _fake_library(tmp_path, _ffi.ORDQ_ABI_VERSION, "partial")
    r = import_in_child(ORDQ_LIBRARY=str(lib))
    assert r.returncode != 0
    assert "has no symbol ordq_" in r.stderr
