"""keep_freed_memory: after it, the memory of freed arrays is reused, not faulted in again."""

import platform
import subprocess
import sys

import pytest

# One "training step" holds 20 activations of 8 MiB at once and frees them all; a second step
# does the same. Prints the page faults of the second step.
STEP_TWICE = """
import resource, sys
import numpy as np
from tinygpt.malloc_settings import keep_freed_memory
if sys.argv[1] == "keep":
    assert keep_freed_memory()
def step():
    held = [np.ones((2 * 1024 * 1024,), dtype=np.float32) for _ in range(20)]
    del held
step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
step()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _second_step_faults(mode):
    out = subprocess.run([sys.executable, "-c", STEP_TWICE, mode], capture_output=True, text=True, check=True)
    return int(out.stdout)


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_keep_freed_memory_stops_page_faults_of_the_next_step():
    default, kept = _second_step_faults("default"), _second_step_faults("keep")
    assert default > 1000  # glibc's defaults: the 160 MiB went back to the OS and fault in again
    assert kept < default // 20
