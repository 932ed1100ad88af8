"""tinygpt.models: config validation, GPT-2 parameter names and init, attention and Block and GPT
== independent NumPy forwards, KV-cached attention and logits == uncached, LSTM state carrying, padding-aware classifier pooling,
gradient checks in float64, and every model overfitting one small batch."""

import tracemalloc

import numpy as np
import pytest

from hypothesis import example, given
from hypothesis import strategies as st

from tinygpt import Tensor, no_grad
from tinygpt.models import GPT, GPTConfig, LSTMConfig, LSTMLanguageModel, SequenceClassifier
from tinygpt.models.gpt import Block, CausalSelfAttention, KVCache
from tinygpt.optim import Adam
from tinygpt.testing import gradcheck

TINY = dict(vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=8)


def tiny_gpt(seed=0, **overrides):
    return GPT(GPTConfig(**{**TINY, **overrides}), seed=seed)


def tokens(shape, vocab=11, seed=0):
    return np.random.default_rng(seed).integers(0, vocab, shape)


def plug_in(model, names, tensors):
    """Make `model` compute with `tensors` in place of its parameters (for gradcheck)."""
    owners = dict(model.named_modules())
    for name, tensor in zip(names, tensors):
        prefix, _, attr = name.rpartition(".")
        object.__setattr__(owners[prefix], attr, tensor)
    if isinstance(model, GPT):  # keep the tie: the head reads the same (new) embedding tensor
        object.__setattr__(model.lm_head, "weight", model.transformer.wte.weight)


# --- configs ----------------------------------------------------------------------------------


@pytest.mark.parametrize("field, value", [("vocab_size", 0), ("block_size", -1), ("n_layer", 1.5),
                                          ("n_head", True), ("n_embd", None)])
def test_gpt_config_rejects_non_positive_sizes_naming_the_field(field, value):
    with pytest.raises(ValueError, match=f"GPTConfig.{field} must be a positive integer, got {value!r}"):
        GPTConfig(**{**TINY, field: value})


def test_gpt_config_needs_n_embd_divisible_by_n_head_and_sane_dropout():
    with pytest.raises(ValueError, match=r"n_embd \(8\) must be divisible by n_head \(3\)"):
        GPTConfig(**{**TINY, "n_head": 3})
    with pytest.raises(ValueError, match="dropout must be in"):
        GPTConfig(**{**TINY, "dropout": 1.0})
    assert GPTConfig().n_embd == 768 and GPTConfig(**TINY).to_dict()["vocab_size"] == 11


def test_lstm_config_validates():
    with pytest.raises(ValueError, match="LSTMConfig.hidden_size must be a positive integer"):
        LSTMConfig(vocab_size=5, hidden_size=0)
    with pytest.raises(ValueError, match="LSTMConfig.dropout"):
        LSTMConfig(vocab_size=5, dropout=-0.1)


# --- GPT structure and init -------------------------------------------------------------------


def test_gpt_parameter_names_and_shapes_follow_gpt2():
    model = GPT(GPTConfig(vocab_size=11, block_size=8, n_layer=1, n_head=2, n_embd=8))
    shapes = {name: p.shape for name, p in model.named_parameters()}
    h = "transformer.h.0."
    assert shapes == {
        "transformer.wte.weight": (11, 8), "transformer.wpe.weight": (8, 8),
        h + "ln_1.weight": (8,), h + "ln_1.bias": (8,),
        h + "attn.c_attn.weight": (8, 24), h + "attn.c_attn.bias": (24,),
        h + "attn.c_proj.weight": (8, 8), h + "attn.c_proj.bias": (8,),
        h + "ln_2.weight": (8,), h + "ln_2.bias": (8,),
        h + "mlp.c_fc.weight": (8, 32), h + "mlp.c_fc.bias": (32,),
        h + "mlp.c_proj.weight": (32, 8), h + "mlp.c_proj.bias": (8,),
        "transformer.ln_f.weight": (8,), "transformer.ln_f.bias": (8,)}


def test_gpt_lm_head_is_tied_to_wte_and_saved_once():
    model = tiny_gpt()
    assert model.lm_head.weight is model.transformer.wte.weight
    state = model.state_dict()
    assert "transformer.wte.weight" in state and not any(k.startswith("lm_head") for k in state)
    model.transformer.wte.weight.data[0] = 1.0  # one array: the head sees the change
    assert np.all(model.lm_head.weight.data[0] == 1.0)


def test_gpt_training_graph_keeps_no_copy_of_the_tied_embedding():
    """The head reads wteᵀ through strides: a copy of the (V, C) matrix kept for backward would
    outweigh every activation of a short sequence (it did, through batched matmul)."""
    model = tiny_gpt(vocab_size=8192, n_embd=32, n_head=2)  # wte: 1 MiB; activations: ~0.3 MiB
    idx = tokens((1, 4), vocab=8192)
    model(idx, idx)  # warm up the kernels
    tracemalloc.start()
    try:
        _, loss = model(idx, idx)
        alive = tracemalloc.get_traced_memory()[0]
        loss.backward()
    finally:
        tracemalloc.stop()
    assert alive < 2**20 * 0.75, f"{alive / 2**20:.2f} MiB alive after forward: is wte being copied?"
    assert model.transformer.wte.weight.grad.shape == (8192, 32)


def test_gpt_without_bias_has_no_bias_parameters():
    names = [n for n, _ in tiny_gpt(bias=False).named_parameters()]
    assert not any(n.endswith(".bias") for n in names) and "transformer.ln_f.weight" in names


def test_gpt_init_is_gpt2s_and_seeded():
    model = GPT(GPTConfig(vocab_size=500, block_size=64, n_layer=4, n_head=4, n_embd=64), seed=0)
    params = dict(model.named_parameters())
    assert abs(params["transformer.wte.weight"].data.std() - 0.02) < 1e-3
    assert abs(params["transformer.h.0.mlp.c_fc.weight"].data.std() - 0.02) < 1e-3
    assert abs(params["transformer.h.3.mlp.c_proj.weight"].data.std() - 0.02 / np.sqrt(8)) < 5e-4
    assert abs(params["transformer.h.1.attn.c_proj.weight"].data.std() - 0.02 / np.sqrt(8)) < 5e-4
    assert np.all(params["transformer.h.0.attn.c_attn.bias"].data == 0)
    assert np.all(params["transformer.h.0.ln_1.weight"].data == 1)
    same, other = tiny_gpt(seed=0).state_dict(), tiny_gpt(seed=1).state_dict()
    assert all(np.array_equal(a, b) for a, b in zip(tiny_gpt(seed=0).state_dict().values(), same.values()))
    assert not np.array_equal(same["transformer.wte.weight"], other["transformer.wte.weight"])


def test_gpt_num_params_and_flops_per_token():
    model = tiny_gpt()
    total = sum(p.size for p in model.parameters())
    assert model.num_params(non_embedding=False) == total
    assert model.num_params() == total - 8 * 8  # minus wpe
    L, H, Q, T = 2, 2, 4, 8
    assert model.flops_per_token() == 6 * model.num_params() + 12 * L * H * Q * T
    assert GPT(GPTConfig(n_layer=1, n_embd=12, n_head=12, vocab_size=50257)).num_params(False) == \
        50257 * 12 + 1024 * 12 + (12 * 4 + 12 * 36 + 36 + 144 + 12 + 12 * 48 + 48 + 48 * 12 + 12) + 24


# --- attention, MLP, Block ----------------------------------------------------------------------


def _numpy_attention(x, attn):
    """Independent NumPy causal self-attention with the module's weights."""
    B, T, C = x.shape
    nh, hs = attn.n_head, C // attn.n_head
    qkv = x @ attn.c_attn.weight.data + attn.c_attn.bias.data
    q, k, v = (a.reshape(B, T, nh, hs).transpose(0, 2, 1, 3) for a in np.split(qkv, 3, axis=-1))
    s = q @ k.transpose(0, 1, 3, 2) / np.sqrt(hs)
    s = np.where(np.tril(np.ones((T, T), bool)), s, -np.inf)
    p = np.exp(s - s.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    y = (p @ v).transpose(0, 2, 1, 3).reshape(B, T, C)
    return y @ attn.c_proj.weight.data + attn.c_proj.bias.data


def test_causal_self_attention_matches_numpy_and_ignores_the_future():
    attn = CausalSelfAttention(8, 2, rng=0).to(np.float64)
    x = np.random.default_rng(0).standard_normal((2, 5, 8))
    np.testing.assert_allclose(attn(Tensor(x)).data, _numpy_attention(x, attn), rtol=1e-10)
    x2 = x.copy()
    x2[:, 3:] = 9.0  # changing later positions leaves earlier outputs alone
    np.testing.assert_allclose(attn(Tensor(x2)).data[:, :3], attn(Tensor(x)).data[:, :3], rtol=1e-12)
    with pytest.raises(ValueError, match="divisible"):
        CausalSelfAttention(8, 3)


def test_causal_self_attention_with_kv_cache_equals_without():
    attn = CausalSelfAttention(8, 2, rng=0)
    x = np.random.default_rng(0).standard_normal((2, 6, 8)).astype(np.float32)
    cache = KVCache(1, batch_size=2, n_head=2, max_len=6, head_size=4)
    with no_grad():
        full = attn(Tensor(x)).data
        pieces = [attn(Tensor(x[:, :3]), kv_cache=cache.layers[0]).data]  # a prompt of 3
        for t in range(3, 6):  # then one position at a time
            pieces.append(attn(Tensor(x[:, t:t + 1]), kv_cache=cache.layers[0]).data)
        assert cache.length == 6
        with pytest.raises(ValueError, match="KV cache is full"):
            attn(Tensor(x[:, :1]), kv_cache=cache.layers[0])
    np.testing.assert_allclose(np.concatenate(pieces, axis=1), full, rtol=1e-5, atol=1e-6)
    with pytest.raises(RuntimeError, match="no_grad"):
        attn(Tensor(x[:, :1]), kv_cache=KVCache(1, 2, 2, 6, 4).layers[0])


@given(B=st.integers(1, 3), T=st.integers(1, 6), n_head=st.sampled_from([1, 2, 4]), data=st.data())
@example(B=1, T=1, n_head=1, data=None)
def test_kv_cached_attention_equals_uncached_for_any_split(B, T, n_head, data):
    prompt = 1 if data is None else data.draw(st.integers(1, T))
    attn = CausalSelfAttention(8, n_head, rng=0).to(np.float64)
    x = np.random.default_rng(T).standard_normal((B, T, 8))
    cache = KVCache(1, B, n_head, max_len=T, head_size=8 // n_head, dtype=np.float64)
    with no_grad():
        full = attn(Tensor(x)).data
        pieces = [attn(Tensor(x[:, :prompt]), kv_cache=cache.layers[0]).data]
        pieces += [attn(Tensor(x[:, t:t + 1]), kv_cache=cache.layers[0]).data for t in range(prompt, T)]
    np.testing.assert_allclose(np.concatenate(pieces, axis=1), full, rtol=1e-10, atol=1e-12)


def test_block_is_pre_layernorm_residual():
    block = Block(8, 2, rng=0).to(np.float64)
    x = np.random.default_rng(2).standard_normal((1, 4, 8))

    def ln(z, m):
        return (z - z.mean(-1, keepdims=True)) / np.sqrt(z.var(-1, keepdims=True) + 1e-5) * m.weight.data + m.bias.data

    def gelu(z):
        return 0.5 * z * (1 + np.tanh(np.sqrt(2 / np.pi) * (z + 0.044715 * z ** 3)))

    h = x + _numpy_attention(ln(x, block.ln_1), block.attn)
    mlp = block.mlp
    expected = h + gelu(ln(h, block.ln_2) @ mlp.c_fc.weight.data + mlp.c_fc.bias.data) @ mlp.c_proj.weight.data \
        + mlp.c_proj.bias.data
    np.testing.assert_allclose(block(Tensor(x)).data, expected, rtol=1e-10)


def test_block_gradcheck_float64():
    block = Block(4, 2, rng=0).to(np.float64)
    names = [n for n, _ in block.named_parameters()]

    def f(x, *params):
        for name, p in zip(names, params):
            prefix, _, attr = name.rpartition(".")
            owner = dict(block.named_modules())[prefix]
            object.__setattr__(owner, attr, p)
        return block(x)

    x = np.random.default_rng(3).standard_normal((1, 3, 4))
    assert gradcheck(f, [x] + [p.data.copy() for p in block.parameters()])


# --- GPT forward ------------------------------------------------------------------------------


def numpy_gpt(idx, sd, n_layer, n_head):
    """A GPT-2 forward in plain NumPy (picoGPT style), reading only the state dict."""
    def ln(x, name):
        mu, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
        return (x - mu) / np.sqrt(var + 1e-5) * sd[name + ".weight"] + sd[name + ".bias"]

    def linear(x, name):
        return x @ sd[name + ".weight"] + sd[name + ".bias"]

    def gelu(x):
        return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))

    B, T = idx.shape
    x = sd["transformer.wte.weight"][idx] + sd["transformer.wpe.weight"][:T]
    for i in range(n_layer):
        p = f"transformer.h.{i}."
        q, k, v = np.split(linear(ln(x, p + "ln_1"), p + "attn.c_attn"), 3, axis=-1)
        heads = []
        for h in np.split(np.arange(x.shape[-1]), n_head):
            s = q[..., h] @ np.swapaxes(k[..., h], -1, -2) / np.sqrt(len(h))
            s = s + np.triu(np.full((T, T), -1e10), 1)
            w = np.exp(s - s.max(-1, keepdims=True))
            heads.append(w / w.sum(-1, keepdims=True) @ v[..., h])
        x = x + linear(np.concatenate(heads, -1), p + "attn.c_proj")
        x = x + linear(gelu(linear(ln(x, p + "ln_2"), p + "mlp.c_fc")), p + "mlp.c_proj")
    return ln(x, "transformer.ln_f") @ sd["transformer.wte.weight"].T


def test_gpt_forward_equals_an_independent_numpy_forward():
    model = tiny_gpt().to(np.float64)
    for p in model.parameters():  # non-trivial biases and gains, so every term is exercised
        p.data += np.random.default_rng(p.size).normal(0, 0.1, p.shape)
    idx = tokens((3, 7))
    logits, loss = model(idx)
    assert loss is None and logits.shape == (3, 7, 11)
    np.testing.assert_allclose(logits.data, numpy_gpt(idx, model.state_dict(), 2, 2), rtol=1e-10, atol=1e-12)


def test_gpt_loss_is_mean_cross_entropy_ignoring_minus_100():
    model = tiny_gpt().to(np.float64)
    idx, targets = tokens((2, 5)), tokens((2, 5), seed=1)
    targets[0, :2] = -100
    logits, loss = model(idx, targets)
    z = logits.data - logits.data.max(-1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(-1, keepdims=True))
    keep = targets != -100
    expected = -logp[keep, targets[keep]].mean()
    np.testing.assert_allclose(loss.item(), expected, rtol=1e-12)


def test_gpt_rejects_bad_idx_with_clear_errors():
    model = tiny_gpt()
    with pytest.raises(ValueError, match="sequence length 9 exceeds block_size 8"):
        model(tokens((1, 9)))
    with pytest.raises(TypeError, match="integer token ids, got dtype float64"):
        model(np.zeros((1, 3)))
    with pytest.raises(ValueError, match=r"\(B, T\), got shape \(3,\); add a batch axis"):
        model(np.array([1, 2, 3]))
    with pytest.raises(ValueError, match=r"got shape \(1, 2, 3\)"):
        model(np.zeros((1, 2, 3), dtype=np.int64))
    with pytest.raises(ValueError, match="out of range"):
        model(np.array([[11]]))


def test_gpt_with_kv_cache_gives_the_same_logits_as_without():
    model = tiny_gpt(n_layer=3)
    idx = tokens((2, 8))
    with no_grad():
        full, _ = model(idx)
        cache = model.make_kv_cache(batch_size=2)
        pieces = [model(idx[:, :5], kv_cache=cache)[0].data]  # the prompt in one go
        for t in range(5, 8):  # then one token at a time, positions continuing from the cache
            pieces.append(model(idx[:, t:t + 1], kv_cache=cache)[0].data)
        assert cache.length == 8
        with pytest.raises(ValueError, match=r"sequence length 9 \(8 cached \+ 1 new\) exceeds block_size 8"):
            model(idx[:, :1], kv_cache=cache)
    np.testing.assert_allclose(np.concatenate(pieces, axis=1), full.data, rtol=1e-5, atol=1e-5)


def test_gpt_dropout_is_seeded_and_off_in_eval():
    idx = tokens((2, 8))
    a, b = tiny_gpt(dropout=0.2), tiny_gpt(dropout=0.2)
    np.testing.assert_array_equal(a(idx)[0].data, b(idx)[0].data)  # same seed, same masks
    assert not np.array_equal(a(idx)[0].data, a(idx)[0].data)  # a new mask each call
    a.eval()
    np.testing.assert_array_equal(a(idx)[0].data, tiny_gpt(dropout=0.0)(idx)[0].data)


def test_gpt_gradcheck_float64():
    model = GPT(GPTConfig(vocab_size=5, block_size=4, n_layer=1, n_head=2, n_embd=4), seed=0).to(np.float64)
    names = [n for n, _ in model.named_parameters()]
    idx, targets = tokens((2, 3), vocab=5), tokens((2, 3), vocab=5, seed=1)

    def f(*params):
        plug_in(model, names, params)
        logits, loss = model(idx, targets)
        return logits, loss

    assert gradcheck(f, [p.data.copy() for p in model.parameters()])


# --- LSTM language model -------------------------------------------------------------------------


def tiny_lstm(**overrides):
    return LSTMLanguageModel(LSTMConfig(**{**dict(vocab_size=11, n_embd=6, hidden_size=8, n_layer=2),
                                           **overrides}), seed=0)


def test_lstm_lm_names_shapes_and_state():
    model = tiny_lstm()
    assert [n for n, _ in model.named_parameters()] == [
        "wte.weight", "lstm.weight_ih_l0", "lstm.weight_hh_l0", "lstm.bias_l0", "lstm.weight_ih_l1",
        "lstm.weight_hh_l1", "lstm.bias_l1", "lm_head.weight", "lm_head.bias"]
    logits, loss, (h, c) = model(tokens((3, 5)), tokens((3, 5)), return_state=True)
    assert logits.shape == (3, 5, 11) and h.shape == c.shape == (2, 3, 8) and loss.shape == ()
    with pytest.raises(TypeError, match="integer token ids"):
        model(np.zeros((1, 2)))


def test_lstm_lm_carrying_the_state_equals_one_long_call():
    model = tiny_lstm()
    idx = tokens((2, 9))
    full = model(idx)[0].data
    first, _, state = model(idx[:, :4], return_state=True)
    second, _, _ = model(idx[:, 4:], state=state, return_state=True)
    np.testing.assert_allclose(np.concatenate([first.data, second.data], axis=1), full, rtol=1e-5, atol=1e-6)
    zeros = model.initial_state(2)
    np.testing.assert_array_equal(model(idx, state=zeros)[0].data, full)


def test_lstm_lm_gradcheck_float64():
    model = tiny_lstm(vocab_size=5, n_embd=3, hidden_size=3).to(np.float64)
    names = [n for n, _ in model.named_parameters()]
    idx, targets = tokens((2, 3), vocab=5), tokens((2, 3), vocab=5, seed=1)

    def f(*params):
        plug_in(model, names, params)
        return model(idx, targets)

    assert gradcheck(f, [p.data.copy() for p in model.parameters()])


# --- classifier ---------------------------------------------------------------------------------


@pytest.mark.parametrize("pooling", ["last", "mean"])
@pytest.mark.parametrize("body", ["gpt", "lstm"])
def test_classifier_pooling_ignores_padding(pooling, body):
    model = SequenceClassifier(tiny_gpt() if body == "gpt" else tiny_lstm(), 3, pooling=pooling, seed=0)
    a, b = tokens((1, 4), seed=1), tokens((1, 7), seed=2)
    padded = np.zeros((2, 7), dtype=np.int64)  # right padding with token 0
    padded[0, :4], padded[1] = a[0], b[0]
    logits, loss = model(padded, labels=np.array([0, 2]), lengths=np.array([4, 7]))
    assert logits.shape == (2, 3) and loss.shape == ()
    np.testing.assert_allclose(logits.data[0], model(a)[0].data[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(logits.data[1], model(b)[0].data[0], rtol=1e-5, atol=1e-6)


def test_classifier_validates_its_arguments():
    with pytest.raises(ValueError, match="pooling"):
        SequenceClassifier(tiny_gpt(), 2, pooling="max")
    with pytest.raises(ValueError, match="n_classes"):
        SequenceClassifier(tiny_gpt(), 1)
    with pytest.raises(TypeError, match="features"):
        SequenceClassifier(object(), 2)
    model = SequenceClassifier(tiny_gpt(), 2)
    with pytest.raises(ValueError, match="lengths must be 2 integers in 1..5"):
        model(tokens((2, 5)), lengths=np.array([0, 5]))
    assert [n for n, _ in model.named_parameters()][-2:] == ["head.weight", "head.bias"]
    assert model.body.state_dict().keys() == tiny_gpt().state_dict().keys()  # a pretrained LM loads


# --- every model learns ---------------------------------------------------------------------------


def overfit(model, batch, steps=200, lr=1e-2):
    opt = Adam(model.parameters(), lr=lr)
    for _ in range(steps):
        _, loss = model(*batch)
        model.zero_grad()
        loss.backward()
        opt.step()
    return loss.item()


def test_gpt_overfits_one_batch():
    idx = tokens((2, 9), vocab=8, seed=1)
    model = GPT(GPTConfig(vocab_size=8, block_size=8, n_layer=1, n_head=2, n_embd=16), seed=0)
    assert overfit(model, (idx[:, :-1], idx[:, 1:])) < 0.01


def test_lstm_lm_overfits_one_batch():
    idx = tokens((2, 9), vocab=8, seed=1)
    model = LSTMLanguageModel(LSTMConfig(vocab_size=8, n_embd=16, hidden_size=32, n_layer=1), seed=0)
    assert overfit(model, (idx[:, :-1], idx[:, 1:])) < 0.01


@pytest.mark.parametrize("body", ["gpt", "lstm"])
def test_classifier_overfits_one_batch(body):
    body = GPT(GPTConfig(vocab_size=8, block_size=8, n_layer=1, n_head=2, n_embd=16)) if body == "gpt" \
        else LSTMLanguageModel(LSTMConfig(vocab_size=8, n_embd=16, hidden_size=16, n_layer=1))
    model = SequenceClassifier(body, 3, pooling="mean")
    idx, labels, lengths = tokens((6, 8), vocab=8), np.array([0, 1, 2, 0, 1, 2]), np.array([8, 5, 3, 8, 2, 6])
    assert overfit(model, (idx, labels, lengths), steps=100) < 0.01
