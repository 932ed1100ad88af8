"""Recurrent layers and masks: F.gru / nn.GRU and Keras' GRU and SimpleRNN against torch with the
same weights and against NumPy formulas, gradients by finite differences, the fused path equal to
the step path, masks (a padded batch gives each sequence's own result), recurrent dropout against
a NumPy LSTM with the same masks, Bidirectional of every recurrent layer."""

import copy

import numpy as np
import pytest

import tinygpt.functional as F
from tinygpt import nn
from tinygpt.keras import Input, Model, Sequential, recurrent
from tinygpt.keras.layers import (GRU, LSTM, Bidirectional, Concatenate, Dense, Embedding,
                                  GlobalAveragePooling1D, GlobalMaxPooling1D, Masking, SimpleRNN,
                                  TimeDistributed)
from tinygpt.tensor import Tensor
from tinygpt.testing import gradcheck

rng = np.random.default_rng(0)


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


# ----- the op and nn.GRU ---------------------------------------------------------------------

@pytest.mark.parametrize("used", [(0,), (1,), (0, 1)])
def test_gru_backward_matches_finite_differences(used):
    r = np.random.default_rng(3)
    inputs = [r.standard_normal((2, 4, 3)), r.standard_normal((2, 5)) * 0.5, r.standard_normal((3, 15)) * 0.5,
              r.standard_normal((5, 15)) * 0.5, r.standard_normal(15) * 0.1, r.standard_normal(15) * 0.1]
    gradcheck(lambda *t: tuple(F.gru(*t)[j] for j in used), inputs)


def test_gru_shape_errors_name_the_argument():
    x, h0 = np.zeros((2, 3, 4), np.float32), np.zeros((2, 5), np.float32)
    w = np.zeros((5, 15), np.float32)
    with pytest.raises(ValueError, match=r"gru: w_ih has shape \(4, 12\), expected \(4, 15\)"):
        F.gru(x, h0, np.zeros((4, 12), np.float32), w, np.zeros(15), np.zeros(15))


def test_nn_gru_matches_torch_gru_forward_and_gradients():
    torch = pytest.importorskip("torch")
    gru = nn.GRU(3, 4, num_layers=2, batch_first=True, rng=0).to(np.float64)
    assert dict((n, p.shape) for n, p in gru.named_parameters()) == {
        "weight_ih_l0": (3, 12), "weight_hh_l0": (4, 12), "bias_ih_l0": (12,), "bias_hh_l0": (12,),
        "weight_ih_l1": (4, 12), "weight_hh_l1": (4, 12), "bias_ih_l1": (12,), "bias_hh_l1": (12,)}
    ref = torch.nn.GRU(3, 4, num_layers=2, batch_first=True).double()
    with torch.no_grad():
        for name, p in gru.named_parameters():  # tinygpt stores (in, out): PyTorch's transpose
            getattr(ref, name).copy_(torch.tensor(p.data.T if p.ndim == 2 else p.data))
    x = rng.standard_normal((2, 6, 3))
    h0 = rng.standard_normal((2, 2, 4)) * 0.3
    w_out, w_h = rng.standard_normal((2, 6, 4)), rng.standard_normal((2, 2, 4))
    xt, h0t = Tensor(x, requires_grad=True), Tensor(h0, requires_grad=True)
    out, h_n = gru(xt, h0t)
    ((out * w_out).sum() + (h_n * w_h).sum()).backward()
    tx, th0 = torch.tensor(x, requires_grad=True), torch.tensor(h0, requires_grad=True)
    t_out, t_h = ref(tx, th0)
    ((t_out * torch.tensor(w_out)).sum() + (t_h * torch.tensor(w_h)).sum()).backward()
    np.testing.assert_allclose(out.data, t_out.detach().numpy(), atol=1e-12)
    np.testing.assert_allclose(h_n.data, t_h.detach().numpy(), atol=1e-12)
    np.testing.assert_allclose(xt.grad, tx.grad.numpy(), atol=1e-12)
    np.testing.assert_allclose(h0t.grad, th0.grad.numpy(), atol=1e-12)
    for name, p in gru.named_parameters():
        want = getattr(ref, name).grad.numpy()
        np.testing.assert_allclose(p.grad, want.T if p.ndim == 2 else want, atol=1e-12, err_msg=name)


# ----- Keras GRU and SimpleRNN ---------------------------------------------------------------

def _torch_gru_from_keras(torch, layer):
    """torch.nn.GRU with a Keras GRU's weights: Keras' gates z, r, h -> PyTorch's r, z, n."""
    kernel, recurrent_kernel, bias = layer.get_weights()
    u = layer.units
    order = np.r_[u:2 * u, 0:u, 2 * u:3 * u]
    ref = torch.nn.GRU(kernel.shape[0], u, batch_first=True).double()
    with torch.no_grad():
        ref.weight_ih_l0.copy_(torch.tensor(kernel[:, order].T))
        ref.weight_hh_l0.copy_(torch.tensor(recurrent_kernel[:, order].T))
        ref.bias_ih_l0.copy_(torch.tensor(bias[0, order]))
        ref.bias_hh_l0.copy_(torch.tensor(bias[1, order]))
    return ref


def test_keras_gru_matches_torch_gru_with_the_gate_mapping():
    torch = pytest.importorskip("torch")
    layer = GRU(5, return_sequences=True, return_state=True, seed=1)
    x = rng.standard_normal((3, 7, 4)).astype(np.float32)
    layer(x)
    layer.bias.data[...] = rng.standard_normal(layer.bias.shape) * 0.3  # Keras starts at zeros
    out, h = layer(x)
    assert layer.get_weights()[2].shape == (2, 15)
    t_out, t_h = _torch_gru_from_keras(torch, layer)(torch.tensor(x, dtype=torch.float64))
    np.testing.assert_allclose(out.data, t_out.detach().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(h.data, t_h[0].detach().numpy(), rtol=1e-5, atol=1e-6)


def _keras_gru_numpy(x, kernel, recurrent_kernel, bias, reset_after, h_keep=1.0):
    """Keras' GRU cell written out in NumPy, gates z, r, h; h_keep: the recurrent dropout mask,
    which multiplies the state entering every step."""
    u = recurrent_kernel.shape[0]
    h = np.zeros((x.shape[0], u))
    outs = []
    for t in range(x.shape[1]):
        h = h * h_keep
        xw = x[:, t] @ kernel + (bias[0] if reset_after else bias)
        if reset_after:
            inner = h @ recurrent_kernel + bias[1]
            z, r = _sigmoid(xw[:, :u] + inner[:, :u]), _sigmoid(xw[:, u:2 * u] + inner[:, u:2 * u])
            hh = np.tanh(xw[:, 2 * u:] + r * inner[:, 2 * u:])
        else:
            inner = h @ recurrent_kernel[:, :2 * u]
            z, r = _sigmoid(xw[:, :u] + inner[:, :u]), _sigmoid(xw[:, u:2 * u] + inner[:, u:])
            hh = np.tanh(xw[:, 2 * u:] + (r * h) @ recurrent_kernel[:, 2 * u:])
        h = z * h + (1 - z) * hh
        outs.append(h)
    return np.stack(outs, axis=1)


@pytest.mark.parametrize("reset_after", [True, False])
def test_keras_gru_matches_the_numpy_cell(reset_after):
    layer = GRU(4, return_sequences=True, reset_after=reset_after, seed=2)
    x = rng.standard_normal((2, 6, 3))
    layer(x)
    layer.bias.data[...] = rng.standard_normal(layer.bias.shape) * 0.3
    want = _keras_gru_numpy(x, *[w.astype(np.float64) for w in layer.get_weights()], reset_after)
    np.testing.assert_allclose(layer(x).data, want, rtol=1e-5, atol=1e-6)


def _step_path(layer, x):
    """The layer's cell run step by step (what a mask or recurrent dropout uses), no mask."""
    fns = (layer.project, layer.step) if not isinstance(layer, LSTM) else (lambda x: x, layer._step)
    return recurrent._steps(x, None, None, *fns, 2 if isinstance(layer, LSTM) else 1, layer.units)


@pytest.mark.parametrize("make", [lambda: GRU(4, seed=0), lambda: LSTM(4, seed=0)])
def test_fused_path_equals_step_path_forward_and_gradients(make):
    layer = make()
    x = rng.standard_normal((3, 5, 2))
    layer(x)
    layer.to(np.float64)
    w = rng.standard_normal((3, 5, 4))

    def grads(fused):
        xt = Tensor(x, requires_grad=True)
        for p in layer.parameters():
            p.grad = None
        seq = (layer.fused(xt) if isinstance(layer, GRU) else layer._fused(xt))[0] if fused \
            else _step_path(layer, xt)[0]
        (seq * w).sum().backward()
        return [seq.data, xt.grad] + [p.grad for p in layer.parameters()]

    for got, want in zip(grads(False), grads(True)):
        np.testing.assert_allclose(got, want, atol=1e-10)


@pytest.mark.parametrize("reset_after", [True, False])
def test_keras_gru_step_path_weight_gradients_match_finite_differences(reset_after):
    layer = GRU(3, reset_after=reset_after, seed=4)
    x = rng.standard_normal((2, 4, 2))
    layer(x)
    layer.to(np.float64)
    weights = [p.data.copy() for _, p in layer.named_weights()]

    def f(xt, kernel, rec, bias):
        layer._parameters.update(kernel=kernel, recurrent_kernel=rec, bias=bias)
        return _step_path(layer, xt)[0]

    gradcheck(f, [x] + weights)


def test_simple_rnn_matches_torch_rnn_and_finite_differences():
    torch = pytest.importorskip("torch")
    for activation in ("tanh", "relu"):
        layer = SimpleRNN(5, activation=activation, return_sequences=True, return_state=True, seed=3)
        x = rng.standard_normal((2, 6, 3))
        layer(x)
        layer.bias.data[...] = rng.standard_normal(5) * 0.3
        kernel, recurrent_kernel, bias = layer.get_weights()
        ref = torch.nn.RNN(3, 5, nonlinearity=activation, batch_first=True).double()
        with torch.no_grad():
            ref.weight_ih_l0.copy_(torch.tensor(kernel.T))
            ref.weight_hh_l0.copy_(torch.tensor(recurrent_kernel.T))
            ref.bias_ih_l0.copy_(torch.tensor(bias))
            ref.bias_hh_l0.zero_()
        out, h = layer(x)
        t_out, t_h = ref(torch.tensor(x))
        np.testing.assert_allclose(out.data, t_out.detach().numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(h.data, t_h[0].detach().numpy(), rtol=1e-5, atol=1e-6)
    layer = SimpleRNN(3, seed=0)
    layer(x)
    layer.to(np.float64)
    gradcheck(lambda t: layer(t), [x])


def test_go_backwards_reads_the_reversed_sequence_and_returns_outputs_in_that_order():
    x = rng.standard_normal((2, 5, 3)).astype(np.float32)
    for kind in (GRU, SimpleRNN, LSTM):
        fwd, bwd = kind(4, return_sequences=True, seed=5), kind(4, return_sequences=True, go_backwards=True, seed=5)
        np.testing.assert_allclose(bwd(x).data, fwd(x[:, ::-1]).data, atol=1e-6)


def test_unsupported_arguments_and_bad_values_say_so():
    with pytest.raises(NotImplementedError, match=r"GRU\(stateful=True\) is not supported"):
        GRU(3, stateful=True)
    with pytest.raises(NotImplementedError, match=r"LSTM\(unroll=True\)"):
        LSTM(3, unroll=True)
    with pytest.raises(ValueError, match="recurrent_dropout must be in"):
        LSTM(3, recurrent_dropout=1.0)
    with pytest.raises(ValueError, match="kernel_initializer='he_magic' is not an initializer"):
        SimpleRNN(3, kernel_initializer="he_magic")
    with pytest.raises(ValueError, match=r"mask of shape \(2, 4\) does not match input of shape"):
        GRU(3)(np.ones((2, 5, 1), np.float32), mask=np.ones((2, 4), bool))


# ----- recurrent dropout -----------------------------------------------------------------------

def _numpy_lstm(x, kernel, recurrent_kernel, bias, h_keep):
    u = recurrent_kernel.shape[0]
    h, c = np.zeros((x.shape[0], u)), np.zeros((x.shape[0], u))
    for t in range(x.shape[1]):
        a = x[:, t] @ kernel + (h * h_keep) @ recurrent_kernel + bias
        i, f, o = _sigmoid(a[:, :u]), _sigmoid(a[:, u:2 * u]), _sigmoid(a[:, 3 * u:])
        c = f * c + i * np.tanh(a[:, 2 * u:3 * u])
        h = o * np.tanh(c)
    return h


def test_lstm_recurrent_dropout_is_one_mask_per_sequence_on_the_state():
    layer = LSTM(6, recurrent_dropout=0.5, seed=7)
    x = rng.standard_normal((4, 5, 3))
    layer(x)
    stream = copy.deepcopy(layer.dropout_rng)  # the draws the next training call will make
    keep = (stream.random((4, 6)) >= 0.5) / 0.5
    got = layer(x, training=True).data
    np.testing.assert_allclose(got, _numpy_lstm(x, *layer.get_weights(), keep), rtol=1e-5, atol=1e-6)
    assert not np.allclose(got, layer(x).data)  # inference: no dropout, the fused op
    np.testing.assert_allclose(layer(x).data, _numpy_lstm(x, *layer.get_weights(), 1.0), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("reset_after", [True, False])
def test_gru_recurrent_dropout_matches_the_numpy_cell_with_the_same_mask(reset_after):
    layer = GRU(5, recurrent_dropout=0.4, reset_after=reset_after, seed=8)
    x = rng.standard_normal((3, 4, 2))
    layer(x)
    stream = copy.deepcopy(layer.dropout_rng)
    keep = (stream.random((3, 5)) >= 0.4) / 0.6
    want = _keras_gru_numpy(x, *[w.astype(np.float64) for w in layer.get_weights()], reset_after, keep)
    np.testing.assert_allclose(layer(x, training=True).data, want[:, -1], rtol=1e-5, atol=1e-6)


def test_gru_recurrent_dropout_trains_and_stays_deterministic_with_a_seed():
    def run():
        model = Sequential([Input(shape=(6, 2)), GRU(8, recurrent_dropout=0.3, dropout=0.2), Dense(1)], seed=0)
        model.compile(optimizer="adam", loss="mse")
        x = np.random.default_rng(1).standard_normal((32, 6, 2)).astype(np.float32)
        y = x.sum(axis=(1, 2))[:, None]
        return model.fit(x, y, epochs=3, batch_size=8, verbose=0).history["loss"]

    first = run()
    assert first == run()
    assert first[-1] < first[0]


# ----- masks -----------------------------------------------------------------------------------

def _padded(seqs, length, side, fill=0):
    """The sequences padded to `length` with `fill` -> (batch, mask). A fill other than 0 makes
    the padding change the state of a layer that ignored the mask (zeros may leave it at 0)."""
    out = np.full((len(seqs), length) + seqs[0].shape[1:], fill, seqs[0].dtype)
    mask = np.zeros((len(seqs), length), bool)
    for i, s in enumerate(seqs):
        span = slice(0, len(s)) if side == "post" else slice(length - len(s), length)
        out[i, span], mask[i, span] = s, True
    return out, mask


@pytest.mark.parametrize("side", ["post", "pre"])
@pytest.mark.parametrize("kind", [LSTM, GRU, SimpleRNN])
def test_a_masked_padded_batch_gives_each_sequence_its_own_final_state(kind, side):
    seqs = [rng.standard_normal((n, 3)).astype(np.float32) for n in (5, 2, 4)]
    x, mask = _padded(seqs, 6, side, fill=2.0)
    layer = kind(4, return_sequences=True, return_state=True, seed=0)
    out = layer(x, mask=mask)
    seq, states = out[0], out[1:]
    for i, s in enumerate(seqs):
        alone = layer(s[None])
        np.testing.assert_allclose(states[0].data[i], alone[1].data[0], atol=1e-6)
        np.testing.assert_allclose(states[-1].data[i], alone[-1].data[0], atol=1e-6)
        real = np.flatnonzero(mask[i])
        np.testing.assert_allclose(seq.data[i, real], alone[0].data[0], atol=1e-6)
        # a masked step repeats the previous output (zeros before the first real step)
        for t in np.flatnonzero(~mask[i]):
            np.testing.assert_array_equal(seq.data[i, t], seq.data[i, t - 1] if t else 0.0)


def test_masked_gradients_match_finite_differences():
    x, mask = _padded([rng.standard_normal((n, 2)) for n in (4, 2)], 4, "post", fill=1.0)
    layer = GRU(3, return_sequences=True, seed=1)
    layer(x)
    layer.to(np.float64)
    gradcheck(lambda t: layer(t, mask=mask), [x])


def test_embedding_mask_zero_travels_through_sequential_and_functional_models():
    ids = [np.array([3, 1, 4, 1, 5]), np.array([2, 6]), np.array([5, 3, 5])]
    x, _ = _padded(ids, 7, "post")
    for build in ("sequential", "functional"):
        if build == "sequential":
            model = Sequential([Embedding(8, 4, mask_zero=True), LSTM(5), Dense(2)], seed=0)
        else:
            inputs = Input(shape=(None,), dtype="int64")
            h = Embedding(8, 4, mask_zero=True)(inputs)
            model = Model(inputs, Dense(2)(GRU(5)(h)), seed=0)
        batch = model.predict(x)
        for i, s in enumerate(ids):
            np.testing.assert_allclose(batch[i], model.predict(s[None])[0], atol=1e-6, err_msg=build)


def test_concatenate_combines_masks_and_dense_passes_them_on():
    left, _ = _padded([np.array([1, 2, 3]), np.array([4])], 4, "post")
    right, _ = _padded([np.array([5, 6]), np.array([7, 1])], 4, "post")
    a, b = Input(shape=(4,), dtype="int64"), Input(shape=(4,), dtype="int64")
    merged = Concatenate()([Embedding(8, 3, mask_zero=True)(a), Embedding(8, 3, mask_zero=True)(b)])
    model = Model([a, b], GRU(4)(Dense(5)(merged)), seed=0)
    both = model.predict([left, right])
    # a step is real where it is real in both inputs: row 0 has 2 such steps, row 1 has 1
    np.testing.assert_allclose(both[0], model.predict([left[:1, :2], right[:1, :2]])[0], atol=1e-6)
    np.testing.assert_allclose(both[1], model.predict([left[1:, :1], right[1:, :1]])[0], atol=1e-6)


def test_masking_layer_marks_steps_equal_to_mask_value():
    x = rng.standard_normal((2, 4, 3)).astype(np.float32)
    x[0, 2:] = -1.0
    x[1, 0, 1] = -1.0  # one value equal to mask_value is not enough: the step stays
    model = Sequential([Input(shape=(4, 3)), Masking(mask_value=-1.0), SimpleRNN(3)], seed=0)
    out = model.predict(x)
    np.testing.assert_allclose(out[0], model.predict(x[:1, :2])[0], atol=1e-6)
    assert not np.allclose(out[1], model.predict(x[1:, 1:])[0])


def test_bidirectional_with_a_mask_equals_each_sequence_alone():
    seqs = [rng.standard_normal((n, 3)).astype(np.float32) for n in (5, 3)]
    x, mask = _padded(seqs, 6, "post", fill=2.0)
    for kind in (LSTM, GRU, SimpleRNN):
        layer = Bidirectional(kind(4, return_sequences=True), seed=2)
        out = layer(x, mask=mask).data
        for i, s in enumerate(seqs):
            alone = layer(s[None]).data[0]
            np.testing.assert_allclose(out[i, :len(s)], alone, atol=1e-6, err_msg=kind.__name__)


@pytest.mark.parametrize("kind, n_states", [(LSTM, 2), (GRU, 1), (SimpleRNN, 1)])
def test_bidirectional_return_state_gives_both_directions_states(kind, n_states):
    x = rng.standard_normal((2, 5, 3)).astype(np.float32)
    layer = Bidirectional(kind(4, return_state=True), seed=3)
    out = layer(x)
    assert len(out) == 1 + 2 * n_states
    assert out[0].shape == (2, 8) and all(s.shape == (2, 4) for s in out[1:])
    fwd, bwd = layer.forward_layer(x), layer.backward_layer(x)
    np.testing.assert_allclose(out[0].data, np.concatenate([fwd[0].data, bwd[0].data], -1), atol=1e-6)
    np.testing.assert_allclose(out[1 + n_states].data, bwd[1].data, atol=1e-6)
    np.testing.assert_allclose(out[1].data, fwd[1].data, atol=1e-6)
    assert layer.compute_output_shape((None, 5, 3)) == [(None, 8)] + [(None, 4)] * (2 * n_states)
    # the backward layer reads the reversed sequence
    ref = copy.deepcopy(layer.backward_layer)
    ref.go_backwards = False
    np.testing.assert_allclose(ref(x[:, ::-1])[0].data, bwd[0].data, atol=1e-6)


def test_global_poolings_skip_masked_steps():
    x, mask = _padded([rng.standard_normal((n, 3)) for n in (4, 1)], 5, "post")
    x[~mask] = 100.0  # what padding holds must not matter
    avg = GlobalAveragePooling1D()(x, mask=mask).data
    mx = GlobalMaxPooling1D()(x, mask=mask).data
    for i in range(2):
        np.testing.assert_allclose(avg[i], x[i, mask[i]].mean(axis=0), rtol=1e-6)
        np.testing.assert_allclose(mx[i], x[i, mask[i]].max(axis=0), rtol=1e-6)
    gradcheck(lambda t: GlobalAveragePooling1D()(t, mask=mask), [x])


def test_loss_and_accuracy_over_timesteps_count_only_real_steps():
    ids, _ = _padded([np.array([3, 1, 4, 1, 5]), np.array([2, 6])], 6, "post")
    tags = np.where(ids > 0, ids % 3, 0)
    model = Sequential([Embedding(8, 4, mask_zero=True), LSTM(5, return_sequences=True),
                        TimeDistributed(Dense(3, activation="softmax"))], seed=0)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    loss, accuracy = model.evaluate(ids, tags, verbose=0)
    p, real = model.predict(ids), ids > 0
    picked = np.take_along_axis(p, tags[..., None], axis=-1)[..., 0]
    np.testing.assert_allclose(loss, -np.log(picked[real]).mean(), rtol=1e-5)
    np.testing.assert_allclose(accuracy, (p.argmax(-1) == tags)[real].mean(), rtol=1e-6)
    # Dense(softmax) as the last layer: the fused loss path sees the mask too
    fused = Sequential([Embedding(8, 4, mask_zero=True), GRU(5, return_sequences=True),
                        Dense(3, activation="softmax")], seed=0)
    fused.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    p = fused.predict(ids)
    picked = np.take_along_axis(p, tags[..., None], axis=-1)[..., 0]
    np.testing.assert_allclose(fused.evaluate(ids, tags, verbose=0), -np.log(picked[real]).mean(), rtol=1e-5)
