"""What every Numba kernel shares: the fast-math flags, a vectorisable float32 exp, and sigmoid/tanh
built on it; `as_rows`, which lays an input out the way the kernels read it; `threads_for`, which
keeps small calls on one thread.

The exp exists because Numba without Intel's SVML calls the scalar libm expf once per element;
written as plain arithmetic, LLVM turns the loop into AVX instructions, 8 lanes at a time.
Not here: any kernel (numba_softmax.py, numba_attention.py, ...).
NOTE: Numba's on-disk cache only watches the file of the function it caches. After editing this
file, touch the numba_*.py files that use it (or delete their __pycache__), or they keep the old code.
"""

import contextlib

import numba
import numpy as np
from numba import njit
from numba import types
from numba.extending import intrinsic

# Below this much work (elements, or multiply-adds) a call runs on one thread: waking Numba's workers
# for a `prange` costs ~10 µs on an idle machine and can cost 100s of µs on a busy one.
SMALL_WORK = 1 << 15

# Fast-math without 'nnan' and 'ninf': the kernels may reorder sums (so reductions vectorise) and
# fuse multiply-adds, but must keep -inf (the causal mask, exp(-inf) = 0) and nan meaning what they mean.
FAST = {"reassoc", "contract", "nsz", "arcp"}
# Every kernel also takes error_model="numpy": x / 0 gives inf or nan as in NumPy instead of raising
# ZeroDivisionError, and without that check in the way LLVM can vectorise loops that divide.

_EXP_LO = np.float32(-87.33654)  # exp(x) of anything lower is below float32's smallest normal
_EXP_HI = np.float32(88.37626)  # 2**round(x / ln 2) must still fit: round(88.376 / ln 2) = 127
_LOG2E = np.float32(1.4426950408889634)
_LN2_HI = np.float32(0.693359375)  # ln 2 split in two so n * _LN2_HI is exact (Cody and Waite)
_LN2_LO = np.float32(-2.12194440e-4)


@intrinsic
def _float32_from_bits(typingctx, bits):
    """The float32 whose IEEE-754 bit pattern is the int32 `bits` (a reinterpretation, no conversion)."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(types.float32))
    return types.float32(types.int32), codegen


# no 'reassoc' here: it would let LLVM merge n * _LN2_HI + n * _LN2_LO and undo the exact split
@njit(fastmath={"contract"}, error_model="numpy", cache=True)
def exp32(x):
    """float32 -> float32 e**x to ~1e-7 relative; exp(-inf) = 0, exp(nan) = nan.

    NOTE: x above 88.376 gives inf (expf overflows only above 88.72); the kernels call it on x <= 0."""
    xc = min(max(x, _EXP_LO), _EXP_HI)
    # e**x = 2**n * e**r with n = round(x / ln 2) and |r| <= ln(2) / 2
    n = np.floor(xc * _LOG2E + np.float32(0.5))  # np.floor keeps float32 (math.floor makes an int)
    r = xc - n * _LN2_HI - n * _LN2_LO
    # e**r by its Taylor-like minimax polynomial (Cephes expf): 1 + r + r**2 * p(r)
    p = np.float32(1.9875691500e-4)
    p = p * r + np.float32(1.3981999507e-3)
    p = p * r + np.float32(8.3334519073e-3)
    p = p * r + np.float32(4.1665795894e-2)
    p = p * r + np.float32(1.6666665459e-1)
    p = p * r + np.float32(5.0000001201e-1)
    er = p * r * r + r + np.float32(1.0)
    # 2**n built directly as a float: exponent field n + 127, mantissa 0
    y = er * _float32_from_bits((np.int32(n) + np.int32(127)) << 23)
    if x < _EXP_LO:
        y = np.float32(0.0)
    if x > _EXP_HI:
        y = np.float32(np.inf)
    return y


@njit(fastmath={"contract"}, error_model="numpy", cache=True)
def sigmoid32(x):
    """float32 -> float32 1 / (1 + e**-x), exp only ever of -|x| so nothing overflows."""
    e = exp32(-abs(x))
    s = np.float32(1.0) / (np.float32(1.0) + e)
    return s if x >= 0 else e * s  # σ(-|x|) = e / (1 + e): no 1 - σ cancellation


@njit(fastmath={"contract"}, error_model="numpy", cache=True)
def tanh32(x):
    """float32 -> float32 tanh(x) = sign(x) (1 - e**-2|x|) / (1 + e**-2|x|); absolute error ~1e-7."""
    e = exp32(np.float32(-2.0) * abs(x))
    t = (np.float32(1.0) - e) / (np.float32(1.0) + e)
    return t if x >= 0 else -t


def as_rows(x):
    """(..., V) float32 -> a C-contiguous (N, V) array with the same values (a view when possible)."""
    v = x.shape[-1] if x.ndim else 1
    return np.ascontiguousarray(x).reshape(-1, v)


@contextlib.contextmanager
def threads_for(work):
    """`with threads_for(n):` runs the block's parallel kernels on every thread, or on one if n is small."""
    if work >= SMALL_WORK:
        yield
        return
    previous = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        yield
    finally:
        numba.set_num_threads(previous)
