"""cffi (API mode) builder of ``qcnn_cffi._qcnn_cffi``: the C kernels in ``csrc/`` linked to a CBLAS.

Run by setuptools at install time (``cffi_modules`` in ``setup.py``); after editing ``csrc/``,
``python backends/qcnn_cffi/_build.py`` (= ``python setup.py build_ext --inplace``) rebuilds in place.

Build choices (environment variables, all optional):

* ``QCNN_CFFI_BLAS``: ``auto`` (default: a system OpenBLAS if ``pkg-config openblas`` finds one,
  else the pinned ``scipy-openblas32`` wheel), ``system`` or ``scipy``.
* ``QCNN_CFFI_MARCH``: the ``-march`` value, default ``native`` (AVX-512 here). ``x86-64-v3``
  gives the AVX2 kernels, ``x86-64`` the portable scalar ones; ``none`` passes no ``-march``.
* ``QCNN_CFFI_OPENMP``: ``1`` (default when the compiler accepts ``-fopenmp``) or ``0``.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

from cffi import FFI

HERE = Path(__file__).resolve().parent
CSRC = HERE / "csrc"
SOURCES = ["qc_common.c", "qc_float.c", "qc_qconv.c", "qc_qfc.c", "qc_qint.c", "qc_probe.c"]


def _rel(path: Path) -> str:
    """A path relative to the working directory (setuptools wants relative sources)."""
    try:
        rel = os.path.relpath(path)
    except ValueError:  # another drive on Windows
        return str(path)
    return str(path) if rel.startswith("..") else rel


def _cdef() -> str:
    """The public header without preprocessor lines (cffi parses plain declarations)."""
    text = (CSRC / "qcnn_kernels.h").read_text(encoding="utf-8")
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))


def _compiler() -> list[str]:
    cc = os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc"
    return shlex.split(cc)


def _compiles(flags: list[str]) -> bool:
    """Whether the C compiler builds and links a trivial program with ``flags``."""
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "t.c"
        src.write_text("int main(void) { return 0; }\n")
        try:
            res = subprocess.run([*_compiler(), *flags, str(src), "-o", str(Path(tmp) / "t")],
                                 capture_output=True, timeout=60)
        except (OSError, subprocess.SubprocessError):
            return False
        return res.returncode == 0


def _pkg_config_openblas() -> tuple[list[str], list[str]] | None:
    """(cflags, libs) of a system OpenBLAS, or None."""
    if not shutil.which("pkg-config"):
        return None
    try:
        if subprocess.run(["pkg-config", "--exists", "openblas"], timeout=30).returncode != 0:
            return None
        cflags = subprocess.run(["pkg-config", "--cflags", "openblas"], capture_output=True, text=True,
                                timeout=30, check=True).stdout.split()
        libs = subprocess.run(["pkg-config", "--libs", "openblas"], capture_output=True, text=True,
                              timeout=30, check=True).stdout.split()
    except (OSError, subprocess.SubprocessError):
        return None
    return cflags, libs


def _blas() -> dict[str, list]:
    """Compile/link settings for the BLAS chosen by ``QCNN_CFFI_BLAS``."""
    choice = os.environ.get("QCNN_CFFI_BLAS", "auto").lower()
    if choice not in ("auto", "system", "scipy"):
        sys.exit(f"QCNN_CFFI_BLAS must be auto, system or scipy, got {choice!r}")
    if choice in ("auto", "system"):
        found = _pkg_config_openblas()
        if found is not None:
            cflags, libs = found
            return {"define_macros": [("QC_BLAS_NAME", '"openblas (system, pkg-config)"')],
                    "extra_compile_args": cflags, "extra_link_args": libs,
                    "include_dirs": [], "library_dirs": [], "libraries": []}
        if choice == "system":
            sys.exit("QCNN_CFFI_BLAS=system but pkg-config finds no openblas")
    import scipy_openblas32 as sob

    libdir = sob.get_lib_dir()
    return {"define_macros": [("QC_BLAS_SCIPY", "1"), ("QC_BLAS_NAME", '"scipy-openblas32"')],
            "extra_compile_args": [], "include_dirs": [],
            "library_dirs": [libdir], "libraries": [sob.get_library()],
            # the wheel's library sits beside our package in site-packages; qcnn_cffi also imports
            # scipy_openblas32 (which loads it globally) before the extension, so either way works
            "extra_link_args": ["-Wl,-rpath,$ORIGIN/../scipy_openblas32/lib", f"-Wl,-rpath,{libdir}"]}


def _flags() -> tuple[list[str], list[str]]:
    """(compile flags, link flags) for optimisation, SIMD level and OpenMP."""
    cflags = ["-O3", "-std=c11", "-fno-math-errno"]
    march = os.environ.get("QCNN_CFFI_MARCH", "native")
    if march != "none" and _compiles([f"-march={march}"]):
        cflags.append(f"-march={march}")
    lflags: list[str] = []
    want_omp = os.environ.get("QCNN_CFFI_OPENMP", "1") != "0"
    if want_omp and _compiles(["-fopenmp"]):
        cflags.append("-fopenmp")
        lflags.append("-fopenmp")
    return cflags, lflags


def make_ffi() -> FFI:
    """The FFI builder: sources relative to the working directory (the project root)."""
    path = _rel
    blas = _blas()
    cflags, lflags = _flags()
    ffi = FFI()
    ffi.cdef(_cdef())
    macros = [*blas["define_macros"], ("QC_CFLAGS", '"' + " ".join(cflags) + '"')]
    ffi.set_source(
        "qcnn_cffi._qcnn_cffi",
        '#include "qcnn_kernels.h"\n',
        sources=[path(CSRC / s) for s in SOURCES],
        depends=[path(CSRC / h) for h in ("qcnn_kernels.h", "qc_internal.h", "qc_tiles.h", "qc_qfc_block.h")],
        include_dirs=[path(CSRC), *blas["include_dirs"]],
        define_macros=macros,
        extra_compile_args=[*cflags, *blas["extra_compile_args"]],
        library_dirs=blas["library_dirs"],
        libraries=[*blas["libraries"], "m"],
        extra_link_args=[*lflags, *blas["extra_link_args"]],
    )
    return ffi


ffibuilder = make_ffi()

if __name__ == "__main__":
    # in-place rebuild after editing csrc/: the same build as `pip install -e .` (setuptools
    # build_ext --inplace, so the module file name matches and nothing stale shadows it)
    root = HERE.parent.parent
    for old in HERE.glob("_qcnn_cffi.*"):
        if old.suffix in (".so", ".pyd"):
            old.unlink()
    sys.exit(subprocess.call([sys.executable, "setup.py", "-q", "build_ext", "--inplace", "--force"], cwd=root))
