"""Bad input gives an error a person can act on: the op, the shapes or the index, and what was
expected, raised at the boundary instead of a NumPy traceback. NaN and inf propagate, never hidden."""

import operator
import re

import numpy as np
import pytest

import tinygpt.functional as F
from tinygpt import Tensor

BINARY = {"add": F.add, "sub": F.sub, "mul": F.mul, "div": F.div, "pow": F.pow}
OPERATORS = {"add": operator.add, "sub": operator.sub, "mul": operator.mul, "div": operator.truediv,
             "pow": operator.pow}


@pytest.mark.parametrize("name", list(BINARY))
@pytest.mark.parametrize("via_operator", [False, True])
def test_binary_op_with_mismatched_shapes_names_the_op_and_both_shapes(name, via_operator):
    a, b = Tensor(np.ones((2, 3)), requires_grad=True), Tensor(np.ones((4,)))
    op = OPERATORS[name] if via_operator else BINARY[name]  # a + b or F.add(a, b)
    with pytest.raises(ValueError, match=rf"^{name}: shapes \(2, 3\) and \(4,\) cannot be broadcast"):
        op(a, b)


def test_where_with_mismatched_shapes_names_all_three():
    with pytest.raises(ValueError, match=r"where: condition \(2,\), a \(3,\) and b \(\) cannot be broadcast"):
        F.where(np.array([True, False]), Tensor(np.ones(3)), 0.0)


@pytest.mark.parametrize("a_shape, b_shape, message", [
    ((2, 3), (4, 5), r"matmul: shapes \(2, 3\) and \(4, 5\) do not fit: the last axis of the first \(3\) "
                     r"must equal the second-to-last axis of the second \(4\)"),
    ((3,), (4,), r"matmul: shapes \(3,\) and \(4,\) do not fit"),
    ((2, 2, 3), (3, 3, 1), r"matmul: batch axes of shapes \(2, 2, 3\) and \(3, 3, 1\) cannot be broadcast"),
    ((), (3,), r"matmul: operands must have at least one dimension, got shapes \(\) and \(3,\)"),
])
def test_matmul_with_mismatched_shapes_names_both_shapes(a_shape, b_shape, message):
    with pytest.raises(ValueError, match=message):
        Tensor(np.ones(a_shape)) @ Tensor(np.ones(b_shape))


@pytest.mark.parametrize("bad", [5, 7, -1])
def test_embedding_index_out_of_range_names_the_index_and_the_vocabulary_size(bad):
    weight = Tensor(np.ones((5, 3)), requires_grad=True)
    with pytest.raises(ValueError, match=rf"embedding: index {bad} is out of range for a vocabulary of 5 rows"):
        F.embedding(np.array([[0, bad, 1]]), weight)
    with pytest.raises(TypeError, match="indices must be integers, got dtype float"):
        F.embedding(np.array([0.0, 1.0]), weight)


@pytest.mark.parametrize("bad", [4, -1])
def test_cross_entropy_target_out_of_range_names_the_target_and_the_class_count(bad):
    logits = Tensor(np.zeros((2, 4)), requires_grad=True)
    with pytest.raises(ValueError, match=rf"cross_entropy: target {bad} is out of range for 4 classes"):
        F.cross_entropy(logits, np.array([0, bad]))


def ones(*shape):
    return Tensor(np.ones(shape))


@pytest.mark.parametrize("call, message", [
    (lambda: F.cross_entropy(ones(2, 4), np.array([0, 1, 2])),
     r"integer targets of shape \(3,\) do not match logits of shape \(2, 4\); expected targets of shape \(2,\)"),
    (lambda: F.cross_entropy(ones(2, 4), np.zeros((2, 3))),
     r"probability targets of shape \(2, 3\) must match logits of shape \(2, 4\)"),
    (lambda: F.cross_entropy(ones(2, 4), np.array([0, 1]), reduction="avg"),
     "reduction must be 'mean', 'sum' or 'none', got 'avg'"),
    (lambda: ones(6).reshape(4, 2), r"reshape: cannot reshape an array of shape \(6,\) \(6 elements\) into \(4, 2\)"),
    (lambda: ones(2, 3).permute(0, 0), r"transpose: axes \(0, 0\) are not a permutation"),
    (lambda: ones(2, 3).transpose(0, 2), r"transpose: dim1=2 is out of range for a tensor with 2 dimensions"),
    (lambda: F.split(ones(5), [2, 2]), r"split: sizes \[2, 2\] must be >= 0 and add up to 5"),
    (lambda: F.split(ones(5), 0), "split: split_size=0 must be a positive int"),
    (lambda: F.chunk(ones(5), 0), "chunk: chunks=0 must be a positive int"),
    (lambda: F.concatenate([ones(2, 3), ones(2, 4)]), r"concatenate: shapes \[\(2, 3\), \(2, 4\)\]"),
    (lambda: F.stack([ones(2), ones(3)]), r"stack: all arrays need one shape, got \[\(2,\), \(3,\)\]"),
    (lambda: F.layer_norm(ones(2, 3), (3,), ones(4)), r"layer_norm: weight has shape \(4,\), expected \(3,\)"),
    (lambda: F.layer_norm(ones(2, 3), 4), r"layer_norm: normalized_shape \(4,\) must be the last dimensions"),
    (lambda: F.linear(ones(2, 3), ones(4, 3)), r"linear: input \(2, 3\) and weight \(4, 3\) do not fit.*must be transposed: weight.T"),
    (lambda: F.gelu(ones(2), approximate="erf"), "gelu: approximate must be 'none' or 'tanh', got 'erf'"),
    (lambda: F.scaled_dot_product_attention(ones(1, 1, 3, 2), ones(1, 1, 3, 2), ones(1, 1, 4, 2)),
     r"scaled_dot_product_attention: expected query \(B, nh, Tq, hs\)"),
    (lambda: F.scaled_dot_product_attention(ones(1, 1, 3, 2), ones(1, 1, 2, 2), ones(1, 1, 2, 2), is_causal=True),
     "causal attention needs Tq <= Tk, got Tq=3, Tk=2"),
    (lambda: F.lstm(ones(1, 2, 3), ones(1, 4), ones(1, 4), ones(3, 16), ones(4, 16), ones(12)),
     r"lstm: b has shape \(12,\), expected \(16,\)"),
    (lambda: ones(2, 3)[2], r"index 2 does not fit an array of shape \(2, 3\)"),
])
def test_bad_arguments_raise_a_clear_error(call, message):
    with pytest.raises((ValueError, IndexError), match=message):
        call()


def test_errors_are_raised_before_any_graph_is_recorded():
    x = Tensor(np.ones((2, 3)), requires_grad=True)
    with pytest.raises(ValueError):
        x + Tensor(np.ones(4))
    assert x.grad is None and x.is_leaf


def test_unsupported_torch_options_say_so():
    with pytest.raises(NotImplementedError, match="dropout: inplace=True is not supported"):
        F.dropout(ones(2), 0.5, inplace=True)
    with pytest.raises(TypeError, match="max: dim must be one int"):
        F.max(ones(2, 3), (0, 1))
    with pytest.raises(TypeError, match="layer_norm: normalized_shape must be an int or a tuple.*hint: the order"):
        F.layer_norm(ones(2, 3), ones(3))
    with pytest.raises(TypeError, match="var: give ddof= or correction=, not both"):
        F.var(ones(3), correction=0, ddof=1)


# ----- NaN and inf propagate -------------------------------------------------------------------
PROPAGATING = {
    "add": lambda t: t + 1.0, "mul": lambda t: t * 2.0, "exp": F.exp, "tanh": F.tanh, "sigmoid": F.sigmoid,
    "gelu": F.gelu, "relu": F.relu, "clip": lambda t: t.clip(-1.0, 1.0), "sum": lambda t: t.sum(axis=-1),
    "mean": lambda t: t.mean(axis=-1), "max": lambda t: t.amax(axis=-1), "var": lambda t: t.var(axis=-1),
    "matmul": lambda t: t @ np.ones((3, 2)), "softmax": F.softmax, "log_softmax": F.log_softmax,
    "cross_entropy": lambda t: F.cross_entropy(t, np.array([0, 1]), reduction="none"),
    "layer_norm": lambda t: F.layer_norm(t, 3, Tensor(np.ones(3))),
}


SATURATING = {"tanh", "sigmoid", "clip"}  # tanh(inf) = 1 is the right answer, not a hidden inf


@pytest.mark.parametrize("name, bad", [(name, np.nan) for name in PROPAGATING]
                         + [(name, np.inf) for name in PROPAGATING if name not in SATURATING])
def test_nan_and_inf_propagate_through_forward_and_backward(name, bad):
    data = np.array([[0.5, bad, -0.5], [0.1, 0.2, 0.3]])
    x = Tensor(data, requires_grad=True)
    with np.errstate(all="ignore"):
        out = PROPAGATING[name](x)
        row0 = out.data[0] if out.ndim else out.data
        assert not np.isfinite(row0).all(), f"{name}: a {bad} in the input vanished from the output"
        assert np.isfinite(out.data[1]).all(), f"{name}: a {bad} in row 0 leaked into row 1"
        (out * Tensor(np.full(out.shape, np.nan))).sum().backward()  # a NaN gradient flows back too
    assert np.isnan(x.grad).any(), f"{name}: a NaN upstream gradient was replaced by numbers"


def test_an_error_message_never_shows_a_numpy_traceback():
    try:
        Tensor(np.ones((2, 3))) * Tensor(np.ones((3, 2)))
    except ValueError as error:
        assert error.__cause__ is None and error.__suppress_context__
        assert re.match(r"mul: shapes \(2, 3\) and \(3, 2\)", str(error))


@pytest.mark.parametrize("op, a, b, wraps", [
    (operator.mul, [2**62], 4, True),
    (operator.add, [2**62], 2**62, True),
    (operator.sub, [-2**62], 2**62 + 1, True),
    (operator.mul, [-2**63], -1, True),
    (operator.add, [2**62], 2**62 - 1, False),   # exactly int64's maximum: fits
    (operator.mul, [[1], [2]], np.array([3, 4]), False),
])
def test_integer_arithmetic_refuses_to_wrap_around(op, a, b, wraps):
    x = Tensor(np.array(a, dtype=np.int64))
    if wraps:
        with pytest.raises(OverflowError, match=r"overflows int64 \(range -9223372036854775808 to"):
            op(x, b)
    else:
        np.testing.assert_array_equal(op(x, b).data, op(np.array(a, dtype=np.int64), b))


@pytest.mark.parametrize("fn", [F.softmax, F.log_softmax])
@pytest.mark.parametrize("axis", [2, -3, 5])
def test_softmax_axis_out_of_range_names_the_op_and_the_axis(fn, axis):
    with pytest.raises(ValueError, match=rf"^{fn.__name__}: axis={axis} is out of range for a "
                                         rf"tensor with 2 dimensions; expected an int in \[-2, 1\]"):
        fn(Tensor(np.ones((2, 3))), axis=axis)


def test_tensor_from_ragged_list_or_huge_int_says_what_is_wrong():
    with pytest.raises(ValueError, match=r"^Tensor data must be a rectangular nested list"):
        Tensor([[1, 2], [3]])
    with pytest.raises(ValueError, match=r"^Tensor data 10{30} does not fit in int64"):
        Tensor(10**30)
