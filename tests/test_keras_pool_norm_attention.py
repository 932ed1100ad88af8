"""MaxPooling1D, AveragePooling1D, LayerNormalization and MultiHeadAttention: each against a NumPy
formula, torch where it has the same layer, and finite differences for the backward passes."""

import math

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import tinygpt.keras as keras
from tinygpt import functional as F
from tinygpt.keras import layers
from tinygpt.keras.layers_attention import multi_head_attention
from tinygpt.keras.layers_conv import conv_padding
from tinygpt.ops.pool import avgpool1d_backward, avgpool1d_forward, maxpool1d_backward, maxpool1d_forward
from tinygpt.tensor import Tensor, apply
from tinygpt.testing import gradcheck


def pool_loop(x, pool, stride, padding, kind):
    """The plain definition: each window of real steps, TensorFlow's 'same' split."""
    B, T, C = x.shape
    left, right = conv_padding(T, pool, stride, 1, padding)
    T_out = (T + left + right - pool) // stride + 1
    out = np.zeros((B, T_out, C))
    for t in range(T_out):
        lo, hi = t * stride - left, t * stride - left + pool
        window = x[:, max(lo, 0):min(hi, T)]
        out[:, t] = window.max(axis=1) if kind == "max" else window.mean(axis=1)
    return out


@settings(max_examples=25, deadline=None)
@given(T=st.integers(1, 9), pool=st.integers(1, 4), stride=st.integers(1, 3),
       padding=st.sampled_from(["valid", "same"]), kind=st.sampled_from(["max", "avg"]))
@example(T=1, pool=1, stride=1, padding="valid", kind="max")
@example(T=5, pool=4, stride=3, padding="same", kind="avg")
def test_pooling_matches_numpy_loop_and_finite_differences(T, pool, stride, padding, kind):
    if padding == "valid" and T < pool:
        return
    x = np.random.default_rng(T * 31 + pool).normal(size=(2, T, 3))
    layer = (layers.MaxPooling1D if kind == "max" else layers.AveragePooling1D)(pool, stride, padding=padding)
    out = layer(Tensor(x)).data
    np.testing.assert_allclose(out, pool_loop(x, pool, stride, padding, kind), rtol=1e-12, atol=1e-12)
    assert layer.compute_output_shape((None, T, 3)) == (None,) + out.shape[1:]
    fwd, bwd = (maxpool1d_forward, maxpool1d_backward) if kind == "max" else (avgpool1d_forward, avgpool1d_backward)
    left, right = conv_padding(T, pool, stride, 1, padding)
    assert gradcheck(lambda xt: apply(fwd, bwd, xt, pool_size=pool, stride=stride, pad_left=left,
                                      pad_right=right), [x])


@pytest.mark.parametrize("pool,stride,pad", [(2, 2, 0), (3, 1, 1), (3, 2, 1), (4, 3, 2)])
def test_pooling_matches_torch(pool, stride, pad):
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(1).normal(size=(2, 9, 4)).astype(np.float32)
    xt = torch.tensor(x).permute(0, 2, 1)  # torch pools (B, C, T)
    for fwd, ref in ((maxpool1d_forward, torch.nn.functional.max_pool1d(xt, pool, stride, pad)),
                     (avgpool1d_forward, torch.nn.functional.avg_pool1d(xt, pool, stride, pad, count_include_pad=False))):
        out, _ = fwd(x, pool_size=pool, stride=stride, pad_left=pad, pad_right=pad)
        np.testing.assert_allclose(out, ref.permute(0, 2, 1).numpy(), rtol=1e-6, atol=1e-6)


def test_average_pooling_same_divides_by_the_real_steps_only():
    x = np.arange(1, 6, dtype=np.float32)[None, :, None]  # 1..5
    out = layers.AveragePooling1D(2, 2, padding="same")(x).data[0, :, 0]
    np.testing.assert_allclose(out, [1.5, 3.5, 5.0])  # the last window holds only the 5: its mean is 5, not 2.5


def test_pooling_channels_first_and_bad_arguments():
    x = np.random.default_rng(2).normal(size=(2, 3, 8)).astype(np.float32)  # (B, C, T)
    out = layers.MaxPooling1D(2, data_format="channels_first")(x).data
    np.testing.assert_allclose(out, layers.MaxPooling1D(2)(x.transpose(0, 2, 1)).data.transpose(0, 2, 1))
    with pytest.raises(ValueError, match="padding must be 'valid' or 'same', got 'causal'"):
        layers.MaxPooling1D(2, padding="causal")
    with pytest.raises(ValueError, match="pool_size must be an int >= 1, got 0"):
        layers.AveragePooling1D(0)
    with pytest.raises(ValueError, match="3 steps are fewer than pool_size 4"):
        layers.MaxPooling1D(4)(np.zeros((1, 3, 2), np.float32))


def test_pooling_in_a_sequential_trains():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 12, 3)).astype(np.float32)
    y = x[:, :, 0].max(axis=1)
    model = keras.Sequential([keras.Input((12, 3)), layers.Conv1D(8, 3, padding="same", activation="relu"),
                              layers.MaxPooling1D(2), layers.AveragePooling1D(2, padding="same"),
                              layers.Flatten(), layers.Dense(1)], seed=0)
    model.compile("adam", "mse")
    history = model.fit(x, y, epochs=30, batch_size=16, verbose=0)
    assert history.history["loss"][-1] < 0.3 * history.history["loss"][0]


# ----- LayerNormalization ----------------------------------------------------------------------
def test_layer_normalization_matches_numpy_and_torch():
    x = np.random.default_rng(3).normal(2.0, 3.0, size=(2, 5, 6)).astype(np.float32)
    layer = layers.LayerNormalization(gamma_initializer=keras.initializers.RandomNormal(1.0, 0.5, seed=1),
                                      beta_initializer="random_normal")
    out = layer(x).data
    gamma, beta = layer.get_weights()
    mean, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    np.testing.assert_allclose(out, (x - mean) / np.sqrt(var + 1e-3) * gamma + beta, rtol=1e-5, atol=1e-5)
    torch = pytest.importorskip("torch")
    ln = torch.nn.LayerNorm(6, eps=1e-3)
    with torch.no_grad():
        ln.weight.copy_(torch.tensor(gamma))
        ln.bias.copy_(torch.tensor(beta))
    np.testing.assert_allclose(out, ln(torch.tensor(x)).detach().numpy(), rtol=1e-5, atol=1e-5)


def test_layer_normalization_center_scale_and_gradients():
    x = np.random.default_rng(4).normal(size=(3, 4))
    layer = layers.LayerNormalization(center=False, scale=False, epsilon=1e-2)
    out = layer(Tensor(x)).data
    assert layer.get_weights() == []
    np.testing.assert_allclose(out, (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-2))
    gamma, beta = np.random.default_rng(5).normal(size=4), np.random.default_rng(6).normal(size=4)
    assert gradcheck(lambda xt, g, b: F.layer_norm(xt, xt.shape[-1], g, b, eps=1e-3), [x, gamma, beta])  # Keras' epsilon
    with pytest.raises(NotImplementedError, match="axis=1 on input of rank 3"):
        layers.LayerNormalization(axis=1)(np.zeros((2, 3, 4), np.float32))


# ----- MultiHeadAttention ----------------------------------------------------------------------
def mha_numpy(q_in, v_in, k_in, w, mask=None, causal=False):
    """The formula, with einsum in Keras' own index notation."""
    q = np.einsum("btc,cnh->bnth", q_in, w[0]) + w[1][None, :, None]
    k = np.einsum("btc,cnh->bnth", k_in, w[2]) + w[3][None, :, None]
    v = np.einsum("btc,cnh->bnth", v_in, w[4]) + w[5][None, :, None]
    s = np.einsum("bnqh,bnkh->bnqk", q, k) / math.sqrt(q.shape[-1])
    keep = np.ones(s.shape, bool)
    if mask is not None:
        keep &= mask[:, None]
    if causal:
        keep &= np.tril(np.ones(s.shape[-2:], bool))
    s = np.where(keep, s, -1e9)
    p = np.exp(s - s.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    o = np.einsum("bnqk,bnkh->bqnh", p, v)
    return np.einsum("bqnh,nho->bqo", o, w[6]) + w[7], p


@pytest.mark.parametrize("causal,masked,value_dim,out", [(False, False, None, None), (True, False, 3, 5),
                                                         (False, True, None, 7), (True, True, 2, None)])
def test_multi_head_attention_matches_numpy_formula(causal, masked, value_dim, out):
    rng = np.random.default_rng(7)
    q_in, v_in, k_in = (rng.normal(size=s).astype(np.float32) for s in ((2, 4, 6), (2, 5, 3), (2, 5, 2)))
    if causal:
        v_in, k_in = v_in[:, :4], k_in[:, :4]
    mask = rng.random((2, 4, v_in.shape[1])) > 0.3 if masked else None
    mha = layers.MultiHeadAttention(3, 4, value_dim=value_dim, output_shape=out,
                                    bias_initializer=keras.initializers.RandomNormal(seed=2), seed=0)
    got, scores = mha(q_in, v_in, key=k_in, attention_mask=mask, use_causal_mask=causal, return_attention_scores=True)
    ref, p = mha_numpy(q_in, v_in, k_in, mha.get_weights(), mask, causal)
    np.testing.assert_allclose(got.data, ref, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(scores.data, p, rtol=1e-4, atol=1e-6)
    assert [w.shape for w in mha.get_weights()][::2] == [(6, 3, 4), (2, 3, 4), (3, 3, value_dim or 4),
                                                         (3, value_dim or 4, out or 6)]
    if not masked:  # the fused attention op (no scores asked) computes the same output
        fused = mha(q_in, v_in, key=k_in, use_causal_mask=causal).data
        np.testing.assert_allclose(fused, got.data, rtol=1e-4, atol=1e-5)


def test_multi_head_attention_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(8)
    E, nh, B, T = 8, 2, 3, 5
    x = rng.normal(size=(B, T, E)).astype(np.float32)
    mha = layers.MultiHeadAttention(nh, E // nh, bias_initializer=keras.initializers.RandomNormal(seed=3), seed=1)
    ours = mha(x, x, use_causal_mask=True).data
    wq, bq, wk, bk, wv, bv, wo, bo = mha.get_weights()
    ref = torch.nn.MultiheadAttention(E, nh, batch_first=True)
    with torch.no_grad():  # torch keeps (out, in) matrices with the heads side by side
        ref.in_proj_weight.copy_(torch.tensor(np.concatenate([w.reshape(E, E).T for w in (wq, wk, wv)])))
        ref.in_proj_bias.copy_(torch.tensor(np.concatenate([b.reshape(E) for b in (bq, bk, bv)])))
        ref.out_proj.weight.copy_(torch.tensor(wo.reshape(E, E).T))
        ref.out_proj.bias.copy_(torch.tensor(bo))
    future = torch.triu(torch.ones(T, T, dtype=torch.bool), 1)  # torch: True means *not* allowed
    theirs, _ = ref(*(torch.tensor(x),) * 3, attn_mask=future)
    np.testing.assert_allclose(ours, theirs.detach().numpy(), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("fused", [True, False])
def test_multi_head_attention_backward_matches_finite_differences(fused):
    rng = np.random.default_rng(9)
    q, v, k = rng.normal(size=(2, 3, 4)), rng.normal(size=(2, 3, 3)), rng.normal(size=(2, 3, 2))
    w = [rng.normal(size=s) * 0.5 for s in ((4, 2, 3), (2, 3), (2, 2, 3), (2, 3), (3, 2, 2), (2, 2), (2, 2, 5), (5,))]
    mask = None if fused else rng.random((2, 3, 3)) > 0.3
    assert gradcheck(lambda *a: multi_head_attention(*a, attention_mask=mask, causal=True), [q, v, k] + w)


def test_multi_head_attention_in_a_functional_model_trains_and_errors_name_the_feature():
    # the layers without a seed draw from Keras' global generator: fix it, or earlier tests decide
    # the initial weights (loss ratios 0.63-0.73 after 20 epochs); 40 epochs give 0.36-0.54 over seeds
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(10)
    x = rng.normal(size=(64, 6, 4)).astype(np.float32)
    y = x[:, :, :1].cumsum(axis=1)  # each step: the sum of the steps before it (causal attention can do this)
    inp = keras.Input((6, 4))
    h = layers.MultiHeadAttention(2, 8, dropout=0.1, seed=0)(inp, inp, use_causal_mask=True)
    h = layers.LayerNormalization()(layers.Add()([inp, h]))
    model = keras.Model(inp, layers.Dense(1)(h), seed=0)
    model.compile("adam", "mse")
    history = model.fit(x, y, epochs=40, batch_size=16, verbose=0)
    assert history.history["loss"][-1] < 0.7 * history.history["loss"][0]
    with pytest.raises(NotImplementedError, match="attention_axes"):
        layers.MultiHeadAttention(2, 4, attention_axes=(1,))
    with pytest.raises(NotImplementedError, match="value_mask"):
        layers.MultiHeadAttention(2, 4)(x, x, value_mask=np.ones((64, 6), bool))
    with pytest.raises(ValueError, match="attention_mask has shape"):
        layers.MultiHeadAttention(2, 4)(x, x, attention_mask=np.ones((64, 6), bool))
