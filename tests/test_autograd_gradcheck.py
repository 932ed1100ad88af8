"""gradcheck itself: it passes a right backward and catches a wrong factor, sign or transpose (ops
defined here through `apply`), with a message naming the input, the index and both values. Also the
worked example of docs/autograd.md, number by number."""

import re

import numpy as np
import pytest

import tinygpt.functional as F
from tinygpt import Tensor
from tinygpt.ops import elementwise
from tinygpt.tensor import _topological_order, apply
from tinygpt.testing import GradcheckError, gradcheck


def square_forward(x):
    return x * x, x


def square_backward(dout, x):
    return dout * 2.0 * x


def square_backward_wrong_factor(dout, x):
    return dout * 3.0 * x


def matmul_forward(a, b):
    return a @ b, (a, b)


def matmul_backward_da_untransposed(dout, cache):
    a, b = cache
    return dout @ b, a.T @ dout  # da should be dout @ b.T: shapes agree when b is square


def matmul_backward_db_transposed(dout, cache):
    a, b = cache
    return dout @ b.T, dout.T @ a  # db should be a.T @ dout, not its transpose


def softmax_backward_zero(dout, cache):
    return np.zeros_like(dout)  # the gradient of softmax(x).sum() is zero, so a plain sum can't tell


def test_gradcheck_passes_a_correct_backward():
    x = np.array([[0.5, -1.0], [2.0, 0.25]])
    assert gradcheck(lambda t: apply(square_forward, square_backward, t), [x]) is True


def test_gradcheck_catches_a_wrong_factor_and_names_input_index_and_values():
    x = np.array([[0.5, -1.0], [2.0, 0.25]])
    with pytest.raises(GradcheckError) as caught:
        gradcheck(lambda t: apply(square_forward, square_backward_wrong_factor, t), [x])
    message = str(caught.value)
    assert message.startswith("gradient of input 0 (shape (2, 2)) is wrong at index (0, 0): ")
    backward_value, numeric_value = map(float, re.search(
        r"backward gives (\S+), finite differences give (\S+) ", message).groups())
    assert backward_value == pytest.approx(1.5 * numeric_value, rel=1e-5)  # 3x where 2x is right
    assert "4 of 4 entries differ" in message


def test_gradcheck_catches_a_wrong_sign():
    wrong_sign = lambda dout, x: -square_backward(dout, x)  # noqa: E731
    with pytest.raises(GradcheckError, match="input 0"):
        gradcheck(lambda t: apply(square_forward, wrong_sign, t), [np.array([1.0, 2.0])])


def test_gradcheck_catches_a_wrong_transpose_and_names_the_input_that_is_wrong():
    rng = np.random.default_rng(0)  # NOTE: on purpose; projections seeded 0 would equal `a`, make
    a, b = rng.normal(size=(3, 4)), rng.normal(size=(4, 4))  # a^T w symmetric, and let db pass
    with pytest.raises(GradcheckError, match=r"^gradient of input 0 \(shape \(3, 4\)\)"):
        gradcheck(lambda s, t: apply(matmul_forward, matmul_backward_da_untransposed, s, t), [a, b])
    with pytest.raises(GradcheckError, match=r"^gradient of input 1 \(shape \(4, 4\)\)"):
        gradcheck(lambda s, t: apply(matmul_forward, matmul_backward_db_transposed, s, t), [a, b])


def test_gradcheck_catches_a_backward_that_a_plain_sum_would_pass():
    from tinygpt.ops.softmax import softmax_forward
    x = np.array([[0.3, -1.2, 2.0]])
    t = Tensor(x, requires_grad=True)
    apply(softmax_forward, softmax_backward_zero, t, axis=-1).sum().backward()
    np.testing.assert_allclose(t.grad, 0.0)  # "correct" for the sum: rows of softmax add up to 1
    with pytest.raises(GradcheckError):
        gradcheck(lambda u: apply(softmax_forward, softmax_backward_zero, u, axis=-1), [x])


def test_gradcheck_handles_several_outputs_integer_inputs_and_wrt():
    x, idx = np.arange(6.0).reshape(3, 2) / 7, np.array([2, 0, 2])
    assert gradcheck(lambda w, i: (F.embedding(i, w), w.sum()), [x, idx])
    assert gradcheck(lambda a, b: a * b, [x, x + 1.0], wrt=[1])


def test_gradcheck_is_not_fooled_by_a_huge_constant_in_the_output():
    # masked_fill with -1e9 (an attention mask): differencing the projected sum would lose every
    # digit of the step; gradcheck differences each output before projecting
    x = np.array([0.3, -0.4, 1.1, 0.8])
    mask = np.array([True, False, True, False])
    assert gradcheck(lambda t: t.masked_fill(mask, -1e9), [x])
    assert gradcheck(lambda t: t.masked_fill(mask, -np.inf), [x])


def test_gradcheck_works_on_float32_inputs_by_checking_in_float64():
    x = Tensor(np.array([0.5, 1.5], dtype=np.float32))
    assert gradcheck(lambda t: t.tanh() * t, [x])


# ----- the worked example of docs/autograd.md --------------------------------------------------
def test_worked_example_in_the_docs():
    x, w = Tensor(2.0, requires_grad=True), Tensor(3.0, requires_grad=True)
    a = x * w  # 6
    b = a + x  # 8
    loss = b * b  # 64
    assert (a.item(), b.item(), loss.item()) == (6.0, 8.0, 64.0)
    # the order backward visits the nodes: the loss first, each node before the ones it depends on
    assert _topological_order(loss._node) == [loss._node, b._node, a._node]
    # node 1, loss = b * b: both inputs are b, so b's gradient is 8 + 8 = 16
    assert elementwise.mul_backward(np.array(1.0), (b.data, b.data)) == (8.0, 8.0)
    # node 2, b = a + x: dout 16 goes to both a and x unchanged
    assert elementwise.add_backward(np.array(16.0), ((), ())) == (16.0, 16.0)
    # node 3, a = x * w: dx = 16 * w = 48, dw = 16 * x = 32
    assert elementwise.mul_backward(np.array(16.0), (x.data, w.data)) == (48.0, 32.0)
    loss.backward()
    assert x.grad == 16.0 + 48.0 == 64.0  # x was used twice: the two paths add up
    assert w.grad == 32.0
    assert x.grad == 2 * 2.0 * (3.0 + 1) ** 2 and w.grad == 2 * 2.0 ** 2 * (3.0 + 1)  # calculus agrees
    assert x.grad.dtype == np.float32 and x.dtype == np.float32
