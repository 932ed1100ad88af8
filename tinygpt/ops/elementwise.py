"""Elementwise ops: arithmetic with broadcasting, and the pointwise nonlinearities.

Binary ops take arrays or Python scalars; a gradient flows only to array inputs, summed back over
the axes broadcasting stretched (`unbroadcast`). Two GELUs: `gelu` is GPT-2's tanh approximation,
`gelu_erf` the exact x Φ(x) (PyTorch's default, approximate='none').
Not here: reductions (reduce.py) or softmax-like ops that look along an axis (softmax.py).
"""

import math

import numpy as np

from tinygpt.backend import kernel

GELU_SCALE = math.sqrt(2.0 / math.pi)  # a Python float, so float32 inputs stay float32
GELU_CUBIC = 0.044715


def unbroadcast(grad, shape):
    """Sum `grad` over the axes that broadcasting added or stretched, so it has `shape` again."""
    if grad.shape == shape:
        return grad
    extra = grad.ndim - len(shape)
    stretched = tuple(i + extra for i, n in enumerate(shape) if n == 1 and grad.shape[i + extra] != 1)
    return grad.sum(axis=tuple(range(extra)) + stretched, keepdims=True).reshape(shape)


def _shape(x):
    """The shape a gradient for x must have, or None when x is a constant scalar (no gradient)."""
    return x.shape if isinstance(x, np.ndarray) else None


def _check_integer_overflow(op, out, a, b, combine):
    """NumPy integer arithmetic wraps around silently: refuse a result that wrapped.

    A float64 redo finds the elements near or past the limits; those few are redone exactly in
    Python integers (float64 alone cannot tell 2**63 - 1 from 2**63)."""
    if out.dtype.kind not in "iu":
        return
    info = np.iinfo(out.dtype)
    a64, b64 = np.broadcast_arrays(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64))
    approx = combine(a64, b64)
    near = (approx >= float(info.max) * (1 - 2.0**-40)) | (approx <= float(info.min) * (1 - 2.0**-40))
    if not near.any():
        return
    a_int, b_int = np.broadcast_arrays(np.asarray(a), np.asarray(b))
    for x, y in zip(a_int[near].tolist(), b_int[near].tolist()):
        if not info.min <= combine(int(x), int(y)) <= info.max:
            raise OverflowError(f"{op}: the integer result {combine(int(x), int(y))} overflows "
                                f"{out.dtype} (range {info.min} to {info.max}); use a float tensor "
                                f"for values this large")


def _broadcast_error(op, a, b):
    return ValueError(f"{op}: shapes {np.shape(a)} and {np.shape(b)} cannot be broadcast together "
                      f"(trailing axes must be equal or 1)")


def add_forward(a, b):
    """a: (...), b: (...) broadcastable -> out: broadcast shape"""
    try:
        out = a + b
    except ValueError:
        raise _broadcast_error("add", a, b) from None
    _check_integer_overflow("add", out, a, b, lambda x, y: x + y)
    return out, (_shape(a), _shape(b))


def add_backward(dout, cache):
    # out = a + b: each input receives dout, summed over its broadcast axes
    sa, sb = cache
    return (None if sa is None else unbroadcast(dout, sa),
            None if sb is None else unbroadcast(dout, sb))


def sub_forward(a, b):
    try:
        out = a - b
    except ValueError:
        raise _broadcast_error("sub", a, b) from None
    _check_integer_overflow("sub", out, a, b, lambda x, y: x - y)
    return out, (_shape(a), _shape(b))


def sub_backward(dout, cache):
    # out = a - b, so da = dout and db = -dout
    sa, sb = cache
    return (None if sa is None else unbroadcast(dout, sa),
            None if sb is None else unbroadcast(-dout, sb))


def mul_forward(a, b):
    try:
        out = a * b
    except ValueError:
        raise _broadcast_error("mul", a, b) from None
    _check_integer_overflow("mul", out, a, b, lambda x, y: x * y)
    return out, (a, b)


def mul_backward(dout, cache):
    # out = a * b, so da = dout * b and db = dout * a
    a, b = cache
    return (None if _shape(a) is None else unbroadcast(dout * b, a.shape),
            None if _shape(b) is None else unbroadcast(dout * a, b.shape))


def div_forward(a, b):
    try:
        out = a / b
    except ValueError:
        raise _broadcast_error("div", a, b) from None
    return out, (a, b, out)


def div_backward(dout, cache):
    # out = a / b, so da = dout / b and db = -dout * a / b**2 = -dout * out / b
    a, b, out = cache
    return (None if _shape(a) is None else unbroadcast(dout / b, a.shape),
            None if _shape(b) is None else unbroadcast(-dout * out / b, b.shape))


def neg_forward(x):
    return -x, None


def neg_backward(dout, cache):
    return -dout


def pow_forward(a, b):
    """a ** b where either may be a scalar constant; out: broadcast shape"""
    try:
        out = a ** b
    except ValueError:
        raise _broadcast_error("pow", a, b) from None
    return out, (a, b, out)


def pow_backward(dout, cache):
    # out = a**b: d/da = b * a**(b-1); d/db = out * log(a) (only defined where a > 0)
    a, b, out = cache
    da = None if _shape(a) is None else unbroadcast(dout * b * a ** (b - 1), a.shape)
    db = None if _shape(b) is None else unbroadcast(dout * out * np.log(a), b.shape)
    return da, db


def exp_forward(x):
    out = np.exp(x)
    return out, out


def exp_backward(dout, out):
    # out = e**x is its own derivative
    return dout * out


def log_forward(x):
    return np.log(x), x


def log_backward(dout, x):
    return dout / x


def sqrt_forward(x):
    out = np.sqrt(x)
    return out, out


def sqrt_backward(dout, out):
    # d sqrt(x) = 1 / (2 sqrt(x))
    return dout * 0.5 / out


def tanh_forward(x):
    out = np.tanh(x)
    return out, out


def tanh_backward(dout, out):
    # d tanh(x) = 1 - tanh(x)**2
    return dout * (1.0 - out * out)


def sigmoid_forward(x):
    # 1 / (1 + e**-x) written as e**-log(1 + e**-x), which overflows for no x of either sign
    out = np.exp(-np.logaddexp(0.0, -x))
    return out, out


def sigmoid_backward(dout, out):
    # d sigmoid(x) = sigmoid(x) * (1 - sigmoid(x))
    return dout * out * (1.0 - out)


def relu_forward(x):
    return np.maximum(x, 0.0), x


def relu_backward(dout, x):
    # the gradient passes where the input was positive; at exactly 0 we take the subgradient 0
    return dout * (x > 0)


@kernel
def gelu_forward(x):
    """x: (...) -> out: (...), cache x. GPT-2's 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))"""
    inner = GELU_SCALE * (x + GELU_CUBIC * x * x * x)
    return 0.5 * x * (1.0 + np.tanh(inner)), x


@kernel
def gelu_backward(dout, x):
    """dout: (...) -> dx: (...); recomputes tanh instead of keeping a second activation alive"""
    inner = GELU_SCALE * (x + GELU_CUBIC * x * x * x)
    t = np.tanh(inner)
    # out = 0.5 x (1 + t): d/dx = 0.5 (1 + t) + 0.5 x (1 - t^2) d(inner)/dx
    dinner = GELU_SCALE * (1.0 + 3.0 * GELU_CUBIC * x * x)
    return dout * (0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * dinner)


# NumPy has no erf; math.erf element by element is exact and slow, fine for a reference (the
# Numba kernel of the same name is the fast path for float32)
_erf = np.frompyfunc(math.erf, 1, 1)
INV_SQRT2 = 1.0 / math.sqrt(2.0)
INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


@kernel
def gelu_erf_forward(x):
    """x: (...) -> out: (...), cache x. The exact GELU: x Φ(x) = 0.5 x (1 + erf(x / sqrt(2)))"""
    return 0.5 * x * (1.0 + np.asarray(_erf(x * INV_SQRT2), dtype=x.dtype)), x


@kernel
def gelu_erf_backward(dout, x):
    """dout: (...) -> dx: (...)"""
    # out = x Φ(x): d/dx = Φ(x) + x φ(x), with φ(x) = exp(-x²/2) / sqrt(2π) the normal density
    cdf = 0.5 * (1.0 + np.asarray(_erf(x * INV_SQRT2), dtype=x.dtype))
    return dout * (cdf + x * (INV_SQRT_2PI * np.exp(-0.5 * x * x)))


def clip_forward(x, low=None, high=None):
    """x: (...) -> out: (...); limits may be None (unbounded on that side)"""
    out = np.clip(x, low, high)
    return out, (x, low, high)


def clip_backward(dout, cache):
    # inside [low, high] the gradient passes; outside, out is constant in x
    x, low, high = cache
    inside = np.ones(x.shape, dtype=bool)
    if low is not None:
        inside &= x >= low
    if high is not None:
        inside &= x <= high
    return dout * inside


def where_forward(condition, a, b):
    """condition: bool (...), a, b: broadcastable arrays or scalars -> out: broadcast shape"""
    try:
        out = np.where(condition, a, b)
    except ValueError:
        raise ValueError(f"where: condition {np.shape(condition)}, a {np.shape(a)} and b "
                         f"{np.shape(b)} cannot be broadcast together") from None
    return out, (condition, _shape(a), _shape(b))


def where_backward(dout, cache):
    # each element of out came from a or from b: route dout there, zero elsewhere
    condition, sa, sb = cache
    da = None if sa is None else unbroadcast(np.where(condition, dout, 0.0).astype(dout.dtype, copy=False), sa)
    db = None if sb is None else unbroadcast(np.where(condition, 0.0, dout).astype(dout.dtype, copy=False), sb)
    return None, da, db
