"""Give memory back to the operating system after reading large upstream bodies.

CPython frees a large ``bytes`` object to glibc's malloc, which keeps the pages for reuse: after
a few concurrent multi-megabyte bodies an exporter's RSS stays hundreds of megabytes high for
good. ``malloc_trim(0)`` returns the free pages. It runs after a scrape that read a body of at
least :data:`TRIM_AFTER_BYTES` (trimming costs a walk of the heap, so not after every scrape), and
does nothing where the C library is not glibc (musl, macOS).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading

TRIM_AFTER_BYTES = 1 << 20

_pending = threading.Event()


def _load_malloc_trim():
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


_malloc_trim = _load_malloc_trim()


def note_body(size: int) -> None:
    """Record that a body of ``size`` bytes was buffered; a large one makes the next give_back trim."""
    if size >= TRIM_AFTER_BYTES:
        _pending.set()


def give_back() -> bool:
    """Trim malloc's free memory if a large body was read since the last call; True if it trimmed."""
    if not _pending.is_set():
        return False
    _pending.clear()
    if _malloc_trim is None:
        return False
    _malloc_trim(0)
    return True
