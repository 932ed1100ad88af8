"""keep_freed_memory: after it, the memory of freed arrays is reused, not faulted in again."""

import platform
import subprocess
import sys

import pytest

# One "training step" holds `count` activations of `size` bytes at once and frees them all; a
# second step does the same. Prints the page faults of the second step.
STEP_TWICE = """
import resource, sys
import numpy as np
from tinygpt.malloc_settings import keep_freed_memory
if sys.argv[1] == "keep":
    assert keep_freed_memory()
size, count = int(sys.argv[2]), int(sys.argv[3])
def step():
    held = [np.ones((size // 4,), dtype=np.float32) for _ in range(count)]
    del held
step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
step()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _second_step_faults(mode, size, count):
    out = subprocess.run([sys.executable, "-c", STEP_TWICE, mode, str(size), str(count)],
                         capture_output=True, text=True, check=True)
    return int(out.stdout)


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
@pytest.mark.parametrize("mib, count", [(8, 20), (48, 2)])  # 48 MiB: past glibc's mmap threshold cap
def test_keep_freed_memory_stops_page_faults_of_the_next_step(mib, count):
    size = mib * 1024 * 1024
    default, kept = _second_step_faults("default", size, count), _second_step_faults("keep", size, count)
    # glibc's defaults: the arrays went back to the OS and fault in again (NumPy may ask for 2 MiB
    # pages, so count a fault per 2 MiB at least)
    assert default >= mib * count // 2
    assert kept < max(default // 20, 2)
