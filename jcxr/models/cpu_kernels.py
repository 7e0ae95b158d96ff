"""jcxr's own CPU kernels, called from XLA through its FFI, where XLA:CPU's code for an
operation takes several times one pass over its memory (docs/benchmarks.md, "A kernel of our
own: the depthwise weight gradient").

``cpu_kernels.cc`` is built with the system's C++ compiler on first use (about 8 s), into a
cache keyed by the source, jaxlib's version, the compiler and its flags
(``$JCXR_KERNEL_CACHE``, else ``~/.cache/jcxr/kernels``). Without a compiler, if the build
fails, or with ``JCXR_CPU_KERNELS=0``, every caller keeps XLA's own path; a warning says why,
once per process.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import logging
import os
import shutil
import subprocess
import tempfile
import warnings
from pathlib import Path

import jax
import jax.numpy as jnp
import jaxlib
import numpy as np

SOURCE = Path(__file__).with_suffix(".cc")
FLAGS = ("-O3", "-std=c++17", "-shared", "-fPIC", "-w")
DEPTHWISE_WEIGHT_GRADIENT = "jcxr_depthwise_weight_gradient"
log = logging.getLogger(__name__)


class KernelBuildError(RuntimeError):
    """The kernels could not be built or loaded (the message says why)."""


def cache_dir() -> Path:
    if os.environ.get("JCXR_KERNEL_CACHE"):
        return Path(os.environ["JCXR_KERNEL_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "jcxr" / "kernels"


def compiler() -> str:
    """``$CXX``, else the first of c++ and g++ on the PATH."""
    found = os.environ.get("CXX") or shutil.which("c++") or shutil.which("g++")
    if not found:
        raise KernelBuildError("no C++ compiler found: install one (c++ or g++) or set CXX")
    return found


def build() -> Path:
    """The kernels' shared library, built unless the cache holds it. Written under a temporary
    name and renamed, so processes building at once never load half a file."""
    cxx = compiler()
    parts = (
        SOURCE.read_bytes(),
        jaxlib.__version__.encode(),
        cxx.encode(),
        " ".join(FLAGS).encode(),
    )
    key = hashlib.sha256(b"\0".join(parts)).hexdigest()[:16]
    library = cache_dir() / f"jcxr_cpu_kernels_{key}.so"
    if library.is_file():
        return library
    library.parent.mkdir(parents=True, exist_ok=True)
    log.info("building jcxr's CPU kernels into %s", library)
    with tempfile.NamedTemporaryFile(dir=library.parent, suffix=".so", delete=False) as out:
        partial = Path(out.name)
    command = [cxx, *FLAGS, f"-I{jax.ffi.include_dir()}", str(SOURCE), "-o", str(partial)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode:
            raise KernelBuildError(
                f"{' '.join(command)} exited with {done.returncode}: {done.stderr.strip()[-800:]}"
            )
        os.replace(partial, library)
    finally:
        partial.unlink(missing_ok=True)
    return library


@functools.cache
def available() -> bool:
    """Whether the kernels are built, loaded and registered with XLA (once per process)."""
    if os.environ.get("JCXR_CPU_KERNELS", "1") == "0":
        return False
    try:
        library = ctypes.CDLL(str(build()))
        jax.ffi.register_ffi_target(
            DEPTHWISE_WEIGHT_GRADIENT,
            jax.ffi.pycapsule(library.JcxrDepthwiseWeightGradient),
            platform="cpu",
        )
    except (KernelBuildError, OSError, AttributeError) as error:
        warnings.warn(
            f"jcxr's CPU kernels are off, XLA's own paths serve instead: {error}", stacklevel=2
        )
        return False
    return True


def depthwise_weight_gradient(x, g, kernel, strides, padding) -> jax.Array:
    """The kernel gradient ``[kh, kw, C]`` of a depthwise convolution of ``x`` ``[N, H, W, C]``
    (float32) whose output gradient is ``g`` ``[N, Ho, Wo, C]``; ``padding`` is
    ``((top, bottom), (left, right))``. Raises :class:`KernelBuildError` where the kernels are
    not :func:`available`."""
    if not available():
        raise KernelBuildError("jcxr's CPU kernels are not available (see the warning above)")
    (kh, kw), (sh, sw), ((top, _), (left, _)) = kernel, strides, padding
    result = jax.ShapeDtypeStruct((kh, kw, x.shape[-1]), jnp.float32)
    return jax.ffi.ffi_call(DEPTHWISE_WEIGHT_GRADIENT, result)(
        x, g, kh=np.int64(kh), kw=np.int64(kw), sh=np.int64(sh), sw=np.int64(sw),
        pt=np.int64(top), pl=np.int64(left),
    )  # fmt: skip
