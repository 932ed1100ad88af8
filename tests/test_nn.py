"""tinygpt.nn: registration and names, state_dict round trips and strict errors, each layer against
plain NumPy, dropout determinism, and the LSTM step-by-step identity."""

import copy

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

import tinygpt.nn as nn
from tinygpt import Tensor
from tinygpt.testing import gradcheck


class TwoLayer(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(3, 4, rng=0)
        self.norm = nn.LayerNorm(4)
        self.fc2 = nn.Linear(4, 2, bias=False, rng=1)
        self.scale = nn.Parameter(np.ones(2))

    def forward(self, x):
        return self.fc2(self.norm(self.fc1(x))) * self.scale


# --- registration and names -------------------------------------------------------------------


def test_module_named_parameters_are_dotted_and_in_definition_order():
    model = TwoLayer()
    names = [name for name, _ in model.named_parameters()]
    assert names == ["scale", "fc1.weight", "fc1.bias", "norm.weight", "norm.bias", "fc2.weight"]
    assert [name for name, _ in model.named_modules()] == ["", "fc1", "norm", "fc2"]
    assert model.children() == [model.fc1, model.norm, model.fc2]
    assert len(model.modules()) == 4
    assert all(isinstance(p, nn.Parameter) and p.requires_grad for p in model.parameters())
    assert model.fc1.weight.shape == (3, 4)  # (in, out), like GPT-2's Conv1D


def test_module_reassigning_an_attribute_unregisters_the_old_value():
    model = TwoLayer()
    model.fc2 = None
    model.scale = 3.0
    assert [n for n, _ in model.named_parameters()] == ["fc1.weight", "fc1.bias", "norm.weight", "norm.bias"]


def test_module_rejects_a_plain_leaf_tensor_that_requires_grad():
    model = nn.Module()
    with pytest.raises(TypeError, match="nn.Parameter"):
        model.w = Tensor(np.ones(3), requires_grad=True)
    model.cached = Tensor(np.ones(3))  # constants are fine


def test_module_setattr_before_init_names_the_fix():
    class Forgetful(nn.Module):
        def __init__(self):
            self.fc = nn.Linear(2, 2)

    with pytest.raises(AttributeError, match="super\\(\\).__init__"):
        Forgetful()


def test_module_shared_parameter_is_listed_and_saved_once():
    model = nn.Module()
    model.a = nn.Linear(2, 2, rng=0)
    model.b = nn.Linear(2, 2, rng=1)
    model.b.weight = model.a.weight
    assert [n for n, _ in model.named_parameters()] == ["a.weight", "a.bias", "b.bias"]
    assert set(model.state_dict()) == {"a.weight", "a.bias", "b.bias"}


def test_module_train_eval_reaches_every_module_and_zero_grad_clears():
    model = TwoLayer()
    assert model.eval() is model and not any(m.training for m in model.modules())
    model.train()
    assert all(m.training for m in model.modules())
    model(Tensor(np.ones((2, 3)))).sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    model.zero_grad()
    assert all(p.grad is None for p in model.parameters())


def test_module_repr_shows_parameter_counts():
    text = repr(TwoLayer())
    assert text.startswith("TwoLayer(  # 34 parameters")
    assert "(fc1): Linear(in_features=3, out_features=4, bias=True)  # 16 parameters" in text
    assert "(fc2): Linear(in_features=4, out_features=2, bias=False)  # 8 parameters" in text


def test_module_deepcopy_keeps_shared_parameters_shared():
    model = nn.Module()
    model.a = nn.Linear(2, 2, rng=0)
    model.b = nn.Linear(2, 2, rng=1)
    model.b.weight = model.a.weight
    clone = copy.deepcopy(model)
    assert clone.b.weight is clone.a.weight and clone.a.weight is not model.a.weight
    np.testing.assert_array_equal(clone.a.weight.data, model.a.weight.data)


def test_module_to_float64_keeps_the_same_parameter_objects():
    model = TwoLayer()
    before = model.parameters()
    model.to(np.float64)
    assert all(a is b and a.dtype == np.float64 for a, b in zip(before, model.parameters()))


# --- state_dict -------------------------------------------------------------------------------


def test_state_dict_round_trip_restores_outputs():
    source, target = TwoLayer(), TwoLayer()
    target.fc1.weight.data[:] = 5.0
    state = source.state_dict()
    assert all(isinstance(v, np.ndarray) for v in state.values())
    result = target.load_state_dict(state)
    assert result.missing_keys == [] and result.unexpected_keys == []
    x = Tensor(np.random.default_rng(0).standard_normal((2, 3)))
    np.testing.assert_array_equal(source(x).data, target(x).data)
    state["fc1.weight"][:] = 0.0  # a copy: changing it does not change the model
    assert np.all(source.fc1.weight.data != 0.0)


def test_load_state_dict_strict_lists_every_problem_in_one_error():
    model = TwoLayer()
    state = model.state_dict()
    del state["fc1.bias"]
    state["fc3.weight"] = np.zeros((2, 2))
    state["fc2.weight"] = np.zeros((5, 2))
    with pytest.raises(ValueError) as info:
        model.load_state_dict(state)
    message = str(info.value)
    assert "missing keys" in message and "fc1.bias" in message
    assert "unexpected keys" in message and "fc3.weight" in message
    assert "fc2.weight: state (5, 2) vs model (4, 2)" in message


def test_load_state_dict_non_strict_loads_matching_keys_and_reports_the_rest():
    model = TwoLayer()
    result = model.load_state_dict({"fc1.bias": np.full(4, 7.0), "extra": np.zeros(1)}, strict=False)
    np.testing.assert_array_equal(model.fc1.bias.data, np.full(4, 7.0, np.float32))
    assert "fc1.weight" in result.missing_keys and result.unexpected_keys == ["extra"]
    with pytest.raises(ValueError, match="shape mismatches"):  # shapes are checked even then
        model.load_state_dict({"fc1.bias": np.zeros(5)}, strict=False)


# --- layers -----------------------------------------------------------------------------------


def test_linear_matches_numpy_and_bias_is_optional():
    x = np.random.default_rng(0).standard_normal((2, 5, 3)).astype(np.float32)
    layer = nn.Linear(3, 4, rng=0)
    np.testing.assert_allclose(layer(Tensor(x)).data, x @ layer.weight.data + layer.bias.data, rtol=1e-6)
    no_bias = nn.Linear(3, 4, bias=False, rng=0)
    assert no_bias.bias is None and len(no_bias.parameters()) == 1
    assert nn.Linear(3, 4, rng=7).weight.data.tolist() == nn.Linear(3, 4, rng=7).weight.data.tolist()


def test_embedding_picks_rows():
    emb = nn.Embedding(10, 4, rng=0)
    idx = np.array([[1, 2], [9, 1]])
    np.testing.assert_array_equal(emb(idx).data, emb.weight.data[idx])
    with pytest.raises(TypeError, match="integers"):
        emb(np.array([0.5]))


def test_layernorm_matches_numpy_with_and_without_bias():
    x = np.random.default_rng(1).standard_normal((3, 6))
    for bias in (True, False):
        ln = nn.LayerNorm(6, bias=bias).to(np.float64)
        ln.weight.data[:] = np.arange(6)
        expected = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-5) * np.arange(6)
        np.testing.assert_allclose(ln(Tensor(x)).data, expected, rtol=1e-10)
        assert (ln.bias is None) == (not bias)


def test_dropout_same_seed_gives_same_masks_and_eval_is_identity():
    x = Tensor(np.ones((4, 50)))
    a, b = nn.Dropout(0.5, rng=3), nn.Dropout(0.5, rng=3)
    first = a(x).data
    np.testing.assert_array_equal(first, b(x).data)
    assert set(np.unique(first)) == {0.0, 2.0}
    assert not np.array_equal(first, a(x).data)  # the generator moves on
    a.eval()
    assert a(x) is x
    with pytest.raises(ValueError, match=r"p must be in \[0, 1\], got 1.5"):
        nn.Dropout(1.5)


def test_sequential_and_module_list_name_children_by_index():
    seq = nn.Sequential(nn.Linear(3, 4, rng=0), nn.GELU(), nn.Linear(4, 2, rng=1))
    assert [n for n, _ in seq.named_parameters()] == ["0.weight", "0.bias", "2.weight", "2.bias"]
    x = Tensor(np.ones((1, 3)))
    np.testing.assert_array_equal(seq(x).data, seq[2](seq[1](seq[0](x))).data)
    blocks = nn.ModuleList([nn.Linear(2, 2, rng=i) for i in range(3)])
    assert len(blocks) == 3 and blocks[-1] is list(blocks)[2]
    d = nn.ModuleDict(wte=nn.Embedding(3, 2, rng=0), h=blocks)
    assert d["wte"] is d.wte and "h.2.bias" in d.state_dict()
    with pytest.raises(TypeError):
        blocks.append(np.zeros(2))


# --- LSTM -------------------------------------------------------------------------------------


def _lstm_inputs(B=2, T=5, I=3, seed=0, dtype=np.float64):
    return np.random.default_rng(seed).standard_normal((B, T, I)).astype(dtype)


def test_lstm_shapes_and_parameter_names():
    lstm = nn.LSTM(3, 4, num_layers=2, batch_first=True, rng=0)
    assert dict((n, p.shape) for n, p in lstm.named_parameters()) == {
        "weight_ih_l0": (3, 16), "weight_hh_l0": (4, 16), "bias_l0": (16,),
        "weight_ih_l1": (4, 16), "weight_hh_l1": (4, 16), "bias_l1": (16,)}
    out, (h, c) = lstm(Tensor(_lstm_inputs(dtype=np.float32)))
    assert out.shape == (2, 5, 4) and h.shape == (2, 2, 4) and c.shape == (2, 2, 4)
    np.testing.assert_array_equal(out.data[:, -1], h.data[-1])  # last output is the top h_n
    with pytest.raises(ValueError, match=r"\(B, T, 3\)"):
        lstm(Tensor(np.ones((2, 5))))
    with pytest.raises(ValueError, match="num_layers, B, D"):
        lstm(Tensor(np.ones((2, 5, 3))), (np.zeros((1, 2, 4)), np.zeros((1, 2, 4))))


def test_lstm_step_by_step_equals_whole_sequence_forward_and_gradients():
    x = _lstm_inputs(T=6)
    weights = np.random.default_rng(1).standard_normal((2, 6, 4))  # projection of the outputs

    def run(stepwise):
        lstm = nn.LSTM(3, 4, num_layers=2, batch_first=True, rng=0).to(np.float64)
        xt = Tensor(x, requires_grad=True)
        h0 = Tensor(np.full((2, 2, 4), 0.1), requires_grad=True)
        c0 = Tensor(np.full((2, 2, 4), -0.2), requires_grad=True)
        if stepwise:
            state, outs = (h0, c0), []
            for t in range(6):
                out, state = lstm(xt[:, t:t + 1], state)
                outs.append(out.data)
                loss = (out * weights[:, t:t + 1]).sum() if t == 0 else loss + (out * weights[:, t:t + 1]).sum()
            out = np.concatenate(outs, axis=1)
        else:
            out_t, state = lstm(xt, (h0, c0))
            out, loss = out_t.data, (out_t * weights).sum()
        loss = loss + (state[0] * 0.3).sum() + (state[1] * 0.7).sum()
        loss.backward()
        grads = [p.grad for p in lstm.parameters()] + [xt.grad, h0.grad, c0.grad]
        return out, state[0].data, state[1].data, grads

    whole, steps = run(stepwise=False), run(stepwise=True)
    for a, b in zip(whole[:3], steps[:3]):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    for a, b in zip(whole[3], steps[3]):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


@given(B=st.integers(1, 3), T=st.integers(1, 5), I=st.integers(1, 4), D=st.integers(1, 5),
       layers=st.integers(1, 2))
@example(B=1, T=1, I=1, D=1, layers=1)
def test_lstm_chunked_calls_equal_one_call_for_any_shape(B, T, I, D, layers):
    lstm = nn.LSTM(I, D, num_layers=layers, batch_first=True, rng=0).to(np.float64)
    x = np.random.default_rng(T).standard_normal((B, T, I))
    whole, (h, c) = lstm(Tensor(x))
    state, outs = None, []
    for t in range(T):
        out, state = lstm(Tensor(x[:, t:t + 1]), state)
        outs.append(out.data)
    np.testing.assert_allclose(np.concatenate(outs, axis=1), whole.data, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(state[0].data, h.data, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(state[1].data, c.data, rtol=1e-12, atol=1e-12)


def test_lstm_gradcheck_two_layers_float64():
    lstm = nn.LSTM(2, 3, num_layers=2, batch_first=True, rng=0).to(np.float64)
    names = [n for n, _ in lstm.named_parameters()]

    def f(x, h0, c0, *params):
        for name, p in zip(names, params):
            object.__setattr__(lstm, name, p)  # plug the gradcheck's tensors in for the weights
        out, (h, c) = lstm(x, (h0, c0))
        return out, h, c

    arrays = [_lstm_inputs(B=2, T=3, I=2), np.zeros((2, 2, 3)) + 0.1, np.zeros((2, 2, 3)) - 0.1]
    assert gradcheck(f, arrays + [p.data.copy() for p in lstm.parameters()])


def test_lstm_dropout_between_layers_is_seeded_and_off_in_eval():
    x = Tensor(_lstm_inputs(dtype=np.float32))
    a, b = nn.LSTM(3, 4, 2, batch_first=True, dropout=0.5, rng=0), nn.LSTM(3, 4, 2, batch_first=True, dropout=0.5, rng=0)
    np.testing.assert_array_equal(a(x)[0].data, b(x)[0].data)
    plain = nn.LSTM(3, 4, 2, batch_first=True, dropout=0.0, rng=0)
    assert not np.allclose(a(x)[0].data, plain(x)[0].data)
    a.eval()
    np.testing.assert_array_equal(a(x)[0].data, plain(x)[0].data)
