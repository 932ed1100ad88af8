"""PyTorch as an extra oracle: every op's forward and gradients match torch's in float64.

Each case runs the same inputs through tinygpt and torch, projects the outputs on the same random
weights, and compares outputs and every input's gradient. Skipped when torch is not installed.
Not here: dropout (torch draws its mask from its own generator; test_ops_layers.py covers it).
"""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinygpt.functional as F
from strategies import axes, broadcastable_shapes, shapes
from tinygpt import Tensor

torch = pytest.importorskip("torch")
TF = torch.nn.functional

rng = np.random.default_rng(0)
normal = lambda *shape: rng.normal(size=shape)  # noqa: E731
positive = lambda *shape: rng.uniform(0.5, 2.0, shape)  # noqa: E731


def assert_matches_torch(f, torch_f, inputs, rtol=1e-10, atol=1e-12):
    """f(*Tensors) and torch_f(*torch tensors): same outputs, same gradients of sum(out * w)."""
    ours = [Tensor(x, requires_grad=x.dtype.kind == "f") for x in inputs]
    theirs = [torch.tensor(x, requires_grad=x.dtype.kind == "f") for x in inputs]
    outs, torch_outs = f(*ours), torch_f(*theirs)
    outs = outs if isinstance(outs, tuple) else (outs,)
    torch_outs = torch_outs if isinstance(torch_outs, tuple) else (torch_outs,)
    weights = [np.random.default_rng(1).normal(size=o.shape) for o in outs]
    for i, (o, t) in enumerate(zip(outs, torch_outs)):
        np.testing.assert_allclose(o.data, t.detach().numpy(), rtol=rtol, atol=atol, err_msg=f"output {i}")
    sum((o * w).sum() for o, w in zip(outs, weights)).backward()
    sum((t * torch.tensor(w)).sum() for t, w in zip(torch_outs, weights)).backward()
    for i, (x, t) in enumerate(zip(ours, theirs)):
        if x.requires_grad:
            expected = np.zeros(x.shape) if t.grad is None else t.grad.numpy()
            got = np.zeros(x.shape) if x.grad is None else x.grad
            np.testing.assert_allclose(got, expected, rtol=rtol, atol=atol, err_msg=f"gradient of input {i}")


def _torch_self_attention(qkv, n_head):
    """(B, T, 3C) -> (B, T, C) with torch's own head split and causal attention."""
    B, T, C = qkv.shape[0], qkv.shape[1], qkv.shape[2] // 3
    q, k, v = (x.reshape(B, T, n_head, C // n_head).transpose(1, 2) for x in qkv.split(C, dim=2))
    return TF.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(B, T, C)


# name: (tinygpt, torch, inputs)
CASES = {
    "add_broadcast": (lambda a, b: a + b, lambda a, b: a + b, [normal(2, 1, 3), normal(4, 1)]),
    "sub_scalar_first": (lambda a: 2.5 - a, lambda a: 2.5 - a, [normal(3)]),
    "mul_broadcast": (lambda a, b: a * b, lambda a, b: a * b, [normal(3, 1), normal(1, 4)]),
    "div_both": (lambda a, b: a / b, lambda a, b: a / b, [normal(2, 3), positive(3)]),
    "rdiv": (lambda a: 2.0 / a, lambda a: 2.0 / a, [positive(4)]),
    "neg": (lambda a: -a, lambda a: -a, [normal(2, 3)]),
    "pow_scalar": (lambda a: a ** 1.5, lambda a: a ** 1.5, [positive(5)]),
    "pow_tensor": (lambda a, b: a ** b, lambda a, b: a ** b, [positive(2, 3), normal(3)]),
    "rpow": (lambda a: 3.0 ** a, lambda a: 3.0 ** a, [normal(4)]),
    "exp": (F.exp, torch.exp, [normal(2, 3)]),
    "log": (F.log, torch.log, [positive(2, 3)]),
    "sqrt": (F.sqrt, torch.sqrt, [positive(2, 3)]),
    "tanh": (F.tanh, torch.tanh, [normal(2, 3)]),
    "sigmoid": (F.sigmoid, torch.sigmoid, [normal(2, 3) * 5]),
    "relu": (F.relu, torch.relu, [normal(2, 3)]),
    "gelu": (F.gelu, lambda a: TF.gelu(a, approximate="tanh"), [normal(2, 3) * 2]),
    "clip": (lambda a: a.clip(-0.5, 0.5), lambda a: a.clamp(-0.5, 0.5), [normal(3, 4)]),
    "where": (lambda a, b: F.where(np.array([True, False, True]), a, b),
              lambda a, b: torch.where(torch.tensor([True, False, True]), a, b),
              [normal(2, 3), normal(2, 1)]),
    "masked_fill": (lambda a: a.masked_fill(np.triu(np.ones((3, 3), bool), 1), -1e9),
                    lambda a: a.masked_fill(torch.triu(torch.ones(3, 3, dtype=torch.bool), 1), -1e9),
                    [normal(2, 3, 3)]),
    "matmul_1d_1d": (lambda a, b: a @ b, lambda a, b: a @ b, [normal(4), normal(4)]),
    "matmul_1d_batched": (lambda a, b: a @ b, lambda a, b: a @ b, [normal(4), normal(2, 4, 3)]),
    "matmul_batched_1d": (lambda a, b: a @ b, lambda a, b: a @ b, [normal(2, 3, 4), normal(4)]),
    "matmul_broadcast": (F.matmul, torch.matmul, [normal(2, 1, 3, 4), normal(5, 4, 2)]),
    # torch stores a Linear weight (out, in); ours is (in, out), hence w.T on torch's side
    "linear": (F.linear, lambda x, w, b: TF.linear(x, w.T, b), [normal(2, 3, 4), normal(4, 5), normal(5)]),
    "linear_no_bias": (F.linear, lambda x, w: TF.linear(x, w.T), [normal(3, 4), normal(4, 2)]),
    "linear_1d": (F.linear, lambda x, w, b: TF.linear(x, w.T, b), [normal(4), normal(4, 2), normal(2)]),
    "causal_self_attention": (lambda x: F.causal_self_attention(x, 2), lambda x: _torch_self_attention(x, 2),
                              [normal(2, 5, 12)]),
    "reshape": (lambda a: a.reshape(3, -1), lambda a: a.reshape(3, -1), [normal(2, 3, 2)]),
    "permute": (lambda a: a.permute(2, 0, 1), lambda a: a.permute(2, 0, 1), [normal(2, 3, 4)]),
    "transpose_T": (lambda a: a.T, lambda a: a.T, [normal(3, 4)]),
    "getitem_basic": (lambda a: a[1:, None, ..., -1], lambda a: a[1:, None, ..., -1], [normal(3, 4, 5)]),
    "getitem_int_array": (lambda a: a[np.array([2, 0, 2, 2])],
                          lambda a: a[torch.tensor([2, 0, 2, 2])], [normal(3, 2)]),
    "getitem_two_arrays": (lambda a: a[np.array([[0], [2]]), np.array([1, 1, 0])],
                           lambda a: a[torch.tensor([[0], [2]]), torch.tensor([1, 1, 0])], [normal(3, 2)]),
    "getitem_bool_mask": (lambda a: a[np.array([True, False, True])],
                          lambda a: a[torch.tensor([True, False, True])], [normal(3, 2)]),
    "embedding": (lambda w, i: F.embedding(i, w), lambda w, i: TF.embedding(i, w),
                  [normal(5, 3), np.array([[4, 0, 4], [1, 4, 4]])]),
    "concatenate": (lambda *t: F.concatenate(t, axis=-1), lambda *t: torch.cat(t, dim=-1),
                    [normal(2, 1), normal(2, 3), normal(2, 2)]),
    "stack": (lambda *t: F.stack(t, axis=1), lambda *t: torch.stack(t, dim=1), [normal(2, 3), normal(2, 3)]),
    "split_equal": (lambda a: F.split(a, 3, axis=0), lambda a: torch.tensor_split(a, 3, dim=0),
                    [normal(6, 2)]),
    "split_indices_unused": (lambda a: F.split(a, [1, 4], axis=1)[1:],
                             lambda a: torch.tensor_split(a, [1, 4], dim=1)[1:], [normal(2, 6)]),
    "softmax": (lambda a: F.softmax(a, axis=1), lambda a: torch.softmax(a, dim=1), [normal(2, 3, 4)]),
    "log_softmax": (lambda a: F.log_softmax(a, axis=0), lambda a: torch.log_softmax(a, dim=0),
                    [normal(3, 4)]),
    "layer_norm": (F.layer_norm, lambda x, w, b: TF.layer_norm(x, (4,), w, b),
                   [normal(2, 3, 4), normal(4), normal(4)]),
    "layer_norm_no_bias": (F.layer_norm, lambda x, w: TF.layer_norm(x, (4,), w), [normal(3, 4), normal(4)]),
}


@pytest.mark.parametrize("name", list(CASES))
def test_op_matches_torch(name):
    f, torch_f, inputs = CASES[name]
    assert_matches_torch(f, torch_f, inputs)


BINARY = {"add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b}


@pytest.mark.parametrize("op", list(BINARY))
@given(pair=broadcastable_shapes(), seed=st.integers(0, 2**32 - 1))
def test_binary_op_with_any_broadcast_matches_torch(op, pair, seed):
    r = np.random.default_rng(seed)
    assert_matches_torch(BINARY[op], BINARY[op], [r.normal(size=pair[0]), r.normal(size=pair[1])])


@pytest.mark.parametrize("name", ["sum", "mean", "max", "var"])
@given(shape=shapes(min_dims=1), data=st.data(), keepdims=st.booleans())
def test_reduction_matches_torch(name, shape, data, keepdims):
    axis = data.draw(axes(len(shape)).filter(lambda a: a != ()))  # torch reads dim=() as "all"
    x = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1))).normal(size=shape)
    dim = tuple(range(len(shape))) if axis is None else axis
    if name == "var" and (x.size if axis is None else np.prod([shape[a] for a in np.atleast_1d(axis)])) < 2:
        return  # torch and tinygpt agree on 0 here, but torch warns about the degrees of freedom
    torch_f = {"sum": lambda t: torch.sum(t, dim=dim, keepdim=keepdims),
               "mean": lambda t: torch.mean(t, dim=dim, keepdim=keepdims),
               "max": lambda t: torch.amax(t, dim=dim, keepdim=keepdims),
               "var": lambda t: torch.var(t, dim=dim, keepdim=keepdims, correction=0)}[name]
    assert_matches_torch(lambda t: getattr(t, name)(axis, keepdims), torch_f, [x])


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("kind", ["integers", "ignored", "probabilities", "one_hot", "huge_logits"])
def test_cross_entropy_matches_torch(reduction, kind):
    logits = normal(2, 3, 5) * (1e4 if kind == "huge_logits" else 1.0)
    targets = np.array([[1, 4, 0], [2, 2, 3]])
    if kind == "ignored":
        targets[0, 1] = targets[1, 2] = -100
    if kind == "probabilities":
        weights = np.exp(normal(2, 3, 5))
        targets = weights / weights.sum(-1, keepdims=True)
    if kind == "one_hot":
        targets = np.eye(5)[targets]
    torch_targets = torch.tensor(targets.reshape((6,) + targets.shape[2:]))
    assert_matches_torch(lambda t: F.cross_entropy(t, targets, reduction=reduction),
                         lambda t: TF.cross_entropy(t.reshape(6, 5), torch_targets, reduction=reduction)
                         .reshape((2, 3) if reduction == "none" else ()), [logits], rtol=1e-9)


@pytest.mark.parametrize("causal, tq, tk", [(True, 4, 4), (True, 2, 5), (True, 1, 1), (False, 3, 5),
                                             (False, 4, 2)])
@pytest.mark.parametrize("scale", [None, 0.3])
def test_attention_matches_torch(causal, tq, tk, scale):
    # NOTE: torch's is_causal aligns the queries with the first keys; ours (a KV cache) with the
    # last Tq, so the mask is given explicitly
    visible = torch.tensor(~np.triu(np.ones((tq, tk), dtype=bool), k=tk - tq + 1)) if causal else None
    assert_matches_torch(
        lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=causal, scale=scale),
        lambda q, k, v: TF.scaled_dot_product_attention(q, k, v, attn_mask=visible, scale=scale),
        [normal(2, 3, tq, 4), normal(2, 3, tk, 4), normal(2, 3, tk, 4)])


@pytest.mark.parametrize("used", [(0, 1, 2), (0,), (2,)])
def test_lstm_matches_torch(used):
    batch, steps, features, hidden = 2, 4, 3, 5
    lstm = torch.nn.LSTM(features, hidden, batch_first=True).double()

    def torch_lstm(x, h0, c0, w_ih, w_hh, b):
        # torch stores weights (4D, in) and two biases; ours are (in, 4D) and one bias
        weights = {"weight_ih_l0": w_ih.T, "weight_hh_l0": w_hh.T, "bias_ih_l0": b,
                   "bias_hh_l0": torch.zeros(4 * hidden, dtype=torch.float64)}
        out, (h, c) = torch.func.functional_call(lstm, weights, (x, (h0[None], c0[None])))
        return tuple((out, h[0], c[0])[j] for j in used)
    inputs = [normal(batch, steps, features), normal(batch, hidden), normal(batch, hidden),
              normal(features, 4 * hidden) * 0.5, normal(hidden, 4 * hidden) * 0.5, normal(4 * hidden) * 0.5]
    assert_matches_torch(lambda *t: tuple(F.lstm(*t)[j] for j in used), torch_lstm, inputs)
