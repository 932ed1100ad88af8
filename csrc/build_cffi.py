"""cffi build of the C kernels (out-of-line API mode) into the extension module tinygpt._tinygpt_c.

setup.py hooks `ffibuilder` in through `cffi_modules` and tries FLAG_SETS in order at install
time; `python csrc/build_cffi.py` does the same in place, for working on the kernels without
reinstalling. csrc/tinygpt.h is both the C header and the cdef. Not here: deciding whether a
failed build fails the install (setup.py, TINYGPT_REQUIRE_C) or the Python wrappers (tinygpt/kernels).
"""

import glob
import os
import shutil
import sys

from cffi import FFI

MODULE = "tinygpt._tinygpt_c"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOURCES = ["csrc/runtime.c", "csrc/sgemm.c", "csrc/skinny.c", "csrc/attention.c", "csrc/softmax.c",
           "csrc/layernorm.c", "csrc/gelu.c", "csrc/adamw.c", "csrc/norm.c", "csrc/lstm.c", "csrc/gru.c",
           "csrc/bpe.c"]  # relative to ROOT, as setuptools wants

# Safe for every kernel: errno and FP traps are never looked at, and dropping them lets sqrtf
# inline and conditional selects vectorise. NOT -ffast-math: it assumes no inf or nan, and the
# masked softmax in attention.c lives on -inf (sums vectorise through `omp simd reduction`).
_COMMON = ["-O3", "-fno-math-errno", "-fno-trapping-math", "-std=gnu11"]

# (compile args, link args), best first. -march=native tunes for the machine that installs,
# which is where the extension runs (it is built at install, never shipped as a binary wheel).
FLAG_SETS = [
    (_COMMON + ["-march=native", "-fopenmp"], ["-fopenmp"]),
    (_COMMON + ["-mavx2", "-mfma", "-fopenmp"], ["-fopenmp"]),
    (_COMMON + ["-fopenmp"], ["-fopenmp"]),
    (_COMMON, []),
    (["-O3"], []),
]


def _header():
    with open(os.path.join(ROOT, "csrc", "tinygpt.h")) as f:
        return f.read()


def make_ffibuilder(compile_args, link_args, root=""):
    """An FFI for tinygpt._tinygpt_c built with these flags; paths are relative to `root`."""
    builder = FFI()
    builder.cdef(_header())
    builder.set_source(MODULE, '#include "tinygpt.h"',
                       sources=[os.path.join(root, s) for s in SOURCES],
                       include_dirs=[os.path.join(root, "csrc")],
                       extra_compile_args=list(compile_args), extra_link_args=list(link_args))
    return builder


ffibuilder = make_ffibuilder(*FLAG_SETS[0])


def build_in_place():
    """Compile into tinygpt/ next to the Python sources, trying each flag set in turn."""
    build_dir = os.path.join(ROOT, "build", "cffi-inplace")  # objects and generated C go here
    for compile_args, link_args in FLAG_SETS:
        try:
            builder = make_ffibuilder(compile_args, link_args, root=ROOT)
            built = builder.compile(tmpdir=build_dir, verbose=False)
        except Exception as error:  # a rejected flag: try the next, plainer set
            print(f"build with {' '.join(compile_args)} failed: {error}", file=sys.stderr)
            continue
        target = os.path.join(ROOT, "tinygpt", os.path.basename(built))
        for stale in glob.glob(os.path.join(ROOT, "tinygpt", "_tinygpt_c.*")):
            os.remove(stale)  # e.g. an .abi3.so from pip install -e: Python would pick one
        shutil.copyfile(built, target)
        print(f"built {os.path.relpath(target)} with {' '.join(compile_args)}")
        return target
    raise SystemExit("could not build the C kernels with any flag set (is a C compiler installed?)")


if __name__ == "__main__":
    build_in_place()
