"""Keep freed arrays in the process: the one malloc setting that makes training steps cheap.

Every op allocates fresh output arrays. glibc serves a large one with mmap and unmaps it when it is
freed (or trims the heap), so the next training step gets its memory back from the OS as zeroed
pages and page-faults it in, which at small sizes costs more than the arithmetic
(bench/RESULTS.md). Raising the trim threshold and turning mmap off keeps that memory mapped
(glibc caps the mmap threshold at 32 MiB, and GPT-2's logits and token-embedding gradient are
larger: under the threshold alone they would still be unmapped and faulted in every step).
Not here: any caching allocator of our own (NumPy's allocator is
used as is) or other C libraries (musl, macOS), where this does nothing.
"""

import ctypes

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD, _M_MMAP_MAX = -1, -3, -4  # glibc's <malloc.h> numbers


def keep_freed_memory():
    """Ask glibc to keep freed memory for reuse -> True if it took effect, False elsewhere.

    Process-wide, so the library calls it only where it owns the process's training loop: the
    `tinygpt` command and `Trainer.run()`. Your own loop can call it once at start."""
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    # NOTE: M_MMAP_MAX = 0 sends every allocation to the heap, which the trim threshold keeps
    # from shrinking; the threshold is set too, for a glibc that refuses the first
    return bool((mallopt(_M_MMAP_MAX, 0) | mallopt(_M_MMAP_THRESHOLD, 32 * 1024 * 1024))
                and mallopt(_M_TRIM_THRESHOLD, 1024 * 1024 * 1024))
