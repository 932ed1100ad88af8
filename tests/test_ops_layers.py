"""The ops a layer is made of: layer_norm (with and without bias), dropout (seeded), scaled
dot-product attention (causal or not, Tq < Tk), causal self-attention over a (B, T, 3C) qkv and
the LSTM, each against a formula written here with loops where that is clearer, and against
finite differences."""

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

import tinygpt.functional as F
from strategies import arrays, check_op, shapes
from tinygpt import Tensor
from tinygpt.testing import gradcheck

seeds = st.integers(0, 2**32 - 1)


# ----- layer_norm ------------------------------------------------------------------------------
@pytest.mark.parametrize("bias", [True, False])
@given(x=arrays(shapes(min_dims=1, max_dims=3)), seed=seeds)
@example(x=np.array([[2.0, 2.0, 2.0], [1.0, -1.0, 0.5]]), seed=0)  # a constant row: xhat = 0
@example(x=np.array([[0.3], [-0.7]]), seed=0)  # C = 1
def test_layer_norm_matches_numpy_and_finite_differences(bias, x, seed):
    rng = np.random.default_rng(seed)
    w, b = rng.uniform(0.5, 1.5, x.shape[-1]), rng.uniform(-1, 1, x.shape[-1])
    mean = lambda a: np.sum(a, axis=-1, keepdims=True) / a.shape[-1]  # noqa: E731
    normalized = lambda a: (a - mean(a)) / np.sqrt(mean((a - mean(a)) ** 2) + 1e-5)  # noqa: E731
    if bias:
        check_op(lambda a, w, b: F.layer_norm(a, a.shape[-1:], w, b),
                 lambda a, w, b: normalized(a) * w + b, [x, w, b])
    else:
        check_op(lambda a, w: F.layer_norm(a, a.shape[-1], w), lambda a, w: normalized(a) * w, [x, w])


@given(x=arrays(shapes(min_dims=2, max_dims=3)), seed=seeds)
def test_layer_norm_over_several_trailing_dims_matches_numpy_and_finite_differences(x, seed):
    rng = np.random.default_rng(seed)
    ns = x.shape[-2:]
    w, b = rng.uniform(0.5, 1.5, ns), rng.uniform(-1, 1, ns)
    axes = (-2, -1)
    mean = lambda a: np.mean(a, axis=axes, keepdims=True)  # noqa: E731
    normalized = lambda a: (a - mean(a)) / np.sqrt(mean((a - mean(a)) ** 2) + 1e-5)  # noqa: E731
    check_op(lambda a, w, b: F.layer_norm(a, ns, w, b), lambda a, w, b: normalized(a) * w + b, [x, w, b])
    check_op(lambda a: F.layer_norm(a, ns), normalized, [x])  # no weight, no bias


def test_layer_norm_eps_goes_inside_the_square_root():
    out = F.layer_norm(Tensor(np.array([[0.0, 2.0]])), (2,), Tensor(np.ones(2)), eps=1.0)
    np.testing.assert_allclose(out.data, [[-1 / np.sqrt(2.0), 1 / np.sqrt(2.0)]])


# ----- dropout ---------------------------------------------------------------------------------
def test_dropout_with_the_same_seed_drops_the_same_elements():
    x = Tensor(np.ones((8, 16), dtype=np.float32))
    a = F.dropout(x, 0.5, generator=np.random.default_rng(7)).data
    b = F.dropout(x, 0.5, generator=np.random.default_rng(7)).data
    c = F.dropout(x, 0.5, generator=np.random.default_rng(8)).data
    np.testing.assert_array_equal(a, b)
    assert (a != c).any()
    assert set(np.unique(a)) <= {0.0, 2.0} and a.dtype == np.float32


def test_dropout_is_the_identity_in_eval_and_for_p_0():
    x = Tensor(np.arange(6.0), requires_grad=True)
    assert F.dropout(x, 0.9, generator=np.random.default_rng(0), training=False) is x
    assert F.dropout(x, 0.0, generator=np.random.default_rng(0)) is x


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_dropout_preserves_the_expected_value(p):
    n = 400_000
    out = F.dropout(Tensor(np.ones(n, dtype=np.float32)), p, np.random.default_rng(0)).data
    # each element is 1/(1-p) with probability 1-p, else 0: mean 1, std sqrt(p/(1-p)) / sqrt(n)
    assert abs(out.mean() - 1.0) < 5 * np.sqrt(p / (1 - p) / n)
    assert abs((out == 0).mean() - p) < 5 * np.sqrt(p * (1 - p) / n)


@given(x=arrays(shapes(min_dims=1)), p=st.sampled_from([0.2, 0.5]), seed=seeds)
def test_dropout_scales_survivors_and_matches_finite_differences(x, p, seed):
    out = F.dropout(Tensor(x), p, generator=np.random.default_rng(seed)).data
    kept = out != 0
    np.testing.assert_allclose(out[kept], x[kept] / (1 - p), rtol=1e-15)
    # a fresh Generator with the same seed per call: finite differences see one fixed mask
    gradcheck(lambda t: F.dropout(t, p, generator=np.random.default_rng(seed)), [x])


def test_dropout_with_p_1_drops_everything_and_passes_no_gradient():
    x = Tensor(np.ones(4), requires_grad=True)
    out = F.dropout(x, 1.0)
    (out * np.arange(4.0)).sum().backward()
    np.testing.assert_array_equal(out.data, 0.0)
    np.testing.assert_array_equal(x.grad, 0.0)


def test_dropout_without_a_generator_uses_the_default_stream_that_manual_seed_restarts():
    import tinygpt
    x = Tensor(np.ones(50))
    tinygpt.manual_seed(3)
    first = F.dropout(x, 0.5).data
    assert not np.array_equal(first, F.dropout(x, 0.5).data)  # the stream moves on
    tinygpt.manual_seed(3)
    np.testing.assert_array_equal(F.dropout(x, 0.5).data, first)
    with pytest.raises(TypeError, match="dropout: generator must be a np.random.Generator or None, got int"):
        F.dropout(x, 0.5, generator=3)


@pytest.mark.parametrize("p", [-0.1, 1.5])
def test_dropout_rejects_p_outside_0_1(p):
    with pytest.raises(ValueError, match=f"p must be in \\[0, 1\\], got {p}"):
        F.dropout(Tensor(np.ones(3)), p, generator=np.random.default_rng(0))


# ----- attention -------------------------------------------------------------------------------
def _attention_by_loop(q, k, v, causal, scale):
    """For each query: scores against the keys it may see, softmax, weighted sum of values.
    With causal=True query i sits at position i + (Tk - Tq) and sees keys 0..that position."""
    tq, tk, hs = q.shape[2], k.shape[2], q.shape[3]
    scale = 1.0 / np.sqrt(hs) if scale is None else scale
    out = np.zeros(q.shape)
    for b, h, i in np.ndindex(q.shape[0], q.shape[1], tq):
        visible = i + (tk - tq) + 1 if causal else tk
        scores = np.array([np.dot(q[b, h, i], k[b, h, j]) * scale for j in range(visible)])
        p = np.exp(scores) / np.sum(np.exp(scores))
        out[b, h, i] = np.sum(p[:, None] * v[b, h, :visible], axis=0)
    return out


@st.composite
def attention_shapes(draw):
    b, nh, hs = draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(1, 4))
    tk = draw(st.integers(1, 5) | st.just(7))
    causal = draw(st.booleans())
    tq = draw(st.integers(1, tk)) if causal else draw(st.integers(1, 5))
    return (b, nh, tq, hs), (b, nh, tk, hs), causal


@given(shapes_=attention_shapes(), seed=seeds, scale=st.sampled_from([None, 0.3]))
@example(shapes_=((1, 1, 1, 1), (1, 1, 1, 1), True), seed=0, scale=None)  # T=1, one head, batch 1
@example(shapes_=((1, 2, 2, 3), (1, 2, 5, 3), True), seed=0, scale=None)  # Tq < Tk, as with a KV cache
@example(shapes_=((2, 1, 4, 2), (2, 1, 3, 2), False), seed=0, scale=None)  # Tq > Tk, not causal
def test_attention_matches_numpy_and_finite_differences(shapes_, seed, scale):
    q_shape, kv_shape, causal = shapes_
    rng = np.random.default_rng(seed)
    q, k, v = rng.normal(size=q_shape), rng.normal(size=kv_shape), rng.normal(size=kv_shape)
    check_op(lambda *t: F.scaled_dot_product_attention(*t, is_causal=causal, scale=scale),
             lambda *a: _attention_by_loop(*a, causal, scale), [q, k, v])


@pytest.mark.parametrize("causal", [True, False])
def test_fused_attention_equals_composed_primitives(causal):
    rng = np.random.default_rng(3)
    arrays_ = [rng.normal(size=(2, 3, 4, 5)), rng.normal(size=(2, 3, 6, 5)), rng.normal(size=(2, 3, 6, 5))]
    future = np.triu(np.ones((4, 6), dtype=bool), k=6 - 4 + 1)

    def composed(q, k, v):
        scores = (q @ k.transpose(-2, -1)) * (1.0 / np.sqrt(5))  # (B, nh, Tq, Tk)
        if causal:
            scores = scores.masked_fill(future, -np.inf)
        return F.softmax(scores, axis=-1) @ v
    grads = []
    for f in (lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=causal), composed):
        tensors = [Tensor(a, requires_grad=True) for a in arrays_]
        out = f(*tensors)
        (out * arrays_[0]).sum().backward()
        grads.append([out.data] + [t.grad for t in tensors])
    for fused, reference in zip(*grads):
        np.testing.assert_allclose(fused, reference, rtol=1e-10, atol=1e-12)


def _self_attention_by_heads(qkv, n_head):
    """qkv: (B, T, 3C) -> (B, T, C): cut q, k, v and each head's channels, attend head by head
    (the loop above), and write each head's output back into its channels."""
    B, T, C3 = qkv.shape
    C = C3 // 3
    hs = C // n_head
    out = np.zeros((B, T, C))
    for h in range(n_head):
        cols = slice(h * hs, (h + 1) * hs)
        q, k, v = (qkv[:, None, :, i * C:(i + 1) * C][..., cols] for i in range(3))  # (B, 1, T, hs)
        out[:, :, cols] = _attention_by_loop(q, k, v, True, None)[:, 0]
    return out


@given(b=st.integers(1, 2), t=st.integers(1, 5) | st.just(7), n_head=st.integers(1, 3),
       hs=st.integers(1, 3), seed=seeds)
@example(b=1, t=1, n_head=1, hs=1, seed=0)  # T=1, one head, batch 1
def test_causal_self_attention_matches_numpy_and_finite_differences(b, t, n_head, hs, seed):
    qkv = np.random.default_rng(seed).normal(size=(b, t, 3 * n_head * hs))
    check_op(lambda x: F.causal_self_attention(x, n_head),
             lambda x: _self_attention_by_heads(x, n_head), [qkv])


@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-12), (np.float32, 1e-5)])
def test_causal_self_attention_equals_split_heads_and_sdpa(dtype, tol):
    """The one-op head split/merge against the primitives it replaces, on whichever attention
    kernel runs for the dtype (the C kernel for float32)."""
    B, T, nh, hs = 2, 6, 3, 4
    C = nh * hs
    rng = np.random.default_rng(5)
    qkv_array, weights = rng.normal(size=(B, T, 3 * C)).astype(dtype), rng.normal(size=(B, T, C))

    def composed(qkv):
        q, k, v = (x.reshape(B, T, nh, hs).transpose(1, 2) for x in F.split(qkv, C, dim=-1))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (B, nh, T, hs)
        return y.transpose(1, 2).reshape(B, T, C)
    results = []
    for f in (lambda qkv: F.causal_self_attention(qkv, nh), composed):
        qkv = Tensor(qkv_array, requires_grad=True)
        out = f(qkv)
        (out * weights.astype(dtype)).sum().backward()
        assert out.dtype == dtype and qkv.grad.dtype == dtype
        results.append((out.data, qkv.grad))
    (out_fused, grad_fused), (out_composed, grad_composed) = results
    np.testing.assert_allclose(out_fused, out_composed, rtol=tol, atol=tol)
    np.testing.assert_allclose(grad_fused, grad_composed, rtol=tol, atol=tol)


def test_causal_self_attention_rejects_a_width_that_is_not_three_heads_wide():
    with pytest.raises(ValueError, match="n_head=2"):
        F.causal_self_attention(Tensor(np.ones((1, 2, 9))), 2)


# ----- LSTM ------------------------------------------------------------------------------------
def _lstm_by_loop(x, h0, c0, w_ih, w_hh, b):
    """PyTorch's LSTM equations, gates in the order i, f, g, o, one step at a time."""
    d = h0.shape[1]
    sigmoid = lambda z: 1.0 / (1.0 + np.exp(-z))  # noqa: E731
    h, c, outs = h0, c0, []
    for t in range(x.shape[1]):
        a = x[:, t] @ w_ih + h @ w_hh + b  # (B, 4D)
        i, f, o = sigmoid(a[:, :d]), sigmoid(a[:, d:2 * d]), sigmoid(a[:, 3 * d:])
        g = np.tanh(a[:, 2 * d:3 * d])
        c = f * c + i * g
        h = o * np.tanh(c)
        outs.append(h)
    return np.stack(outs, axis=1), h, c


def _lstm_inputs(seed, batch, steps, features, hidden):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=(batch, steps, features)), rng.normal(size=(batch, hidden)),
            rng.normal(size=(batch, hidden)), rng.normal(size=(features, 4 * hidden)) * 0.5,
            rng.normal(size=(hidden, 4 * hidden)) * 0.5, rng.normal(size=4 * hidden) * 0.5]


@given(batch=st.integers(1, 3), steps=st.integers(1, 4), features=st.integers(1, 3),
       hidden=st.integers(1, 3), seed=seeds)
@example(batch=1, steps=1, features=1, hidden=1, seed=0)
def test_lstm_matches_numpy_and_finite_differences(batch, steps, features, hidden, seed):
    check_op(F.lstm, _lstm_by_loop, _lstm_inputs(seed, batch, steps, features, hidden))


@pytest.mark.parametrize("used", [(0,), (1,), (2,), (0, 2), (1, 2)])
def test_lstm_with_some_outputs_unused_matches_finite_differences(used):
    inputs = _lstm_inputs(4, 2, 3, 2, 3)
    gradcheck(lambda *t: tuple(F.lstm(*t)[j] for j in used), inputs)


def test_lstm_step_by_step_equals_the_whole_sequence():
    inputs = _lstm_inputs(5, 2, 4, 3, 2)
    runs = []
    for whole in (True, False):
        tensors = [Tensor(a, requires_grad=True) for a in inputs]
        x, h, c, w_ih, w_hh, b = tensors
        if whole:
            out, h, c = F.lstm(x, h, c, w_ih, w_hh, b)
        else:
            outs = []
            for t in range(x.shape[1]):
                step, h, c = F.lstm(x[:, t:t + 1], h, c, w_ih, w_hh, b)
                outs.append(step)
            out = F.concatenate(outs, axis=1)
        (out * inputs[0][..., :2]).sum().backward()  # weights (B, T, D) from the x array
        runs.append([out.data, h.data, c.data] + [t.grad for t in tensors])
    for whole, stepped in zip(*runs):
        np.testing.assert_allclose(whole, stepped, rtol=1e-12, atol=1e-14)
