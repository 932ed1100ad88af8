"""Names tinygpt shares with PyTorch take PyTorch's argument order and names (NumPy's axis and
keepdims are accepted beside dim and keepdim). Compared with torch's own signatures where torch is
installed; the behaviour of each spelling is checked without it."""

import inspect

import numpy as np
import pytest

import tinygpt.functional as F
from tinygpt import Tensor


def x23():
    return Tensor(np.arange(6, dtype=np.float32).reshape(2, 3))


@pytest.mark.parametrize("name", ["sum", "mean", "max", "var"])
def test_reductions_take_numpy_and_torch_names_alike(name):
    fn = getattr(F, name)
    numpy_way = fn(x23(), axis=1, keepdims=True).data
    np.testing.assert_array_equal(fn(x23(), dim=1, keepdim=True).data, numpy_way)
    np.testing.assert_array_equal(getattr(x23(), name)(dim=1, keepdim=True).data, numpy_way)
    np.testing.assert_array_equal(getattr(x23(), name)(1, True).data, numpy_way)
    with pytest.raises(TypeError, match=rf"^{name}: give axis= or dim=, not both"):
        fn(x23(), axis=1, dim=1)


@pytest.mark.parametrize("fn", [F.softmax, F.log_softmax])
def test_softmax_takes_dim_positionally_and_axis_by_keyword(fn):
    want = fn(x23(), axis=0).data
    np.testing.assert_array_equal(fn(x23(), 0).data, want)
    np.testing.assert_array_equal(fn(x23(), dim=0).data, want)
    np.testing.assert_array_equal(getattr(x23(), fn.__name__)(0).data, want)
    np.testing.assert_array_equal(fn(x23()).data, fn(x23(), -1).data)  # default: the last axis


def test_embedding_takes_the_indices_first_as_torch_does():
    weight = Tensor(np.arange(6, dtype=np.float32).reshape(3, 2))
    np.testing.assert_array_equal(F.embedding(np.array([2, 0]), weight).data, [[4, 5], [0, 1]])


def test_stack_takes_dim_or_axis():
    a, b = Tensor(np.ones(2)), Tensor(np.zeros(2))
    assert F.stack([a, b], 1).shape == F.stack([a, b], dim=1).shape == F.stack([a, b], axis=1).shape == (2, 2)


def _leading_names(fn, n):
    return [p.name for p in inspect.signature(fn).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)][:n]


@pytest.mark.parametrize("name", ["embedding", "softmax", "log_softmax"])
def test_signature_matches_torch(name):
    """The first two parameters carry torch.nn.functional's names, in its order."""
    torch = pytest.importorskip("torch")
    theirs = getattr(torch.nn.functional, name)
    n = 2
    assert _leading_names(getattr(F, name), n) == _leading_names(theirs, n)
