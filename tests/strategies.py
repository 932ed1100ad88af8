"""Hypothesis strategies shared by the op and autograd tests, and `check_op`, the assertion they all use.

Shapes have small sides (1-5) plus odd sizes (7, 11) that break kernel tiles, capped in total size
so finite differences stay fast. Values come from a drawn seed rather than element by element:
random floats have no ties and no exact kinks, and edge cases are pinned with `@example` instead.
Not here: the tests themselves, or the profiles (conftest.py).
"""

import math

import numpy as np
from hypothesis import strategies as st

from tinygpt import Tensor
from tinygpt.testing import gradcheck

sides = st.one_of(st.integers(1, 5), st.sampled_from([7, 11]))


def shapes(min_dims=0, max_dims=3, max_size=60):
    """Array shapes with `min_dims`..`max_dims` axes of small or odd sides, at most `max_size` elements."""
    return (st.lists(sides, min_size=min_dims, max_size=max_dims).map(tuple)
            .filter(lambda s: math.prod(s) <= max_size))


@st.composite
def arrays(draw, shape, low=-2.0, high=2.0):
    """A float64 array of `shape` (a shape or a strategy of shapes), uniform in [low, high)."""
    shape = draw(shape) if isinstance(shape, st.SearchStrategy) else shape
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    return np.asarray(rng.uniform(low, high, size=shape))


@st.composite
def arrays_and_axis(draw, shape, low=-2.0, high=2.0):
    """(x, axis): an array with at least one axis and one of its axes, maybe negative."""
    x = draw(arrays(shape, low, high))
    return x, draw(st.integers(-x.ndim, x.ndim - 1))


@st.composite
def nonzero_arrays(draw, shape, low=0.5, high=2.0):
    """A float64 array with |values| in [low, high) and random signs: safe denominators."""
    x = draw(arrays(shape, low, high))
    signs = np.random.default_rng(draw(st.integers(0, 2**32 - 1))).choice([-1.0, 1.0], size=x.shape)
    return x * signs


def away_from(x, points, margin=1e-3):
    """`x` with every value within `margin` of a kink in `points` moved out of reach of the
    finite-difference step, where the one-sided derivatives differ."""
    x = np.array(x, dtype=np.float64)
    for p in points:
        near = np.abs(x - p) < margin
        x[near] = p + np.where(x[near] >= p, 2 * margin, -2 * margin)
    return x


@st.composite
def broadcastable_shapes(draw, max_dims=3):
    """Two shapes that broadcast together: the second may drop leading axes, and either may have
    size-1 axes where the other is larger."""
    full = draw(shapes(min_dims=0, max_dims=max_dims, max_size=40))
    a = tuple(1 if draw(st.booleans()) else n for n in full)
    b = tuple(1 if draw(st.booleans()) else n for n in full)
    b = b[draw(st.integers(0, len(b))):]
    return (a, b) if draw(st.booleans()) else (b, a)


@st.composite
def axes(draw, ndim):
    """An `axis` argument for a reduction over `ndim` axes: None, an int (maybe negative), or a
    tuple of distinct axes (maybe negative, maybe empty)."""
    if ndim == 0:
        return draw(st.sampled_from([None, ()]))
    kind = draw(st.sampled_from(["none", "int", "tuple"]))
    if kind == "none":
        return None
    if kind == "int":
        return draw(st.integers(-ndim, ndim - 1))
    chosen = draw(st.lists(st.integers(0, ndim - 1), unique=True, max_size=ndim))
    return tuple(a - ndim if draw(st.booleans()) else a for a in chosen)


@st.composite
def basic_indices(draw, shape):
    """A basic index for `shape`: per axis an int (maybe negative) or a slice (maybe with a
    negative step), with None inserted and a trailing run of axes replaced by Ellipsis."""
    parts = []
    for n in shape:
        if draw(st.booleans()):
            parts.append(draw(st.integers(-n, n - 1)))
        else:
            start = draw(st.none() | st.integers(-n, n))
            stop = draw(st.none() | st.integers(-n, n))
            parts.append(slice(start, stop, draw(st.sampled_from([None, 1, 2, -1, -2]))))
    if parts and draw(st.booleans()):
        parts = parts[:draw(st.integers(0, len(parts) - 1))] + [Ellipsis]
    for _ in range(draw(st.integers(0, 2))):
        parts.insert(draw(st.integers(0, len(parts))), None)
    return tuple(parts)


def check_op(f, numpy_f, inputs, wrt=None, atol=1e-10, rtol=1e-7):
    """Assert f(*Tensors) equals numpy_f(*arrays) in float64, and that f's backward matches central
    finite differences (`gradcheck`, projected on random weights). Both get the same inputs."""
    inputs = [np.asarray(x) for x in inputs]  # rng.uniform(size=()) gives a NumPy scalar
    tensors = [Tensor(x) for x in inputs]
    got = f(*tensors)
    expected = numpy_f(*inputs)
    got = got if isinstance(got, tuple) else (got,)
    expected = expected if isinstance(expected, tuple) else (expected,)
    assert len(got) == len(expected), f"{len(got)} outputs, expected {len(expected)}"
    for i, (g, e) in enumerate(zip(got, expected)):
        assert isinstance(g, Tensor), f"output {i} is a {type(g).__name__}, not a Tensor"
        e = np.asarray(e)
        assert g.shape == e.shape, f"output {i}: shape {g.shape}, expected {e.shape}"
        assert g.dtype == np.float64, f"output {i}: dtype {g.dtype} from float64 inputs"
        np.testing.assert_allclose(g.data, e, atol=atol, rtol=rtol, err_msg=f"forward, output {i}")
    gradcheck(f, inputs, wrt=wrt)
