"""glibc's allocator set up for a long-running server process whose memory should stay flat under load.

By default glibc gives each thread that allocates concurrently an arena of its own (up to 8 per core) and raises
its mmap threshold as large blocks are freed, so request bodies of a few hundred KB end up carved from those
arenas. Under sustained load the collector's resident memory then kept climbing (204 -> 345 MB over eight rounds
of the same traffic) while the Python heap stayed at ~52 MB (tracemalloc): fragmentation, not a leak. Two arenas
and a fixed 128 KB mmap threshold (large blocks go back to the system when freed) held it at 135-138 MB with the
same throughput. The same as setting MALLOC_ARENA_MAX=2 MALLOC_MMAP_THRESHOLD_=131072, which, when set, wins.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

_M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter numbers (malloc.h)
_M_ARENA_MAX = -8
ARENAS = 2
MMAP_THRESHOLD = 128 << 10


def tune_for_server() -> bool:
    """Apply the settings (call before the process starts its threads); False where there is no glibc."""
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c")).mallopt
    except (OSError, AttributeError, TypeError):  # not glibc (musl, macOS): nothing to tune
        return False
    applied = True
    if "MALLOC_ARENA_MAX" not in os.environ:
        applied = bool(mallopt(_M_ARENA_MAX, ARENAS)) and applied
    if "MALLOC_MMAP_THRESHOLD_" not in os.environ:
        applied = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and applied
    return applied
