"""softmax and log_softmax along any axis, and cross_entropy: integer targets with ignore_index,
mean / sum / none, probability and one-hot targets, and logits of +-1e4 that must stay finite."""

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

import tinygpt.functional as F
from strategies import arrays_and_axis, check_op, shapes
from tinygpt import Tensor
from tinygpt.testing import gradcheck

seeds = st.integers(0, 2**32 - 1)


def _softmax(a, axis):
    e = np.exp(a)  # the definition; test inputs are small enough not to overflow
    return e / np.sum(e, axis=axis, keepdims=True)


@given(case=arrays_and_axis(shapes(min_dims=1), -4.0, 4.0))
@example(case=(np.array([[3.0]]), -1))  # a single class: probability 1, gradient 0
def test_softmax_and_log_softmax_along_any_axis_match_numpy_and_finite_differences(case):
    x, axis = case
    check_op(lambda t: F.softmax(t, axis=axis), lambda a: _softmax(a, axis), [x])
    check_op(lambda t: t.log_softmax(axis), lambda a: np.log(_softmax(a, axis)), [x])


def test_softmax_of_huge_logits_is_exact_and_finite():
    x = Tensor(np.array([[1e4, 1e4 - 1.0, -1e4]], dtype=np.float32), requires_grad=True)
    p = F.softmax(x)
    np.testing.assert_allclose(p.data, [[1 / (1 + np.exp(-1)), 1 / (1 + np.e), 0.0]], rtol=1e-6)
    (F.log_softmax(x) * np.array([1.0, 2.0, 3.0])).sum().backward()
    assert np.isfinite(x.grad).all()


@pytest.mark.parametrize("mode", ["numpy", "numba", "c"])
def test_log_softmax_of_huge_logits_keeps_the_small_outputs_exact(mode):
    """x - (max + log(sum)) rounds max + log(sum) to float32's spacing near 1e4 (~1e-3), so the
    output near 0 would be off by that much; (x - max) - log(sum) is exact to float32."""
    from tinygpt import backend
    x = np.array([[1e4, 1e4 - 2.0, -1e4] + [0.0] * 61], dtype=np.float32)  # (1, 64)
    with backend.use(mode):
        out = F.log_softmax(Tensor(x)).data
    log_sum = np.log1p(np.exp(-2.0))  # log(e^0 + e^-2 + ~0)
    np.testing.assert_allclose(out[0, :2], [-log_sum, -2.0 - log_sum], rtol=1e-6)


def _cross_entropy_by_loop(logits, targets, ignore_index, reduction):
    """-log softmax(logits)[target], one row at a time; ignored rows add 0 and are not counted."""
    flat, flat_t = logits.reshape(-1, logits.shape[-1]), targets.reshape(-1)
    losses, count = [], 0
    for row, t in zip(flat, flat_t):
        if t == ignore_index:
            losses.append(0.0)
            continue
        losses.append(np.log(np.sum(np.exp(row))) - row[t])
        count += 1
    losses = np.array(losses)
    if reduction == "none":
        return losses.reshape(targets.shape)
    return np.sum(losses) / count if reduction == "mean" else np.sum(losses)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@given(lead=shapes(min_dims=1, max_dims=2, max_size=12), vocab=st.integers(1, 7), seed=seeds,
       ignore_index=st.sampled_from([-100, 0]))
@example(lead=(3,), vocab=1, seed=0, ignore_index=-100)  # one class: loss 0
def test_cross_entropy_with_integer_targets_matches_numpy_and_finite_differences(reduction, lead, vocab, seed,
                                                                                 ignore_index):
    rng = np.random.default_rng(seed)
    logits = rng.uniform(-3, 3, lead + (vocab,))
    targets = rng.integers(0, vocab, lead)
    targets.flat[0] = ignore_index if ignore_index < 0 else targets.flat[0]  # some rows ignored
    if reduction == "mean" and np.all(targets == ignore_index):
        targets.flat[0] = (ignore_index + 1) % vocab if vocab > 1 else 0  # keep one row: not 0 / 0
        if np.all(targets == ignore_index):
            return
    check_op(lambda t: F.cross_entropy(t, targets, ignore_index=ignore_index, reduction=reduction),
             lambda a: _cross_entropy_by_loop(a, targets, ignore_index, reduction), [logits])


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@given(n=st.integers(1, 5), vocab=st.integers(1, 7), seed=seeds, one_hot=st.booleans())
def test_cross_entropy_with_probability_targets_matches_numpy_and_finite_differences(reduction, n, vocab,
                                                                                     seed, one_hot):
    rng = np.random.default_rng(seed)
    logits = rng.uniform(-3, 3, (n, vocab))
    targets = np.eye(vocab)[rng.integers(0, vocab, n)] if one_hot else _softmax(rng.normal(size=(n, vocab)), -1)
    losses = lambda a: -np.sum(targets * np.log(_softmax(a, -1)), axis=-1)  # noqa: E731
    expected = {"mean": lambda a: np.mean(losses(a)), "sum": lambda a: np.sum(losses(a)), "none": losses}
    check_op(lambda t: F.cross_entropy(t, targets, reduction=reduction), expected[reduction], [logits])


def test_one_hot_targets_give_the_same_loss_and_gradient_as_integer_targets():
    rng = np.random.default_rng(0)
    logits, targets = rng.normal(size=(2, 3, 5)), rng.integers(0, 5, (2, 3))
    a, b = Tensor(logits, requires_grad=True), Tensor(logits, requires_grad=True)
    F.cross_entropy(a, targets).backward()
    F.cross_entropy(b, np.eye(5)[targets]).backward()
    np.testing.assert_allclose(a.grad, b.grad, rtol=1e-12)


@pytest.mark.parametrize("targets", [np.array([0, 1, 2]), np.eye(3)[[0, 1, 2]]])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cross_entropy_of_logits_of_1e4_stays_finite(targets, dtype):
    logits = np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 1e4], [1e4, 1e4, -1e4]], dtype=dtype)
    x = Tensor(logits, requires_grad=True)
    loss = F.cross_entropy(x, targets)
    loss.backward()
    # row 0 is right with certainty (0); row 1 shares the top logit between two classes (log 2);
    # row 2's target is 2e4 below a top logit shared by two classes (2e4 + log 2)
    np.testing.assert_allclose(loss.item(), (0.0 + np.log(2.0) + 2e4 + np.log(2.0)) / 3, rtol=1e-6)
    assert np.isfinite(x.grad).all() and x.grad.dtype == dtype


def test_cross_entropy_ignores_rows_in_the_mean_and_the_gradient():
    logits = np.random.default_rng(1).normal(size=(4, 3))
    x = Tensor(logits, requires_grad=True)
    F.cross_entropy(x, np.array([2, -100, 0, -100])).backward()
    np.testing.assert_array_equal(x.grad[[1, 3]], 0.0)
    kept = Tensor(logits[[0, 2]], requires_grad=True)
    F.cross_entropy(kept, np.array([2, 0])).backward()
    np.testing.assert_allclose(x.grad[[0, 2]], kept.grad, rtol=1e-12)


def test_cross_entropy_with_every_target_ignored_is_nan_not_zero():
    x = Tensor(np.zeros((2, 3)), requires_grad=True)
    loss = F.cross_entropy(x, np.array([-100, -100]))
    assert np.isnan(loss.item())
    loss.backward()
    assert np.isnan(x.grad).all()


def test_cross_entropy_gradient_in_the_targets_is_not_taken():
    logits, targets = np.random.default_rng(2).normal(size=(3, 4)), np.eye(4)[[0, 3, 1]]
    gradcheck(lambda t: F.cross_entropy(t, targets), [logits])  # targets are a constant
