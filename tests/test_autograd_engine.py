"""The engine in tinygpt/tensor.py: deep graphs without recursion, accumulation over reuse, broadcast
gradients, freeing the graph after backward, no_grad, dtypes, and the Tensor conveniences."""

import gc
import tracemalloc
import weakref

import numpy as np
import pytest

import tinygpt.functional as F
from tinygpt import Tensor, is_grad_enabled, no_grad
from tinygpt.tensor import _FREED, _topological_order, apply


# ----- graph shape -----------------------------------------------------------------------------
def test_a_chain_of_100000_ops_backpropagates_without_recursion():
    x = Tensor(np.array(1.0), requires_grad=True)
    y = x
    for i in range(100_000):
        y = y * 1.00001 if i % 2 else y + 0.5  # d/dx = 1.00001 ** 50000
    y.backward()
    np.testing.assert_allclose(x.grad, 1.00001 ** 50_000, rtol=1e-9)
    del y  # and dropping a retained 100,000-deep graph must not overflow the C stack either
    z = x
    for _ in range(100_000):
        z = z + 1.0
    z.backward(retain_graph=True)
    del z


def test_gradients_add_up_when_a_tensor_is_used_twice():
    x = Tensor(np.array([1.0, -2.0, 3.0]), requires_grad=True)
    (x * x * np.array([1.0, 10.0, 100.0])).sum().backward()
    np.testing.assert_allclose(x.grad, [2.0, -40.0, 600.0])  # d(x^2) = 2x, weighted


def test_gradients_add_up_over_a_diamond_and_a_reused_intermediate():
    x = Tensor(np.array(2.0), requires_grad=True)
    h = x.exp()  # used by three consumers
    a, b = h * 3.0, h * h
    (a + b - h).backward()  # y = 3h + h^2 - h, dy/dx = (2 + 2h) h
    h_value = np.exp(2.0)
    np.testing.assert_allclose(x.grad, (2.0 + 2.0 * h_value) * h_value)


def test_leaf_gradients_accumulate_across_backward_calls_like_pytorch():
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    (x * 3.0).sum().backward()
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad, [3.0 + 2.0, 3.0 + 4.0])


def test_broadcast_gradients_are_summed_back_to_each_input_shape():
    x = Tensor(np.ones((3, 1)), requires_grad=True)
    y = Tensor(np.ones((1, 4)), requires_grad=True)
    bias = Tensor(np.ones(4), requires_grad=True)
    (x * y + bias).sum().backward()  # (3, 1) * (1, 4) + (4,) -> (3, 4)
    assert x.grad.shape == (3, 1) and y.grad.shape == (1, 4) and bias.grad.shape == (4,)
    np.testing.assert_array_equal(x.grad, np.full((3, 1), 4.0))
    np.testing.assert_array_equal(y.grad, np.full((1, 4), 3.0))
    np.testing.assert_array_equal(bias.grad, np.full(4, 3.0))


def test_topological_order_puts_every_node_before_the_nodes_it_depends_on():
    x = Tensor(np.array(1.0), requires_grad=True)
    a = x * 2.0
    b = a + x
    c = a * b
    order = _topological_order(c._node)
    assert order == [c._node, b._node, a._node]


def test_multi_output_ops_with_unused_outputs():
    x = Tensor(np.arange(6.0), requires_grad=True)
    first, _, third = F.split(x, 2)  # pieces of 2
    (third * 2.0).sum().backward()  # `first` is computed but never used
    np.testing.assert_array_equal(x.grad, [0, 0, 0, 0, 2, 2])
    rng = np.random.default_rng(0)
    lstm_shapes = [(2, 3, 1), (2, 2), (2, 2), (1, 8), (2, 8), (8,)]  # x, h0, c0, w_ih, w_hh, b
    params = [Tensor(rng.normal(size=s), requires_grad=True) for s in lstm_shapes]
    _, h_last, _ = F.lstm(*params)  # only h_T is used: out and c_T get no gradient
    h_last.sum().backward()
    assert all(p.grad is not None and np.isfinite(p.grad).all() for p in params)


# ----- freeing the graph -----------------------------------------------------------------------
def _loss_and_weakrefs(x):
    scaled = x * 2.0
    hidden = scaled.tanh()  # its Node caches tanh's output array for backward
    loss = (hidden * hidden).sum()
    return loss, weakref.ref(scaled), weakref.ref(hidden.data)


def test_backward_frees_intermediate_tensors_and_caches():
    x = Tensor(np.ones((100, 100)), requires_grad=True)
    loss, scaled, cached = _loss_and_weakrefs(x)
    assert scaled() is None  # the graph never holds an op's output Tensor, only where its gradient goes
    assert cached() is not None  # alive: tanh's backward needs its output
    loss.backward()
    assert cached() is None  # freed by backward, without waiting for gc
    assert loss._node.cache is _FREED and loss._node.edges == ()


def test_graph_keeps_no_array_that_no_backward_reads():
    rng = np.random.default_rng(0)
    x = Tensor(rng.normal(size=(8, 4)), requires_grad=True)
    w = Tensor(rng.normal(size=(4, 5)), requires_grad=True)
    b = Tensor(rng.normal(size=5), requires_grad=True)

    def forward():
        product = x @ w  # add's backward needs only shapes: nothing should keep this array
        hidden = product + b
        return (hidden * hidden).sum(), weakref.ref(product.data), weakref.ref(hidden.data)
    loss, product, hidden = forward()
    assert product() is None, "the matmul output before the bias add outlived its use"
    assert hidden() is not None  # mul's backward reads it
    loss.backward()
    h = x.data @ w.data + b.data
    np.testing.assert_allclose(b.grad, (2 * h).sum(axis=0), rtol=1e-5)
    np.testing.assert_allclose(w.grad, x.data.T @ (2 * h), rtol=1e-5)


def test_memory_does_not_grow_over_50_training_steps():
    rng = np.random.default_rng(0)
    w1 = Tensor(rng.normal(size=(32, 256)) * 0.1, requires_grad=True)
    w2 = Tensor(rng.normal(size=(256, 4)) * 0.1, requires_grad=True)
    x, targets = rng.normal(size=(64, 32)), rng.integers(0, 4, 64)
    losses = []  # NOTE: keeps every loss Tensor, as careless logging does: each must not keep its graph

    def step():
        loss = F.cross_entropy(F.gelu(Tensor(x) @ w1) @ w2, targets)  # activations: 64 x 256 x 8 bytes
        loss.backward()
        for w in (w1, w2):
            w.data -= 0.1 * w.grad
            w.grad = None
        losses.append(loss)
    for _ in range(5):
        step()
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(50):
            step()
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    # one kept graph would be several 131 kB activations; 50 freed ones are a few hundred bytes each
    assert grown < 100_000, f"memory grew by {grown} bytes over 50 steps: the graph is not released"
    assert losses[-1].item() < losses[0].item()


def test_a_second_backward_raises_unless_the_graph_was_retained():
    x = Tensor(np.array(3.0), requires_grad=True)
    y = x * x
    y.backward(retain_graph=True)
    y.backward()  # allowed: the first call kept the graph
    np.testing.assert_allclose(x.grad, 12.0)
    with pytest.raises(RuntimeError, match="retain_graph=True"):
        y.backward()


# ----- no_grad, requires_grad, dtypes ----------------------------------------------------------
def test_no_grad_records_nothing_and_restores_the_mode_after_an_error():
    x = Tensor(np.ones(3), requires_grad=True)
    with no_grad():
        assert not is_grad_enabled()
        y = (x * 2.0).exp().sum()
    assert not y.requires_grad and y.is_leaf and is_grad_enabled()
    with pytest.raises(ZeroDivisionError), no_grad():
        1 / 0
    assert is_grad_enabled()
    with pytest.raises(RuntimeError, match="does not require grad"):
        y.backward()


def test_requires_grad_on_an_integer_tensor_raises():
    with pytest.raises(TypeError, match="requires_grad=True needs a floating-point tensor, got dtype int64"):
        Tensor(np.array([1, 2], dtype=np.int64), requires_grad=True)


def test_backward_on_a_non_scalar_needs_a_gradient_of_its_shape():
    x = Tensor(np.ones((2, 3)), requires_grad=True)
    y = x * 2.0
    with pytest.raises(ValueError, match=r"needs a scalar, but this tensor has shape \(2, 3\)"):
        y.backward()
    with pytest.raises(ValueError, match=r"got shape \(3,\), expected \(2, 3\)"):
        y.backward(np.ones(3))
    y.backward(np.full((2, 3), 0.5))
    np.testing.assert_array_equal(x.grad, np.ones((2, 3)))


@pytest.mark.parametrize("data, dtype", [([1.0, 2.0], np.float32), (2.5, np.float32),
                                         (np.array([1.0, 2.0]), np.float64), (np.float64(1.5), np.float64),
                                         (np.ones(2, dtype=np.float32), np.float32),
                                         ([1, 2], np.int64), (np.array([1, 2], dtype=np.int32), np.int32),
                                         ([True, False], np.bool_)])
def test_tensor_dtype_float32_by_default_float64_and_integers_kept(data, dtype):
    assert Tensor(data).dtype == dtype


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_ops_with_python_scalars_keep_the_tensor_dtype_and_gradients_too(dtype):
    x = Tensor(np.array([0.5, 1.5], dtype=dtype), requires_grad=True)
    y = (2.0 * x + 1 - x / 3.0) ** 2 * np.pi
    assert y.dtype == dtype
    F.gelu(y).sum().backward()
    assert x.grad.dtype == dtype


def test_tensor_of_strings_raises():
    with pytest.raises(TypeError, match="must be numeric"):
        Tensor(["a", "b"])


# ----- conveniences ----------------------------------------------------------------------------
def test_repr_is_readable():
    assert repr(Tensor([1.0, 2.5])) == "Tensor([1. , 2.5])"
    assert repr(Tensor(np.array([1.0]), requires_grad=True)) == "Tensor([1.], dtype=float64, requires_grad=True)"
    assert repr(Tensor([[1, 2], [3, 4]])) == "Tensor([[1, 2],\n        [3, 4]], dtype=int64)"
    assert "..." in repr(Tensor(np.zeros(1000)))  # long tensors are summarised


def test_detach_numpy_array_item_shape_dtype_ndim():
    x = Tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    d = x.detach()
    assert not d.requires_grad and d.is_leaf and d.data is x.data  # shares memory, no graph
    (x * d).sum().backward()  # gradient flows through x only: d is a constant
    np.testing.assert_array_equal(x.grad, x.data)
    assert x.numpy() is x.data and np.asarray(x) is x.data
    assert np.array(x, dtype=np.float32).dtype == np.float32
    assert Tensor([[4.0]]).item() == 4.0 and isinstance(Tensor([[4.0]]).item(), float)
    with pytest.raises(ValueError, match=r"one element, this one has shape \(2, 3\)"):
        x.item()
    assert (x.shape, x.dtype, x.ndim, x.size, len(x)) == ((2, 3), np.float64, 2, 6, 2)


def test_a_leaf_that_requires_grad_can_call_backward_on_itself():
    x = Tensor(np.array(4.0), requires_grad=True)
    x.backward()
    assert x.grad == 1.0


def test_a_leaf_keeps_a_fresh_gradient_and_copies_one_that_another_holds():
    kept, made = [], []

    def forward(x):
        return x * 2, None

    def backward_fresh(dout, cache):
        dx = dout * 2
        made.append(weakref.ref(dx))  # a weak reference does not count as an owner
        return dx

    def backward_kept(dout, cache):
        dx = dout * 2
        kept.append(dx)  # the op still holds it: .grad must not alias it
        return dx

    a = Tensor(np.ones(3, np.float32), requires_grad=True)
    apply(forward, backward_fresh, a).sum().backward()
    assert a.grad is made[0](), "a gradient no one else holds should become .grad without a copy"
    b = Tensor(np.ones(3, np.float32), requires_grad=True)
    apply(forward, backward_kept, b).sum().backward()
    assert b.grad is not kept[0] and not np.shares_memory(b.grad, kept[0])
    b.grad += 1  # and accumulating into .grad leaves the op's array alone
    np.testing.assert_array_equal(kept[0], np.full(3, 2, np.float32))


def test_two_leaves_given_the_same_gradient_array_do_not_share_it():
    def forward(x, y):
        return x + y, None

    def backward(dout, cache):
        g = dout * 3
        return g, g  # one fresh array for both inputs

    a, b = (Tensor(np.ones(3, np.float32), requires_grad=True) for _ in range(2))
    apply(forward, backward, a, b).sum().backward()
    assert not np.shares_memory(a.grad, b.grad)
    a.grad += 1
    np.testing.assert_array_equal(b.grad, np.full(3, 3, np.float32))
