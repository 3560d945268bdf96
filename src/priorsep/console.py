"""The `priorsep` console script: the command line is imported inside a Ctrl-C guard, so an
interrupt while torch is still loading ends with one line and exit code 130, not a traceback.

Before anything else it asks glibc's allocator to keep freed memory for reuse (`mallopt`):
by default every block of more than 128 kB to 32 MB is mapped fresh from the kernel and given
back when freed, so the separation's per-call temporaries (tens of MB, thousands of times per
file) each cost their size in page faults. Keeping them cuts a toy separation by a third, with
the same output to the bit (docs/benchmarks.md). The price is resident memory: freed blocks are
held for reuse (the chorale model's peak went from 908 to 1031 MB).
"""

from __future__ import annotations

import ctypes
import sys

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
"""glibc's `mallopt` parameters (malloc.h)."""
MMAP_THRESHOLD = 32 * 1024 * 1024
"""The largest threshold glibc accepts on 64-bit systems: blocks below it come from the heap."""
TRIM_THRESHOLD = 1024 * 1024 * 1024
"""Free memory at the top of the heap kept for reuse before it is given back."""


def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds (see the module's text); False where the C
    library is not glibc or refuses (other systems keep their allocator's defaults)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the process's own C library: no search
    except (OSError, AttributeError):  # musl and others have no mallopt
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)
                and mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))


def main() -> None:
    keep_freed_memory()
    try:
        from priorsep.cli import main as run_command_line

        run_command_line()
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        raise SystemExit(130) from None
