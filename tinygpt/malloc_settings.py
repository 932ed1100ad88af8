"""Keep freed arrays in the process: the one malloc setting that makes training steps cheap.

Every op allocates fresh output arrays. glibc serves a large one with mmap and unmaps it when it is
freed (or trims the heap), so the next training step gets its memory back from the OS as zeroed
pages and page-faults it in, which at small sizes costs more than the arithmetic
(bench/RESULTS.md). Raising the mmap and trim thresholds keeps that memory mapped;
peak memory does not change. Not here: any caching allocator of our own (NumPy's allocator is
used as is) or other C libraries (musl, macOS), where this does nothing.
"""

import ctypes

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's <malloc.h> parameter numbers


def keep_freed_memory():
    """Ask glibc to keep freed memory for reuse -> True if it took effect, False elsewhere.

    Process-wide, so the library calls it only where it owns the process's training loop: the
    `tinygpt` command and `Trainer.run()`. Your own loop can call it once at start."""
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, 32 * 1024 * 1024)  # glibc's largest allowed value
                and mallopt(_M_TRIM_THRESHOLD, 1024 * 1024 * 1024))
