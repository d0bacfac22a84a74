"""Hand freed memory back to the system between the stages of a long run.

glibc's ``malloc`` keeps what numpy, torch and Python free inside its heaps (one heap per thread
that allocated: prediction's reader thread, ONNX Runtime's and joblib's threads as well as the main
thread) for later reuse, so a run's resident memory follows the largest stage it has run so far
*plus* the holes the stages left, not what it holds. Measured on 200 images x 3 rounds: 0.78 GB
held after round 0 and 0.88 GB after every later round, while the resident size stood at
1.06 / 1.75 / 1.63 / 1.68 GB; at 1,000 images it climbed by about 0.65 GB a round.

:func:`release` runs the garbage collector and ``malloc_trim(0)``, which returns every free page
of every heap to the system. It costs milliseconds, so it is called at stage boundaries only
(trimming every second inside training slowed it). Elsewhere than glibc it only collects.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import gc


@functools.cache
def _malloc_trim():
    """glibc's ``malloc_trim`` or ``None`` (another C library, or none found)."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        trim = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


def release() -> bool:
    """Collect garbage, then give every free heap page back to the system; ``True`` when glibc's
    ``malloc_trim`` ran (it reports whether it released anything, which is not needed here)."""
    gc.collect()
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True
