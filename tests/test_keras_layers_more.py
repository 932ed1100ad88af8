"""The extra Keras layers (reshape/pooling, merge, wrappers, Conv1D): each forward against a NumPy
formula (and torch where torch has the layer), each gradient against finite differences."""

import numpy as np
import pytest

from tinygpt.keras.layers import (LSTM, Activation, Add, Bidirectional, Concatenate, Conv1D, Dense, Flatten,
                                  GlobalAveragePooling1D, GlobalMaxPooling1D, RepeatVector, Reshape,
                                  TimeDistributed)
from tinygpt.keras.layers_conv import conv_padding
from tinygpt.ops.conv import conv1d_backward, conv1d_forward
from tinygpt.tensor import apply
from tinygpt.testing import gradcheck

rng = np.random.default_rng(0)
x3 = rng.standard_normal((2, 5, 3))


def _grad_ok(layer, *inputs):
    """gradcheck of the layer's output w.r.t. its float64 input(s); the layer is built first."""
    layer(list(inputs) if len(inputs) > 1 else inputs[0])
    if len(inputs) > 1:
        return gradcheck(lambda *ts: layer(list(ts)), list(inputs))
    return gradcheck(lambda t: layer(t), [inputs[0]])


@pytest.mark.parametrize("layer, expected", [
    (Flatten(), lambda x: x.reshape(2, -1)),
    (Reshape((3, 5)), lambda x: x.reshape(2, 3, 5)),
    (Reshape((-1, 15)), lambda x: x.reshape(2, 1, 15)),
    (GlobalMaxPooling1D(), lambda x: x.max(axis=1)),
    (GlobalAveragePooling1D(), lambda x: x.mean(axis=1)),
    (Activation("tanh"), np.tanh),
    (Activation("softmax"), lambda x: np.exp(x) / np.exp(x).sum(-1, keepdims=True)),
])
def test_shape_and_pooling_layers_match_numpy_and_finite_differences(layer, expected):
    out = layer(x3)
    np.testing.assert_allclose(out.data, expected(x3), rtol=1e-6, atol=1e-7)
    assert out.shape[1:] == layer.compute_output_shape((None, 5, 3))[1:]
    assert _grad_ok(layer, x3)


def test_repeat_vector_matches_numpy_and_finite_differences():
    x = rng.standard_normal((2, 4))
    out = RepeatVector(3)(x)
    np.testing.assert_allclose(out.data, np.repeat(x[:, None, :], 3, axis=1), rtol=1e-6)
    assert _grad_ok(RepeatVector(3), x)


def test_concatenate_and_add_match_numpy_and_finite_differences():
    a, b = rng.standard_normal((2, 5, 3)), rng.standard_normal((2, 5, 2))
    np.testing.assert_allclose(Concatenate()([a, b]).data, np.concatenate([a, b], axis=-1), rtol=1e-6)
    np.testing.assert_allclose(Concatenate(axis=1)([a, a]).data, np.concatenate([a, a], axis=1), rtol=1e-6)
    assert _grad_ok(Concatenate(), a, b)
    c = rng.standard_normal((2, 5, 3))
    np.testing.assert_allclose(Add()([a, c, a]).data, a + c + a, rtol=1e-5)
    assert _grad_ok(Add(), a, c)
    with pytest.raises(ValueError, match="Add 'add' needs inputs of one shape"):
        Add()([a, b])
    with pytest.raises(ValueError, match="list of at least 2"):
        Concatenate()(a)


def test_time_distributed_dense_is_dense_at_every_step():
    layer = TimeDistributed(Dense(4, seed=0))
    out = layer(x3)
    w, b = layer.get_weights()
    np.testing.assert_allclose(out.data, x3 @ w + b, rtol=1e-5, atol=1e-6)
    assert out.shape == (2, 5, 4) and layer.compute_output_shape((None, 5, 3)) == (None, 5, 4)
    assert _grad_ok(layer, x3)


def _lstm_numpy(x, kernel, recurrent, bias):
    """Keras' LSTM (gates i, f, c, o) in plain NumPy: -> all hidden states (B, T, D)."""
    B, T, _ = x.shape
    D = recurrent.shape[0]
    h, c, hs = np.zeros((B, D)), np.zeros((B, D)), []
    sig = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731
    for t in range(T):
        z = x[:, t] @ kernel + h @ recurrent + bias
        i, f, g, o = sig(z[:, :D]), sig(z[:, D:2 * D]), np.tanh(z[:, 2 * D:3 * D]), sig(z[:, 3 * D:])
        c = f * c + i * g
        h = o * np.tanh(c)
        hs.append(h)
    return np.stack(hs, axis=1)


@pytest.mark.parametrize("merge_mode", ["concat", "sum", "mul", "ave", None])
@pytest.mark.parametrize("return_sequences", [True, False])
def test_bidirectional_lstm_matches_numpy_for_every_merge_mode(merge_mode, return_sequences):
    layer = Bidirectional(LSTM(4, return_sequences=return_sequences, seed=0), merge_mode=merge_mode, seed=1)
    out = layer(x3)
    weights = layer.get_weights()
    fwd = _lstm_numpy(x3, *weights[:3])
    bwd = _lstm_numpy(x3[:, ::-1], *weights[3:])[:, ::-1]  # re-aligned: step t has read x[:, t:]
    if not return_sequences:
        fwd, bwd = fwd[:, -1], bwd[:, 0]
    expected = {"concat": lambda: np.concatenate([fwd, bwd], -1), "sum": lambda: fwd + bwd,
                "mul": lambda: fwd * bwd, "ave": lambda: (fwd + bwd) / 2, None: lambda: [fwd, bwd]}[merge_mode]()
    got = [o.data for o in out] if merge_mode is None else out.data
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    shape = layer.compute_output_shape((None, 5, 3))
    assert (shape[0] if merge_mode is None else shape)[1:] == (got[0] if merge_mode is None else got).shape[1:]


def test_bidirectional_matches_torch_and_finite_differences():
    torch = pytest.importorskip("torch")
    layer = Bidirectional(LSTM(4, return_sequences=True, seed=0), seed=1)
    out = layer(x3.astype(np.float32)).data
    k, r, b, kb, rb, bb = [torch.tensor(w) for w in layer.get_weights()]
    ref = torch.nn.LSTM(3, 4, batch_first=True, bidirectional=True)
    with torch.no_grad():
        for suffix, (kk, rr, bias) in (("", (k, r, b)), ("_reverse", (kb, rb, bb))):
            getattr(ref, f"weight_ih_l0{suffix}").copy_(kk.T)  # Keras (in, 4D) = torch's (4D, in)ᵀ
            getattr(ref, f"weight_hh_l0{suffix}").copy_(rr.T)
            getattr(ref, f"bias_ih_l0{suffix}").copy_(bias)
            getattr(ref, f"bias_hh_l0{suffix}").zero_()
        expected = ref(torch.tensor(x3, dtype=torch.float32))[0].numpy()
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)
    assert _grad_ok(layer, x3)


@pytest.mark.parametrize("T, K, stride, dilation, padding", [
    (7, 3, 1, 1, "valid"), (7, 3, 2, 1, "valid"), (8, 3, 1, 2, "valid"), (7, 3, 1, 1, "same"),
    (8, 4, 3, 1, "same"), (9, 2, 1, 3, "same"), (6, 3, 1, 2, "causal"),
])
def test_conv1d_matches_numpy_loop_and_finite_differences(T, K, stride, dilation, padding):
    x = rng.standard_normal((2, T, 3))
    layer = Conv1D(4, K, strides=stride, padding=padding, dilation_rate=dilation, seed=0)
    out = layer(x).data
    w, b = layer.get_weights()
    left, right = conv_padding(T, K, stride, dilation, padding)
    xp = np.pad(x, ((0, 0), (left, right), (0, 0)))
    T_out = (xp.shape[1] - (K - 1) * dilation - 1) // stride + 1
    expected = np.zeros((2, T_out, 4))
    for t in range(T_out):
        for k in range(K):
            expected[:, t] += xp[:, t * stride + k * dilation] @ w[k]
    expected += b
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)
    assert layer.compute_output_shape((None, T, 3)) == (None,) + out.shape[1:]
    if padding == "same" and stride == 1:
        assert out.shape[1] == T
    # the op itself, in float64, against finite differences for x and w
    w64 = rng.standard_normal((K, 3, 4))
    assert gradcheck(lambda xt, wt: apply(conv1d_forward, conv1d_backward, xt, wt, stride=stride,
                                          dilation=dilation, pad_left=left, pad_right=right), [x, w64])


@pytest.mark.parametrize("stride, dilation, pad", [(1, 1, 0), (2, 1, 1), (1, 2, 2), (3, 1, 0)])
def test_conv1d_matches_torch(stride, dilation, pad):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((2, 9, 3)).astype(np.float32)
    w = rng.standard_normal((3, 3, 5)).astype(np.float32)
    out, _ = conv1d_forward(x, w, stride=stride, dilation=dilation, pad_left=pad, pad_right=pad)
    # torch is channels-first (B, C, T) with weight (C_out, C_in, K)
    ref = torch.nn.functional.conv1d(torch.tensor(x).permute(0, 2, 1), torch.tensor(w).permute(2, 1, 0),
                                     stride=stride, dilation=dilation, padding=pad).permute(0, 2, 1).numpy()
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-5)


def test_layer_errors_name_the_keras_feature():
    with pytest.raises(NotImplementedError, match="wraps LSTM, GRU and SimpleRNN"):
        Bidirectional(Dense(3))
    with pytest.raises(ValueError, match="padding must be one of"):
        Conv1D(2, 3, padding="full")
    with pytest.raises(ValueError, match="Conv1D 'conv1d' takes input of shape"):
        Conv1D(2, 3)(rng.standard_normal((2, 5)))
    with pytest.raises(ValueError, match="do not fit target_shape"):
        Reshape((4, 4))(x3)
