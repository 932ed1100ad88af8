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


BCE_WEIGHT = rng.uniform(0, 2, (3,))

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
    "gelu": (F.gelu, TF.gelu, [normal(2, 3) * 2]),  # both exact (erf) by default
    "gelu_tanh": (lambda a: F.gelu(a, approximate="tanh"), lambda a: TF.gelu(a, approximate="tanh"),
                  [normal(2, 3) * 2]),
    "clip": (lambda a: a.clip(-0.5, 0.5), lambda a: a.clamp(-0.5, 0.5), [normal(3, 4)]),
    "clamp_one_side": (lambda a: F.clamp(a, max=0.2), lambda a: torch.clamp(a, max=0.2), [normal(3, 4)]),
    "add_alpha": (lambda a, b: F.add(a, b, alpha=-2.5), lambda a, b: torch.add(a, b, alpha=-2.5),
                  [normal(2, 3), normal(3)]),
    "sub_alpha": (lambda a, b: F.sub(a, b, alpha=0.5), lambda a, b: torch.sub(a, b, alpha=0.5),
                  [normal(2, 3), normal(2, 3)]),
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
    "F_permute": (lambda a: F.permute(a, (1, 2, 0)), lambda a: torch.permute(a, (1, 2, 0)), [normal(2, 3, 4)]),
    "transpose": (lambda a: F.transpose(a, 0, -1), lambda a: torch.transpose(a, 0, -1), [normal(2, 3, 4)]),
    "transpose_method": (lambda a: a.transpose(1, 2), lambda a: a.transpose(1, 2), [normal(2, 3, 4)]),
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
    "embedding_padding_idx": (lambda w, i: F.embedding(i, w, padding_idx=4),
                              lambda w, i: TF.embedding(i, w, padding_idx=4),
                              [normal(5, 3), np.array([[4, 0, 4], [1, 4, 4]])]),
    "embedding_negative_padding_idx": (lambda w, i: F.embedding(i, w, -5), lambda w, i: TF.embedding(i, w, -5),
                                       [normal(5, 3), np.array([0, 1, 0])]),
    "cat": (lambda *t: F.cat(t, 1), lambda *t: torch.cat(t, 1), [normal(2, 1), normal(2, 3)]),
    "concatenate": (lambda *t: F.concatenate(t, axis=-1), lambda *t: torch.cat(t, dim=-1),
                    [normal(2, 1), normal(2, 3), normal(2, 2)]),
    "stack": (lambda *t: F.stack(t, axis=1), lambda *t: torch.stack(t, dim=1), [normal(2, 3), normal(2, 3)]),
    "split_size": (lambda a: F.split(a, 3), lambda a: torch.split(a, 3), [normal(6, 2)]),
    "split_size_uneven": (lambda a: a.split(4, dim=-1), lambda a: a.split(4, dim=-1), [normal(2, 10)]),
    "split_sizes_unused": (lambda a: F.split(a, [1, 3, 2], 1)[1:],
                           lambda a: torch.split(a, [1, 3, 2], 1)[1:], [normal(2, 6)]),
    "chunk": (lambda a: F.chunk(a, 3, 1), lambda a: torch.chunk(a, 3, 1), [normal(2, 7)]),
    "chunk_fewer_pieces": (lambda a: a.chunk(4), lambda a: a.chunk(4), [normal(6, 2)]),  # 3 pieces of 2
    "softmax": (lambda a: F.softmax(a, axis=1), lambda a: torch.softmax(a, dim=1), [normal(2, 3, 4)]),
    "log_softmax": (lambda a: F.log_softmax(a, axis=0), lambda a: torch.log_softmax(a, dim=0),
                    [normal(3, 4)]),
    "layer_norm": (lambda x, w, b: F.layer_norm(x, (4,), w, b), lambda x, w, b: TF.layer_norm(x, (4,), w, b),
                   [normal(2, 3, 4), normal(4), normal(4)]),
    "layer_norm_no_bias": (lambda x, w: F.layer_norm(x, 4, w), lambda x, w: TF.layer_norm(x, (4,), w),
                           [normal(3, 4), normal(4)]),
    "layer_norm_no_affine": (lambda x: F.layer_norm(x, [4]), lambda x: TF.layer_norm(x, [4]), [normal(3, 4)]),
    "layer_norm_two_dims": (lambda x, w, b: F.layer_norm(x, (3, 4), w, b),
                            lambda x, w, b: TF.layer_norm(x, (3, 4), w, b),
                            [normal(2, 3, 4), normal(3, 4), normal(3, 4)]),
    "mse_loss": (F.mse_loss, TF.mse_loss, [normal(2, 3), normal(2, 3)]),
    "mse_loss_sum": (lambda a, b: F.mse_loss(a, b, reduction="sum"), lambda a, b: TF.mse_loss(a, b, reduction="sum"),
                     [normal(2, 3), normal(2, 3)]),
    "mse_loss_none": (lambda a, b: F.mse_loss(a, b, reduction="none"),
                      lambda a, b: TF.mse_loss(a, b, reduction="none"), [normal(2, 3), normal(2, 3)]),
    "binary_cross_entropy": (F.binary_cross_entropy, TF.binary_cross_entropy,
                             [rng.uniform(0.05, 0.95, (2, 3)), rng.uniform(0, 1, (2, 3))]),
    "binary_cross_entropy_weight_sum": (  # torch takes no gradient for weight: a constant
        lambda p, t: F.binary_cross_entropy(p, t, BCE_WEIGHT, reduction="sum"),
        lambda p, t: TF.binary_cross_entropy(p, t, torch.tensor(BCE_WEIGHT), reduction="sum"),
        [rng.uniform(0.05, 0.95, (2, 3)), rng.uniform(0, 1, (2, 3))]),
    "binary_cross_entropy_none": (lambda p, t: F.binary_cross_entropy(p, t, reduction="none"),
                                  lambda p, t: TF.binary_cross_entropy(p, t, reduction="none"),
                                  [rng.uniform(0.05, 0.95, (4,)), rng.uniform(0, 1, (4,))]),
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


@pytest.mark.parametrize("name", ["sum", "mean", "amax", "var"])
@given(shape=shapes(min_dims=1), data=st.data(), keepdims=st.booleans())
def test_reduction_matches_torch(name, shape, data, keepdims):
    axis = data.draw(axes(len(shape)).filter(lambda a: a != ()))  # torch reads dim=() as "all"
    x = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1))).normal(size=shape)
    dim = tuple(range(len(shape))) if axis is None else axis
    if name == "var" and (x.size if axis is None else np.prod([shape[a] for a in np.atleast_1d(axis)])) < 3:
        return  # 0 / 0 or torch's warning about the degrees of freedom
    torch_f = {"sum": lambda t: torch.sum(t, dim=dim, keepdim=keepdims),
               "mean": lambda t: torch.mean(t, dim=dim, keepdim=keepdims),
               "amax": lambda t: torch.amax(t, dim=dim, keepdim=keepdims),
               "var": lambda t: torch.var(t, dim=dim, keepdim=keepdims)}[name]  # unbiased: correction=1
    assert_matches_torch(lambda t: getattr(t, name)(axis, keepdims) if name != "var"
                         else t.var(axis, keepdim=keepdims), torch_f, [x])
    if name == "var":  # NumPy's ddof=0 and torch's correction=0 are the biased variance
        assert_matches_torch(lambda t: F.var(t, axis=axis, keepdims=keepdims, ddof=0),
                             lambda t: torch.var(t, dim=dim, keepdim=keepdims, correction=0), [x])


@pytest.mark.parametrize("dim, keepdim", [(0, False), (1, True), (-1, False)])
def test_max_along_a_dim_returns_values_and_indices_as_torch(dim, keepdim):
    x = normal(3, 4)
    values, indices = F.max(Tensor(x), dim, keepdim)
    theirs = torch.max(torch.tensor(x), dim, keepdim)
    np.testing.assert_allclose(values.data, theirs.values.numpy(), rtol=0)
    np.testing.assert_array_equal(indices, theirs.indices.numpy())
    assert_matches_torch(lambda t: F.max(t, dim=dim, keepdim=keepdim).values,
                         lambda t: torch.max(t, dim=dim, keepdim=keepdim).values, [x])
    assert_matches_torch(lambda t: t.max(), lambda t: t.max(), [x])  # no dim: the largest value


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("kind", ["integers", "ignored", "probabilities"])
@pytest.mark.parametrize("weighted, smoothing", [(True, 0.0), (False, 0.2), (True, 0.3)])
def test_cross_entropy_weight_and_label_smoothing_match_torch(reduction, kind, weighted, smoothing):
    logits = normal(6, 5)
    targets = np.array([1, 4, 0, 2, 2, 3])
    if kind == "ignored":
        targets[1] = targets[4] = -100
    if kind == "probabilities":
        p = np.exp(normal(6, 5))
        targets = p / p.sum(-1, keepdims=True)
    w = rng.uniform(0.2, 2.0, 5) if weighted else None
    assert_matches_torch(
        lambda t: F.cross_entropy(t, targets, w, reduction=reduction, label_smoothing=smoothing),
        lambda t: TF.cross_entropy(t, torch.tensor(targets), None if w is None else torch.tensor(w),
                                   reduction=reduction, label_smoothing=smoothing), [logits], rtol=1e-9)


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


@pytest.mark.parametrize("batch_first, bias", [(False, True), (True, False)])
def test_nn_lstm_with_torchs_layout_arguments_matches_torch(batch_first, bias):
    """nn.LSTM(batch_first=False) reads (T, B, I) as torch's default does; bias=False has no bias."""
    import tinygpt.nn as nn
    ours = nn.LSTM(3, 4, num_layers=2, bias=bias, batch_first=batch_first, rng=0).to(np.float64)
    theirs = torch.nn.LSTM(3, 4, num_layers=2, bias=bias, batch_first=batch_first).double()
    with torch.no_grad():
        for name, p in ours.named_parameters():
            if name.startswith("bias_l"):
                k = name[len("bias_l"):]
                getattr(theirs, f"bias_ih_l{k}").copy_(torch.tensor(p.data))
                getattr(theirs, f"bias_hh_l{k}").zero_()
            else:
                getattr(theirs, name).copy_(torch.tensor(p.data.T))
    x = normal(5, 2, 3)  # (T, B, I) or (B, T, I)
    out, (h, c) = ours(Tensor(x))
    t_out, (t_h, t_c) = theirs(torch.tensor(x))
    for a, b in ((out, t_out), (h, t_h), (c, t_c)):
        np.testing.assert_allclose(a.data, b.detach().numpy(), rtol=1e-10, atol=1e-12)


def test_nn_layers_with_torchs_arguments_match_torch():
    import tinygpt.nn as nn
    x = normal(2, 3, 4)
    ln, t_ln = nn.LayerNorm((3, 4), eps=1e-3).to(np.float64), torch.nn.LayerNorm((3, 4), eps=1e-3).double()
    np.testing.assert_allclose(ln(Tensor(x)).data, t_ln(torch.tensor(x)).detach().numpy(), rtol=1e-10)
    plain = nn.LayerNorm(4, elementwise_affine=False)
    np.testing.assert_allclose(plain(Tensor(x, dtype=np.float64)).data,
                               torch.nn.LayerNorm(4, elementwise_affine=False)(torch.tensor(x)).numpy(), rtol=1e-10)
    np.testing.assert_allclose(nn.GELU()(Tensor(x)).data, torch.nn.GELU()(torch.tensor(x)).numpy(), rtol=1e-12)
    assert torch.nn.Embedding(5, 3, padding_idx=2).weight[2].abs().sum() == 0
    assert not nn.Embedding(5, 3, padding_idx=2).weight.data[2].any()  # both start the padding row at 0
    assert nn.Dropout().p == torch.nn.Dropout().p == 0.5
